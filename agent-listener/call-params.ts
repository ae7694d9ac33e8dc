/**
 * The parameters of every Twilio request the listener makes, built in one place so that the real
 * dialer and the dry-run dialer cannot drift apart.
 *
 * The options use the SDK's camelCase names; `toTwilioForm` turns them into the form fields the
 * SDK puts on the wire (for these fields the SDK only capitalises the first letter and repeats
 * array values), which is what the dry-run prints and what the contract tests compare.
 * Validation happens here, before any I/O: a bad number or URL is a CONFIG error, not a Twilio
 * 4xx that would cost a request.
 */
import { E164_RE, HandoffError, isSafeId } from '../protocol/index.js';
import { STATUS_CALLBACK_EVENTS } from './dialer.js';
import type { DialRequest, EndCallMode, MessageRequest } from './dialer.js';
import { streamTwiml, twimlUrlWithHandoff } from './twiml.js';

/** Twilio's ceiling for a call's ring timeout, in seconds. */
export const MAX_RING_TIMEOUT_SEC = 600;
/** Twilio's ceiling for a message body, in characters. */
export const MAX_MESSAGE_CHARS = 1600;

export interface CallCreateOptions {
  to: string;
  from: string;
  twiml?: string;
  url?: string;
  timeout: number;
  machineDetection?: 'Enable';
  statusCallback?: string;
  statusCallbackEvent?: string[];
  statusCallbackMethod?: 'POST';
}

export interface MessageCreateOptions {
  to: string;
  from: string;
  body: string;
}

export interface CallUpdateOptions {
  status: 'canceled' | 'completed';
}

/** Form fields in wire order; a repeated key appears once per value. */
export type FormParams = Array<[string, string]>;

/** The `calls.create` options for a dial request. Throws CONFIG on an invalid request. */
export function callCreateOptions(req: DialRequest): CallCreateOptions {
  assertHandoffId(req.handoffId);
  assertE164(req.to, 'to');
  assertE164(req.from, 'from');
  if (!Number.isInteger(req.ringTimeoutSec) || req.ringTimeoutSec < 1 || req.ringTimeoutSec > MAX_RING_TIMEOUT_SEC) {
    throw new HandoffError('CONFIG', `ringTimeoutSec must be an integer in 1..${MAX_RING_TIMEOUT_SEC}`);
  }
  let statusCallback: Pick<CallCreateOptions, 'statusCallback' | 'statusCallbackEvent' | 'statusCallbackMethod'> = {};
  if (req.statusCallbackUrl !== undefined) {
    assertHttpUrl(req.statusCallbackUrl, 'statusCallbackUrl');
    statusCallback = {
      statusCallback: req.statusCallbackUrl,
      statusCallbackEvent: [...STATUS_CALLBACK_EVENTS],
      statusCallbackMethod: 'POST',
    };
  }
  // A TwiML-webhook voice server speaks its own greeting, so the lead-in only goes into TwiML.
  const target: Pick<CallCreateOptions, 'twiml' | 'url'> =
    req.target.kind === 'stream'
      ? {
          twiml: streamTwiml({
            streamUrl: req.target.url,
            handoffId: req.handoffId,
            fromNumber: req.to,
            ...(req.leadIn === undefined ? {} : { leadIn: req.leadIn }),
          }),
        }
      : { url: twimlUrlWithHandoff(req.target.url, req.handoffId) };
  // Keys in the order the SDK writes the form fields, so that `toTwilioForm` lists them in wire
  // order too (the dry-run test compares both).
  return {
    to: req.to,
    from: req.from,
    ...statusCallback,
    timeout: req.ringTimeoutSec,
    ...(req.machineDetection ? { machineDetection: 'Enable' as const } : {}),
    ...target,
  };
}

/** The `messages.create` options for a message request. Throws CONFIG on an invalid request. */
export function messageCreateOptions(req: MessageRequest): MessageCreateOptions {
  assertHandoffId(req.handoffId);
  assertE164(req.to, 'to');
  assertE164(req.from, 'from');
  if (req.body.trim() === '') throw new HandoffError('CONFIG', 'message body is empty');
  if (req.body.length > MAX_MESSAGE_CHARS) {
    throw new HandoffError('CONFIG', `message body exceeds ${MAX_MESSAGE_CHARS} characters`);
  }
  const address = (n: string): string => (req.channel === 'whatsapp' ? `whatsapp:${n}` : n);
  return { to: address(req.to), from: address(req.from), body: req.body };
}

/** The `calls(sid).update` options that end a call in the given way. */
export function callUpdateOptions(mode: EndCallMode): CallUpdateOptions {
  return { status: mode === 'cancel' ? 'canceled' : 'completed' };
}

/** Throws CONFIG unless `sid` looks like a Twilio call SID. */
export function assertCallSid(sid: string): void {
  // The SID goes into a URL path: refuse anything that could change the path.
  if (!/^CA[0-9a-zA-Z]{32}$/.test(sid)) throw new HandoffError('CONFIG', 'not a call SID');
}

/** The form fields the SDK sends for `options` (camelCase → Twilio's capitalised names). */
export function toTwilioForm(options: object): FormParams {
  const form: FormParams = [];
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const name = key.charAt(0).toUpperCase() + key.slice(1);
    const values: unknown[] = Array.isArray(value) ? value : [value];
    for (const v of values) form.push([name, String(v)]);
  }
  return form;
}

/** The API paths, relative to the API base URL, of the requests the dialers make. */
export const TWILIO_PATHS = Object.freeze({
  calls: (accountSid: string): string => `/2010-04-01/Accounts/${accountSid}/Calls.json`,
  call: (accountSid: string, sid: string): string => `/2010-04-01/Accounts/${accountSid}/Calls/${sid}.json`,
  messages: (accountSid: string): string => `/2010-04-01/Accounts/${accountSid}/Messages.json`,
});

function assertHandoffId(id: string): void {
  if (!isSafeId(id)) throw new HandoffError('CONFIG', 'handoffId must match [A-Za-z0-9_-]{1,128}');
}

function assertE164(number: string, field: string): void {
  // The number itself stays out of the message: messages end up in logs.
  if (!E164_RE.test(number)) throw new HandoffError('CONFIG', `${field} is not an E.164 phone number`);
}

function assertHttpUrl(url: string, field: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new HandoffError('CONFIG', `${field} is not an absolute URL`, { cause: err });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new HandoffError('CONFIG', `${field} must be an http(s) URL`);
  }
}
