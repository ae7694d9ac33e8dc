/**
 * The one error model of handoff-relay.
 *
 * Every failure that crosses a module boundary is a `HandoffError` with a stable `code`. The table
 * below is the single place that maps a code to its HTTP status (hub) and its process exit code
 * (CLI). Codes are never renamed or reused: scripts and the hub client branch on them.
 */

/** Stable error codes, with the HTTP status and CLI exit code of each. */
export const ERROR_CODES = Object.freeze({
  // Verification outcomes of a payload (DESIGN.md §3.4).
  VERSION: { http: 422, exit: 10, summary: 'unsupported protocol_version' },
  SCHEMA: { http: 422, exit: 11, summary: 'malformed or invalid payload' },
  ADDRESSING: { http: 422, exit: 12, summary: 'payload not addressed to this agent, or unknown peer' },
  EXPIRED: { http: 410, exit: 13, summary: 'handoff expired' },
  SIGNATURE: { http: 422, exit: 14, summary: 'HMAC signature does not verify' },
  REPLAY: { http: 409, exit: 15, summary: 'handoff id already seen' },
  // Key files (DESIGN.md §3.3).
  KEY_FILE: { http: 500, exit: 16, summary: 'key file missing, unsafe or unusable' },
  // Spool and state machine (DESIGN.md §4).
  INVALID_ID: { http: 400, exit: 20, summary: 'handoff id is not [A-Za-z0-9_-]{1,128}' },
  NOT_FOUND: { http: 404, exit: 21, summary: 'no such handoff' },
  ALREADY_CLAIMED: { http: 409, exit: 22, summary: 'handoff already claimed' },
  CONFLICT: { http: 409, exit: 23, summary: 'same handoff id with different content' },
  INVALID_STATE: { http: 409, exit: 24, summary: 'handoff is not in a state that allows this' },
  FENCED: { http: 409, exit: 25, summary: 'claim token does not match the current claim' },
  QUEUE_FULL: { http: 429, exit: 26, summary: 'too many pending handoffs for this target' },
  IO: { http: 500, exit: 27, summary: 'file system error; nothing was acknowledged' },
  TAMPERED: { http: 500, exit: 28, summary: 'the audit log was edited, reordered or cut' },
  // HTTP boundary.
  BAD_REQUEST: { http: 400, exit: 30, summary: 'malformed request' },
  UNAUTHORIZED: { http: 401, exit: 31, summary: 'missing or unknown bearer token' },
  FORBIDDEN: { http: 403, exit: 32, summary: 'this agent may not do that' },
  TOO_LARGE: { http: 413, exit: 33, summary: 'request body too large' },
  UNAVAILABLE: { http: 503, exit: 34, summary: 'service unavailable or unreachable' },
  TIMEOUT: { http: 504, exit: 35, summary: 'timed out' },
  TOO_MANY_WAITING: { http: 429, exit: 36, summary: 'this agent has too many long-polls and watches parked' },
  // Configuration and usage (CLI).
  USAGE: { http: 400, exit: 2, summary: 'wrong command-line usage' },
  CONFIG: { http: 500, exit: 3, summary: 'invalid configuration' },
  // Telephony (agent listener).
  DIAL_FAILED: { http: 502, exit: 40, summary: 'the call or message could not be placed' },
  OPTED_OUT: { http: 409, exit: 41, summary: 'the recipient has opted out (Twilio 21610)' },
  NO_NUMBER: { http: 422, exit: 42, summary: 'no number to call for this caller' },
  DIAL_UNCERTAIN: { http: 502, exit: 43, summary: 'no definite answer from Twilio; a call or message may exist' },
  // Anything unexpected.
  INTERNAL: { http: 500, exit: 70, summary: 'internal error' },
} as const);

export type ErrorCode = keyof typeof ERROR_CODES;

/** The verification outcome codes of DESIGN.md §3.4, in the order they are checked. */
export const VERIFY_CODES = Object.freeze(['VERSION', 'SCHEMA', 'ADDRESSING', 'SIGNATURE', 'EXPIRED', 'REPLAY'] as const);
export type VerifyCode = (typeof VERIFY_CODES)[number];

/** True when `code` is one of the stable codes of `ERROR_CODES`. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

/** The single error class: a stable `code` plus a human message that never contains secrets. */
export class HandoffError extends Error {
  override readonly name = 'HandoffError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Wraps anything thrown into a `HandoffError`; an existing one passes through unchanged. */
export function toHandoffError(err: unknown, fallback: ErrorCode = 'INTERNAL'): HandoffError {
  if (err instanceof HandoffError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HandoffError(fallback, message, { cause: err });
}
