/**
 * The telephony boundary of the listener.
 *
 * The listener never talks to Twilio directly: it holds a `Dialer`. The real one
 * (`twilio-dialer.ts`) is the only module that imports the twilio SDK; `dry-run-dialer.ts`
 * prints what would be sent; tests pass fakes. Every method throws `HandoffError` only, and
 * the codes say what the listener may do next:
 *
 * - `OPTED_OUT`: the recipient opted out (Twilio 21610). Final; do not try again.
 * - `DIAL_FAILED`: Twilio refused the request (a 4xx such as 21211 or 21220). Nothing was created.
 * - `UNAVAILABLE`: Twilio could not be reached or kept answering 429/503 until the retries ran
 *   out. Nothing was created.
 * - `DIAL_UNCERTAIN`: the create request got no definite answer (timeout, reset connection,
 *   500/502/504). A call or message MAY exist. Never redial for the same handoff.
 * - `TIMEOUT`: a read (`getCall`) kept timing out.
 * - `CONFIG`: the request itself is malformed (a ws:// stream URL, a non-E.164 number), found
 *   before any I/O.
 */

/** Call statuses as Twilio reports them, in the resource and in status callbacks. */
export const CALL_STATUSES = Object.freeze([
  'queued',
  'initiated',
  'ringing',
  'in-progress',
  'completed',
  'busy',
  'failed',
  'no-answer',
  'canceled',
] as const);
export type CallStatus = (typeof CALL_STATUSES)[number];

/** The statuses after which a call never changes again. */
export const FINAL_CALL_STATUSES = Object.freeze(['completed', 'busy', 'failed', 'no-answer', 'canceled'] as const);
export type FinalCallStatus = (typeof FINAL_CALL_STATUSES)[number];

/** Answering machine detection results (`AnsweredBy`). */
export const ANSWERED_BY = Object.freeze([
  'human',
  'machine_start',
  'machine_end_beep',
  'machine_end_silence',
  'machine_end_other',
  'fax',
  'unknown',
] as const);
export type AnsweredBy = (typeof ANSWERED_BY)[number];

/** The events a status callback is asked for: every step, so the listener can time each one. */
export const STATUS_CALLBACK_EVENTS = Object.freeze(['initiated', 'ringing', 'answered', 'completed'] as const);

/** Where the redialled call goes once answered. */
export type DialTarget =
  /** A media-stream voice server: `<Connect><Stream url="wss://…">` (no query string allowed). */
  | { kind: 'stream'; url: string }
  /** A TwiML-webhook voice server: Twilio fetches `url?handoff_id=…`. */
  | { kind: 'twiml-url'; url: string };

export interface DialRequest {
  /** Correlates logs, the TwiML parameters and the status callback; never a phone number. */
  handoffId: string;
  /** The person to call back, E.164. */
  to: string;
  /** The target agent's Twilio number, E.164. */
  from: string;
  target: DialTarget;
  /** Spoken with `<Say>` before connecting (stream targets only); truncated to fit 4,000 chars. */
  leadIn?: string;
  ringTimeoutSec: number;
  machineDetection: boolean;
  /** Public URL Twilio posts call progress to; without it the listener polls `getCall`. */
  statusCallbackUrl?: string;
}

export interface DialResult {
  sid: string;
  status: CallStatus;
}

export type MessageChannel = 'sms' | 'whatsapp';

export interface MessageRequest {
  handoffId: string;
  /** E.164; the `whatsapp:` prefix is added by the dialer for WhatsApp. */
  to: string;
  from: string;
  body: string;
  channel: MessageChannel;
}

export interface MessageResult {
  sid: string;
}

export interface CallInfo {
  sid: string;
  status: CallStatus;
  /** Present only when answering machine detection ran and reached a verdict. */
  answeredBy?: AnsweredBy;
  /** Seconds the call lasted; present once it ended after being answered. */
  durationSec?: number;
  /**
   * When this process first saw the call in progress (epoch ms, from the follower's clock); not a
   * Twilio field. Absent when the call was never seen answered, e.g. it ended between two polls.
   */
  answeredAtMs?: number;
}

/** How `endCall` ends a call: `cancel` a queued/ringing one, `hangup` one in progress. */
export type EndCallMode = 'cancel' | 'hangup';

export interface Dialer {
  /** Places exactly one call (never retried once Twilio may have created it). */
  dial(req: DialRequest): Promise<DialResult>;
  sendMessage(req: MessageRequest): Promise<MessageResult>;
  getCall(sid: string): Promise<CallInfo>;
  endCall(sid: string, mode: EndCallMode): Promise<CallInfo>;
}

/** True when `value` is one of the call statuses of `CALL_STATUSES`. */
export function isCallStatus(value: unknown): value is CallStatus {
  return typeof value === 'string' && (CALL_STATUSES as readonly string[]).includes(value);
}

/** True for the statuses after which a call never changes again. */
export function isFinalCallStatus(status: CallStatus): status is FinalCallStatus {
  return (FINAL_CALL_STATUSES as readonly string[]).includes(status);
}

/** True when `value` is one of the `AnsweredBy` values of `ANSWERED_BY`. */
export function isAnsweredBy(value: unknown): value is AnsweredBy {
  return typeof value === 'string' && (ANSWERED_BY as readonly string[]).includes(value);
}

/** True when answering machine detection says a machine (or fax) picked up. */
export function isMachine(answeredBy: AnsweredBy | undefined): boolean {
  return answeredBy !== undefined && answeredBy !== 'human' && answeredBy !== 'unknown';
}

/**
 * What a finished call means for the handoff: `connected` (a person, or AMD could not tell), or
 * the reason to fall back to SMS. Voicemail shows up as `completed`, so only AMD separates it.
 */
export type CallEnd = 'connected' | 'no_answer' | 'busy' | 'failed' | 'canceled' | 'machine';

/** Maps a final call to its `CallEnd`; `undefined` while the call is still going. */
export function callEnd(info: CallInfo): CallEnd | undefined {
  switch (info.status) {
    case 'completed':
      return isMachine(info.answeredBy) ? 'machine' : 'connected';
    case 'no-answer':
      return 'no_answer';
    case 'busy':
    case 'failed':
    case 'canceled':
      return info.status;
    default:
      return undefined;
  }
}

/** Checks an `X-Twilio-Signature` over `url` (the public URL Twilio called) and the form params. */
export type SignatureValidator = (signature: string, url: string, params: Record<string, string | string[]>) => boolean;
