/**
 * HTTP client of the hub (DESIGN.md §5), used by the listener and by the CLI in hub mode.
 *
 * By default connections are kept alive (undici, loaded on the first request); with
 * `keepAlive: false` each request has a `node:http` connection of its own and undici is never
 * loaded, which is what a one-shot process wants (hub-transport.ts says why).
 *
 * Every request has explicit timeouts: `timeoutMs` for ordinary calls, and the long-poll's `wait`
 * plus `timeoutMs` for polls and waiting gets, so a healthy but idle hub is never mistaken for a
 * dead one. Failures come back as `HandoffError`: the hub's error body
 * `{"error":{"code","message"}}` keeps its code; an unreachable hub, a broken connection or a reply
 * cut short is UNAVAILABLE; a timeout is TIMEOUT.
 *
 * Payloads travel as text: `start` sends the payload bytes unchanged and `poll` returns each
 * payload exactly as the hub stored it (cut out of the reply, never re-serialised), so the
 * signature can be verified over the bytes the initiator signed.
 *
 * Claim tokens: `accept` returns the hub's claim token and the client also remembers it per id, so
 * `complete`/`reject`/`renew` from the same client need not pass it; a client that restarted
 * passes the token it persisted as `claim_token`.
 */
import { HandoffError, isErrorCode, isSafeId, parseJsonDocument } from '../protocol/index.js';
import type { ErrorCode } from '../protocol/index.js';
import { connectionPerRequest, type Reply, type Transport } from './hub-transport.js';

export interface HubClientOptions {
  /** Base URL of the hub, e.g. `http://127.0.0.1:8787`. */
  url: string;
  /** This agent's bearer token. */
  token: string;
  /** Timeout of an ordinary request, and the margin added to a long-poll's wait; default 10 s. */
  timeoutMs?: number;
  /** Keep-alive time of idle connections; default 30 s. */
  keepAliveMs?: number;
  /**
   * Keep connections open between requests (default true). False for a process that makes one
   * or two requests and exits: each request gets its own connection and undici is never loaded.
   */
  keepAlive?: boolean;
}

/** States as the hub names them. */
export type HubHandoffState = 'pending' | 'claimed' | 'archived' | 'rejected';

export interface StartResult {
  status: HubHandoffState;
  handoff_id: string;
  expires_at: string;
  reason?: string;
  /** True when the hub stored it now (201), false for an identical repeat (200). */
  created: boolean;
}

export interface AcceptResult {
  handoff_id: string;
  status: HubHandoffState;
  /** The claim token: needed to complete, reject or renew this claim. */
  token: string;
  lease_until: string;
  claimed_at?: string;
}

export interface CompleteRequest {
  outcome: string;
  final_transcript?: unknown[];
  notes?: string;
  /** Defaults to the token remembered from this client's `accept`. */
  claim_token?: string;
}

export interface TransitionResult {
  handoff_id: string;
  status: HubHandoffState;
  outcome?: string;
  completed_at?: string;
  reason?: string;
  rejected_at?: string;
  lease_until?: string;
}

/** What `GET /handoffs/{id}` shows; `payloadText` only for the target. */
export interface HandoffView {
  handoff_id: string;
  state: HubHandoffState;
  from_agent: string;
  to_agent: string;
  expires_at: string;
  received_at?: string;
  claimed_by?: string;
  claimed_at?: string;
  lease_until?: string;
  completed_at?: string;
  outcome?: string;
  rejected_at?: string;
  rejected_by?: string;
  reason?: string;
  recovered?: boolean;
  notes?: string;
  final_transcript?: unknown[];
  payloadText?: string;
}

export interface CallOptions {
  signal?: AbortSignal;
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const STATUS_CODES: Record<number, ErrorCode> = { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT', 410: 'EXPIRED', 413: 'TOO_LARGE', 429: 'QUEUE_FULL' };

/** `rest` (an absolute path such as `/api/v1/…`) under the hub's URL, keeping any path prefix of it. */
export function hubEndpoint(hubUrl: URL, rest: string): string {
  return `${hubUrl.origin}${hubUrl.pathname.replace(/\/+$/, '')}${rest}`;
}

export class HubClient {
  readonly #base: string;
  readonly #authorization: string;
  readonly #timeoutMs: number;
  readonly #keepAliveMs: number | undefined;
  #keptAlive: Promise<Transport> | undefined;
  readonly #claimTokens = new Map<string, string>();

  /** @throws HandoffError CONFIG for a URL that is not http(s), an empty token or a bad timeout. */
  constructor(options: HubClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (cause) {
      throw new HandoffError('CONFIG', 'hub url is not a valid URL', { cause });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new HandoffError('CONFIG', 'hub url must be http(s)');
    if (typeof options.token !== 'string' || options.token.trim() === '' || /\s/.test(options.token)) {
      throw new HandoffError('CONFIG', 'hub token must be a non-empty string without whitespace');
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    const keepAliveMs = options.keepAliveMs ?? 30_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new HandoffError('CONFIG', 'timeoutMs must be a positive number');
    if (!Number.isFinite(keepAliveMs) || keepAliveMs <= 0) throw new HandoffError('CONFIG', 'keepAliveMs must be a positive number');
    this.#base = hubEndpoint(url, '/api/v1');
    this.#authorization = `Bearer ${options.token}`;
    this.#timeoutMs = timeoutMs;
    this.#keepAliveMs = options.keepAlive === false ? undefined : keepAliveMs;
  }

  /**
   * Stores a signed payload at the hub (idempotent for identical bytes).
   * @throws HandoffError FORBIDDEN, ADDRESSING, SCHEMA, VERSION, EXPIRED, CONFLICT, QUEUE_FULL, TOO_LARGE, UNAVAILABLE, TIMEOUT.
   */
  async start(payload: string | Uint8Array, options: CallOptions = {}): Promise<StartResult> {
    const reply = await this.#send('POST', '/handoffs/start', { body: payload, signal: options.signal });
    const body = parseObject(reply.text);
    return {
      status: body.status as HubHandoffState,
      handoff_id: String(body.handoff_id),
      expires_at: String(body.expires_at),
      ...(typeof body.reason === 'string' ? { reason: body.reason } : {}),
      created: reply.status === 201,
    };
  }

  /**
   * Long-polls for pending handoffs addressed to `agent`; resolves with their exact payload texts
   * (empty when `waitSec` passed without any).
   * @throws HandoffError FORBIDDEN, UNAUTHORIZED, UNAVAILABLE, TIMEOUT.
   */
  async poll(agent: string, waitSec: number, options: CallOptions = {}): Promise<string[]> {
    checkWait(waitSec);
    const query = new URLSearchParams({ agent, wait: String(waitSec) });
    const reply = await this.#send('GET', `/handoffs/poll?${query}`, { waitMs: waitSec * 1000, signal: options.signal });
    if (reply.status === 204) return [];
    const doc = parseDocument(reply.text);
    const span = doc.spans.get('handoffs');
    if (span === undefined || !Array.isArray((doc.value as Record<string, unknown>).handoffs)) {
      throw new HandoffError('UNAVAILABLE', 'hub reply has no handoffs list');
    }
    return splitArray(doc.text.slice(span.start, span.end));
  }

  /**
   * Claims a pending handoff for this agent; the claim token is returned and remembered.
   * @throws HandoffError NOT_FOUND, ALREADY_CLAIMED, EXPIRED, FORBIDDEN, INVALID_ID, UNAVAILABLE, TIMEOUT.
   */
  async accept(id: string, options: CallOptions & { claim_token?: string } = {}): Promise<AcceptResult> {
    const body = options.claim_token === undefined ? undefined : JSON.stringify({ claim_token: options.claim_token });
    const reply = await this.#send('POST', `/handoffs/${checkedId(id)}/accept`, { body, signal: options.signal });
    const answer = parseObject(reply.text);
    const token = String(answer.claim_token);
    this.#claimTokens.set(id, token);
    return {
      handoff_id: String(answer.handoff_id),
      status: answer.status as HubHandoffState,
      token,
      lease_until: String(answer.lease_until),
      ...(typeof answer.claimed_at === 'string' ? { claimed_at: answer.claimed_at } : {}),
    };
  }

  /**
   * Completes a claimed handoff (idempotent for the same outcome).
   * @throws HandoffError FENCED (no or wrong token, lease over), INVALID_STATE, FORBIDDEN, NOT_FOUND, UNAVAILABLE, TIMEOUT.
   */
  async complete(id: string, input: CompleteRequest, options: CallOptions = {}): Promise<TransitionResult> {
    const claimToken = input.claim_token ?? this.#claimTokens.get(id);
    if (claimToken === undefined) throw new HandoffError('FENCED', 'no claim token known for this handoff');
    const body = { ...input, claim_token: claimToken };
    const reply = await this.#send('POST', `/handoffs/${checkedId(id)}/complete`, { body: JSON.stringify(body), signal: options.signal });
    this.#claimTokens.delete(id);
    return parseObject(reply.text) as unknown as TransitionResult;
  }

  /**
   * Rejects a pending or claimed handoff with a code-like reason (`SIGNATURE`, `no_answer`, …).
   * @throws HandoffError FENCED, INVALID_STATE, FORBIDDEN, NOT_FOUND, BAD_REQUEST, UNAVAILABLE, TIMEOUT.
   */
  async reject(id: string, reason: string, options: CallOptions & { claim_token?: string } = {}): Promise<TransitionResult> {
    const claimToken = options.claim_token ?? this.#claimTokens.get(id);
    const body = claimToken === undefined ? { reason } : { reason, claim_token: claimToken };
    const reply = await this.#send('POST', `/handoffs/${checkedId(id)}/reject`, { body: JSON.stringify(body), signal: options.signal });
    this.#claimTokens.delete(id);
    return parseObject(reply.text) as unknown as TransitionResult;
  }

  /**
   * Extends the lease of a claim (a call that lasts longer than the lease).
   * @throws HandoffError FENCED, INVALID_STATE, FORBIDDEN, NOT_FOUND, UNAVAILABLE, TIMEOUT.
   */
  async renew(id: string, options: CallOptions & { claim_token?: string; lease_ms?: number } = {}): Promise<TransitionResult> {
    const claimToken = options.claim_token ?? this.#claimTokens.get(id);
    if (claimToken === undefined) throw new HandoffError('FENCED', 'no claim token known for this handoff');
    const body = options.lease_ms === undefined ? { claim_token: claimToken } : { claim_token: claimToken, lease_ms: options.lease_ms };
    const reply = await this.#send('POST', `/handoffs/${checkedId(id)}/renew`, { body: JSON.stringify(body), signal: options.signal });
    return parseObject(reply.text) as unknown as TransitionResult;
  }

  /**
   * The state and relay facts of a handoff; with `waitSec`, waits until the state differs from
   * `since` (default: its state when the request arrives) or the wait ends.
   * @throws HandoffError NOT_FOUND, FORBIDDEN, INVALID_ID, UNAVAILABLE, TIMEOUT.
   */
  async get(id: string, options: CallOptions & { waitSec?: number; since?: HubHandoffState } = {}): Promise<HandoffView> {
    const query = new URLSearchParams();
    if (options.waitSec !== undefined) {
      checkWait(options.waitSec);
      query.set('wait', String(options.waitSec));
    }
    if (options.since !== undefined) query.set('since', options.since);
    const suffix = query.size > 0 ? `?${query}` : '';
    const reply = await this.#send('GET', `/handoffs/${checkedId(id)}${suffix}`, {
      waitMs: (options.waitSec ?? 0) * 1000,
      signal: options.signal,
    });
    const doc = parseDocument(reply.text);
    const view = { ...(JSON.parse(reply.text) as Record<string, unknown>) };
    delete view.payload;
    const span = doc.spans.get('payload');
    if (span !== undefined) view.payloadText = doc.text.slice(span.start, span.end);
    return view as unknown as HandoffView;
  }

  /**
   * Closes the kept-alive connections (a client without them has none open between requests); a
   * later request opens new ones.
   */
  async close(): Promise<void> {
    const transport = this.#keptAlive;
    this.#keptAlive = undefined;
    // A load that failed left nothing open (its error went to the request that started it).
    if (transport !== undefined) await (await transport.catch(() => undefined))?.close();
  }

  async #send(method: string, path: string, options: { body?: string | Uint8Array; waitMs?: number; signal?: AbortSignal }): Promise<Reply> {
    const timeoutMs = this.#timeoutMs + (options.waitMs ?? 0);
    const headers: Record<string, string> = { authorization: this.#authorization, accept: 'application/json' };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    // undici's own timers are coarse (about a second); the deadline signal makes `timeoutMs` exact.
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal === undefined ? deadline : AbortSignal.any([options.signal, deadline]);
    let reply: Reply;
    try {
      const transport = await this.#transport();
      reply = await transport.send({ method: method as 'GET' | 'POST', url: `${this.#base}${path}`, headers, body: options.body, timeoutMs, signal });
    } catch (err) {
      if (deadline.aborted && options.signal?.aborted !== true) {
        throw new HandoffError('TIMEOUT', `the hub did not answer within ${timeoutMs} ms`, { cause: err });
      }
      throw networkError(err);
    }
    if (reply.status >= 400) throw errorFromReply(reply.status, reply.text);
    return reply;
  }

  #transport(): Transport | Promise<Transport> {
    const keepAliveMs = this.#keepAliveMs;
    if (keepAliveMs === undefined) return connectionPerRequest;
    if (this.#keptAlive === undefined) {
      const loading = import('./undici-transport.js').then((m) => m.keptAliveConnections({ keepAliveMs, connectTimeoutMs: this.#timeoutMs }));
      // A failed load is not kept: the next request tries again.
      loading.catch(() => {
        if (this.#keptAlive === loading) this.#keptAlive = undefined;
      });
      this.#keptAlive = loading;
    }
    return this.#keptAlive;
  }
}

function checkedId(id: string): string {
  if (!isSafeId(id)) throw new HandoffError('INVALID_ID', 'handoff id must match [A-Za-z0-9_-]{1,128}');
  return id;
}

function checkWait(waitSec: number): void {
  if (!Number.isFinite(waitSec) || waitSec < 0) throw new HandoffError('USAGE', 'wait must be a non-negative number of seconds');
}

function networkError(err: unknown): HandoffError {
  if (err instanceof HandoffError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const name = (err as { name?: unknown } | null)?.name;
  if ((typeof code === 'string' && TIMEOUT_CODES.has(code)) || name === 'TimeoutError') {
    return new HandoffError('TIMEOUT', 'the hub did not answer in time', { cause: err });
  }
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED') return new HandoffError('UNAVAILABLE', 'the request to the hub was aborted', { cause: err });
  return new HandoffError('UNAVAILABLE', `the hub is unreachable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

function errorFromReply(status: number, text: string): HandoffError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    const code = body.error?.code;
    if (isErrorCode(code)) {
      return new HandoffError(code, typeof body.error?.message === 'string' ? body.error.message : code);
    }
  } catch {
    // Not our error body (a proxy's page, say): fall back to the HTTP status below.
  }
  const code = STATUS_CODES[status] ?? (status >= 500 ? 'UNAVAILABLE' : 'BAD_REQUEST');
  return new HandoffError(code, `hub answered HTTP ${status}`);
}

function parseDocument(text: string): ReturnType<typeof parseJsonDocument> {
  try {
    return parseJsonDocument(text);
  } catch (cause) {
    throw new HandoffError('UNAVAILABLE', 'hub reply is not valid JSON', { cause });
  }
}

function parseObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new HandoffError('UNAVAILABLE', 'hub reply is not valid JSON', { cause });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new HandoffError('UNAVAILABLE', 'hub reply is not a JSON object');
  return value as Record<string, unknown>;
}

/**
 * The source text of each element of a JSON array text (already known to be valid JSON), exactly
 * as it appears, whitespace included.
 */
export function splitArray(arrayText: string): string[] {
  const elements: string[] = [];
  let depth = 0;
  let inString = false;
  let start = 1;
  const end = arrayText.lastIndexOf(']');
  for (let i = 1; i < end; i++) {
    const ch = arrayText.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++;
      else if (ch === 0x22) inString = false;
      continue;
    }
    if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) depth++;
    else if (ch === 0x7d || ch === 0x5d) depth--;
    else if (ch === 0x2c && depth === 0) {
      elements.push(arrayText.slice(start, i));
      start = i + 1;
    }
  }
  const last = arrayText.slice(start, end);
  if (last.trim() !== '') elements.push(last);
  return elements;
}
