/**
 * The real `Dialer`, on the official twilio SDK. The only module of ours that imports `twilio`.
 *
 * Retry policy (Twilio's own guidance, see error pages 20429, 20500 and 20503):
 * - A 429 (error 20429) is "never processed and always safe to retry", and a 503 (20503) means the
 *   service did not take the request: both are retried for every request, honouring Retry-After.
 * - A 500 on a POST that creates a call or message is explicitly NOT safe to retry ("it is
 *   possible for a customer to receive multiple messages or calls"), and neither is a 502/504, a
 *   timeout or a reset connection: the request may have created the call. There is no idempotency
 *   key, so such a request is never repeated; it ends as DIAL_UNCERTAIN and the listener must not
 *   redial. GET requests are idempotent, so reads also retry on any 5xx and any network error.
 * - Network errors raised before the request left (connection refused, DNS failure, unreachable
 *   network) are retried for every request: Twilio cannot have seen them.
 * - Everything else (4xx) is final: 21610 → OPTED_OUT (remembered for the dialer's lifetime and
 *   reported through `onOptOut` so the listener can persist it), other codes → DIAL_FAILED with
 *   the Twilio code in the message. Twilio's own message text is never copied: it can contain the
 *   phone number, and neither are SDK/axios errors attached as `cause` (they carry the request
 *   body and the Authorization header).
 * Retries use capped exponential backoff with jitter through the injected sleep; call creation is
 * paced to `callsPerSecond` (messages are not call-paced).
 *
 * The SDK reads TWILIO_EDGE, TWILIO_REGION and TWILIO_LOG_LEVEL from the environment when its
 * options leave them unset; they are always set here, so the environment can neither redirect
 * requests (a region rewrites the host, even of a mock) nor turn on request logging.
 */
import twilio from 'twilio';
import type TwilioRequestClient from 'twilio/lib/base/RequestClient.js';
import type * as TwilioResponseModule from 'twilio/lib/http/response.js';
import { HandoffError } from '../protocol/index.js';
import {
  assertCallSid,
  callCreateOptions,
  callUpdateOptions,
  messageCreateOptions,
} from './call-params.js';
import { isAnsweredBy, isCallStatus } from './dialer.js';
import type {
  CallInfo,
  DialRequest,
  DialResult,
  Dialer,
  EndCallMode,
  MessageChannel,
  MessageRequest,
  MessageResult,
  SignatureValidator,
} from './dialer.js';
import { abortableSleep, createPacer } from './pacer.js';
import type { Pacer, Sleep } from './pacer.js';

/** A channel on which a number can opt out; `voice` covers calls. */
export type OptOutChannel = MessageChannel | 'voice';

export interface OptOut {
  to: string;
  channel: OptOutChannel;
}

export interface TwilioDialerOptions {
  accountSid: string;
  authToken: string;
  /** Replaces https://api.twilio.com (tests point it at a mock). */
  apiBaseUrl?: string;
  /** Outbound calls per second allowed on the account; default 1. */
  callsPerSecond?: number;
  /** Per-request timeout; default 10 s (a person is waiting). */
  requestTimeoutMs?: number;
  /** Retries after the first attempt, for the retryable cases only; default 3. */
  maxRetries?: number;
  /** First backoff step; default 250 ms. */
  retryBaseMs?: number;
  /** Ceiling of one backoff wait, Retry-After included; default 4 s. */
  retryMaxMs?: number;
  clock?: () => number;
  sleep?: Sleep;
  /** Source of jitter in [0, 1); default Math.random. */
  random?: () => number;
  /** Opt-outs known from earlier runs: refused without a request. */
  optedOut?: Iterable<OptOut>;
  /** Told about each new opt-out (Twilio 21610), so the caller can persist it. */
  onOptOut?: (optOut: OptOut) => void;
}

const DEFAULTS = Object.freeze({
  callsPerSecond: 1,
  requestTimeoutMs: 10_000,
  maxRetries: 3,
  retryBaseMs: 250,
  retryMaxMs: 4_000,
});

const ACCOUNT_SID_RE = /^AC[0-9a-fA-F]{32}$/;

// Errors raised while connecting: the request never left, so Twilio cannot have acted on it.
const PRE_SEND_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
]);
const TIMEOUT_NETWORK_CODES: ReadonlySet<string> = new Set(['ECONNABORTED', 'ETIMEDOUT']);

const OPTED_OUT_CODE = 21610;
const TOO_MANY_REQUESTS_CODE = 20429;
const SERVICE_UNAVAILABLE_CODE = 20503;

type TwilioResponse<T> = TwilioResponseModule.default<T>;

interface RetryPolicy {
  maxRetries: number;
  retryBaseMs: number;
  retryMaxMs: number;
  sleep: Sleep;
  random: () => number;
}

/** The SDK's HTTP client with our retry policy in front (see the header comment). */
class RetryingRequestClient extends twilio.RequestClient {
  readonly #policy: RetryPolicy;

  constructor(timeoutMs: number, policy: RetryPolicy) {
    super({ timeout: timeoutMs, keepAlive: true, autoRetry: false });
    this.#policy = policy;
  }

  override async request<TData>(opts: TwilioRequestClient.RequestOptions<TData>): Promise<TwilioResponse<TData>> {
    const idempotent = opts.method === 'get' || opts.method === 'delete';
    for (let retry = 0; ; retry++) {
      const canRetry = retry < this.#policy.maxRetries;
      let response: TwilioResponse<TData>;
      try {
        response = await super.request(opts);
      } catch (err) {
        const code = networkErrorCode(err);
        const safe = code !== undefined && (idempotent || PRE_SEND_NETWORK_CODES.has(code));
        if (!canRetry || !safe) throw err;
        await this.#policy.sleep(this.#backoffMs(retry, undefined));
        continue;
      }
      if (!canRetry || !retryableResponse(response, idempotent)) return response;
      await this.#policy.sleep(this.#backoffMs(retry, retryAfterMs(response)));
    }
  }

  #backoffMs(retry: number, retryAfter: number | undefined): number {
    const { retryBaseMs, retryMaxMs, random } = this.#policy;
    const ceiling = Math.min(retryMaxMs, retryBaseMs * 2 ** retry);
    // Half fixed, half random: never zero, and concurrent clients spread out.
    const jittered = ceiling / 2 + (ceiling / 2) * random();
    return Math.round(Math.min(retryMaxMs, Math.max(jittered, retryAfter ?? 0)));
  }
}

function retryableResponse(response: TwilioResponse<unknown>, idempotent: boolean): boolean {
  const status = response.statusCode;
  const code = bodyCode(response.body);
  if (status === 429 || code === TOO_MANY_REQUESTS_CODE) return true;
  if (status === 503 || code === SERVICE_UNAVAILABLE_CODE) return true;
  return idempotent && status >= 500;
}

function retryAfterMs(response: TwilioResponse<unknown>): number | undefined {
  const headers: unknown = response.headers;
  if (typeof headers !== 'object' || headers === null) return undefined;
  const value: unknown = (headers as Record<string, unknown>)['retry-after'];
  if (typeof value !== 'string' || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

function bodyCode(body: unknown): number | undefined {
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const code: unknown = (parsed as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}

/** The system error code of a transport failure (axios error without a response). */
function networkErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { isAxiosError?: unknown; response?: unknown; code?: unknown };
  if (e.isAxiosError !== true || e.response !== undefined) return undefined;
  return typeof e.code === 'string' ? e.code : 'ERR_NETWORK';
}

/** Status and Twilio code of an error response (RestException or RFC 9457 exception). */
function twilioErrorOf(err: unknown): { status: number; code: number | undefined } | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as Error & { status?: unknown; code?: unknown; isAxiosError?: unknown };
  if (e.isAxiosError === true || typeof e.status !== 'number') return undefined;
  return { status: e.status, code: typeof e.code === 'number' ? e.code : undefined };
}

interface Operation {
  /** Names the request in error messages, e.g. "call create". */
  what: string;
  /** True for the non-idempotent POSTs that create a call or a message. */
  creates: boolean;
}

/** Turns whatever the SDK threw into the HandoffError the `Dialer` contract promises. */
function classify(err: unknown, op: Operation): HandoffError {
  const rest = twilioErrorOf(err);
  if (rest !== undefined) {
    const label = `${op.what}: Twilio HTTP ${rest.status}${rest.code === undefined ? '' : ` code ${rest.code}`}`;
    if (rest.code === OPTED_OUT_CODE) return new HandoffError('OPTED_OUT', `${label}: recipient has opted out`);
    if (rest.status === 429 || rest.code === TOO_MANY_REQUESTS_CODE || rest.status === 503) {
      return new HandoffError('UNAVAILABLE', `${label}: still refused after the retries; nothing was created`);
    }
    if (rest.status >= 500) {
      return op.creates
        ? new HandoffError('DIAL_UNCERTAIN', `${label}: the request may have been carried out; not retried`)
        : new HandoffError('UNAVAILABLE', `${label}: still failing after the retries`);
    }
    if (rest.status === 404 && !op.creates) return new HandoffError('NOT_FOUND', `${label}: no such resource`);
    return new HandoffError('DIAL_FAILED', `${label}: refused`);
  }
  const network = networkErrorCode(err);
  if (network !== undefined) {
    if (PRE_SEND_NETWORK_CODES.has(network)) {
      return new HandoffError('UNAVAILABLE', `${op.what}: Twilio unreachable (${network}); nothing was sent`);
    }
    if (op.creates) {
      return new HandoffError('DIAL_UNCERTAIN', `${op.what}: no answer from Twilio (${network}); the request may have been carried out; not retried`);
    }
    if (TIMEOUT_NETWORK_CODES.has(network)) return new HandoffError('TIMEOUT', `${op.what}: Twilio did not answer in time`);
    return new HandoffError('UNAVAILABLE', `${op.what}: network error (${network})`);
  }
  if (err instanceof HandoffError) return err;
  // The SDK's own argument checks; our inputs are validated first, so this is a bug of ours.
  return new HandoffError('INTERNAL', `${op.what}: unexpected SDK failure (${err instanceof Error ? err.name : typeof err})`);
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new HandoffError('CONFIG', `${name} must be a positive number`);
  return value;
}

/** The `Dialer` that talks to Twilio (see the header comment for retries and error codes). */
export class TwilioDialer implements Dialer {
  readonly #client: twilio.Twilio;
  readonly #pacer: Pacer;
  readonly #optedOut = new Set<string>();
  readonly #onOptOut: ((optOut: OptOut) => void) | undefined;

  constructor(options: TwilioDialerOptions) {
    if (!ACCOUNT_SID_RE.test(options.accountSid)) throw new HandoffError('CONFIG', 'Twilio account SID must be AC followed by 32 hex digits');
    if (options.authToken === '') throw new HandoffError('CONFIG', 'Twilio auth token is empty');
    const callsPerSecond = positive(options.callsPerSecond ?? DEFAULTS.callsPerSecond, 'callsPerSecond');
    const requestTimeoutMs = positive(options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs, 'requestTimeoutMs');
    const maxRetries = options.maxRetries ?? DEFAULTS.maxRetries;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new HandoffError('CONFIG', 'maxRetries must be an integer ≥ 0');
    const retryBaseMs = positive(options.retryBaseMs ?? DEFAULTS.retryBaseMs, 'retryBaseMs');
    const retryMaxMs = positive(options.retryMaxMs ?? DEFAULTS.retryMaxMs, 'retryMaxMs');
    let apiBaseUrl: string | undefined;
    if (options.apiBaseUrl !== undefined) {
      try {
        apiBaseUrl = new URL(options.apiBaseUrl).href.replace(/\/+$/, '');
      } catch (err) {
        throw new HandoffError('CONFIG', 'apiBaseUrl is not an absolute URL', { cause: err });
      }
    }
    const sleep = options.sleep ?? abortableSleep;
    const clock = options.clock ?? Date.now;

    const httpClient = new RetryingRequestClient(requestTimeoutMs, {
      maxRetries,
      retryBaseMs,
      retryMaxMs,
      sleep,
      random: options.random ?? Math.random,
    });
    // edge/region '' (not undefined) stop the SDK from falling back to TWILIO_EDGE/TWILIO_REGION.
    this.#client = twilio(options.accountSid, options.authToken, {
      httpClient,
      edge: '',
      region: '',
      logLevel: 'info',
    });
    if (apiBaseUrl !== undefined) this.#client.api.baseUrl = apiBaseUrl;
    this.#pacer = createPacer({ intervalMs: 1000 / callsPerSecond, clock, sleep });
    for (const o of options.optedOut ?? []) this.#optedOut.add(optOutKey(o));
    this.#onOptOut = options.onOptOut;
  }

  /** True when `to` opted out on `channel` (known at start or learnt from a 21610). */
  isOptedOut(to: string, channel: OptOutChannel): boolean {
    return this.#optedOut.has(optOutKey({ to, channel }));
  }

  async dial(req: DialRequest): Promise<DialResult> {
    const options = callCreateOptions(req);
    this.#refuseOptedOut({ to: req.to, channel: 'voice' });
    await this.#pacer.take();
    const call = await this.#run({ what: 'call create', creates: true }, { to: req.to, channel: 'voice' }, () =>
      this.#client.calls.create(options),
    );
    return { sid: call.sid, status: callStatusOf(call.status) };
  }

  async sendMessage(req: MessageRequest): Promise<MessageResult> {
    const options = messageCreateOptions(req);
    const optOut: OptOut = { to: req.to, channel: req.channel };
    this.#refuseOptedOut(optOut);
    const message = await this.#run({ what: `${req.channel} message create`, creates: true }, optOut, () =>
      this.#client.messages.create(options),
    );
    return { sid: message.sid };
  }

  async getCall(sid: string): Promise<CallInfo> {
    assertCallSid(sid);
    const call = await this.#run({ what: 'call fetch', creates: false }, undefined, () => this.#client.calls(sid).fetch());
    return callInfoOf(call);
  }

  async endCall(sid: string, mode: EndCallMode): Promise<CallInfo> {
    assertCallSid(sid);
    const call = await this.#run({ what: 'call update', creates: false }, undefined, () =>
      this.#client.calls(sid).update(callUpdateOptions(mode)),
    );
    return callInfoOf(call);
  }

  async #run<T>(op: Operation, optOut: OptOut | undefined, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      const error = classify(err, op);
      if (error.code === 'OPTED_OUT' && optOut !== undefined) this.#rememberOptOut(optOut);
      throw error;
    }
  }

  #refuseOptedOut(optOut: OptOut): void {
    if (this.#optedOut.has(optOutKey(optOut))) {
      throw new HandoffError('OPTED_OUT', `recipient has opted out of ${optOut.channel} (remembered from Twilio 21610)`);
    }
  }

  #rememberOptOut(optOut: OptOut): void {
    const key = optOutKey(optOut);
    if (this.#optedOut.has(key)) return;
    this.#optedOut.add(key);
    this.#onOptOut?.({ ...optOut });
  }
}

function optOutKey(o: OptOut): string {
  return `${o.channel}:${o.to}`;
}

function callStatusOf(status: unknown): CallInfo['status'] {
  if (!isCallStatus(status)) throw new HandoffError('DIAL_FAILED', 'Twilio reported an unknown call status');
  return status;
}

function callInfoOf(call: { sid: string; status: unknown; answeredBy?: unknown; duration?: unknown }): CallInfo {
  const info: CallInfo = { sid: call.sid, status: callStatusOf(call.status) };
  if (isAnsweredBy(call.answeredBy)) info.answeredBy = call.answeredBy;
  if (typeof call.duration === 'string' && /^\d+$/.test(call.duration)) info.durationSec = Number(call.duration);
  return info;
}

/** A `SignatureValidator` backed by the SDK's own `validateRequest`. Throws CONFIG on an empty token. */
export function createTwilioSignatureValidator(authToken: string): SignatureValidator {
  if (authToken === '') throw new HandoffError('CONFIG', 'Twilio auth token is empty');
  return (signature, url, params) => twilio.validateRequest(authToken, signature, url, params);
}
