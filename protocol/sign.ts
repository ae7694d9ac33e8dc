/**
 * Signing and verification of v1 payloads (DESIGN.md §3.2–3.4).
 *
 * `hmac = base64(HMAC-SHA256(secret, canonical(payload without "hmac")))`. Verification runs the
 * checks in a fixed order and stops at the first failure, so each outcome has one stable code:
 * VERSION → SCHEMA → ADDRESSING → SIGNATURE → EXPIRED → REPLAY. The signature is checked before
 * expiry so that a forged payload is always reported as forged, never as merely late.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { HandoffError, type VerifyCode } from './errors.js';
import { canonicalJson, fromJs, JsonNumber, type JsonObject, type JsonValue } from './json.js';
import type { KeyRing } from './keys.js';
import {
  AGENT_NAME_RE,
  checkPayloadTree,
  isExpired,
  parsePayload,
  PROTOCOL_VERSION,
  type ParsedPayload,
  type TranscriptEntry,
} from './payload.js';
import { isoSeconds } from './time.js';

/** Our initiator's default time to live: a human is waiting on the line. */
export const DEFAULT_TTL_SEC = 15;

/** The first 16 hex digits of SHA-256 of the caller id (UTF-8), so the number need not travel. */
export function callerHash(callerId: string): string {
  return createHash('sha256').update(callerId, 'utf8').digest('hex').slice(0, 16);
}

function withoutHmac(tree: JsonObject): JsonObject {
  const copy: JsonObject = Object.create(null);
  for (const key of Object.keys(tree)) if (key !== 'hmac') copy[key] = tree[key] as JsonValue;
  return copy;
}

/** The signature of a payload tree (its `hmac` member, if any, is ignored). */
export function computeHmac(tree: JsonObject, secret: Uint8Array): string {
  return createHmac('sha256', secret).update(canonicalJson(withoutHmac(tree)), 'utf8').digest('base64');
}

function hmacMatches(expected: string, received: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(received, 'utf8');
  // The length of a base64 HMAC-SHA256 is public; only the content comparison must be constant-time.
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface SignedPayload {
  /** The file text: the canonical form including `hmac` (compact, sorted, ASCII-only). */
  text: string;
  payload: ParsedPayload;
  tree: JsonObject;
}

/**
 * Signs a payload given as plain values (numbers are written as Python prints them) or as a
 * lossless tree, and checks the result against the schema.
 * @throws HandoffError SCHEMA/VERSION when the fields do not make a valid payload.
 */
export function signPayload(fields: Record<string, unknown> | JsonObject, secret: Uint8Array | string): SignedPayload {
  const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
  const tree = withoutHmac(fromJs(fields) as JsonObject);
  tree.hmac = computeHmac(tree, key);
  const payload = checkPayloadTree(tree);
  return { text: canonicalJson(tree), payload, tree };
}

export interface BuildInput {
  from: string;
  to: string;
  /** The caller's id (phone number); only its hash is sent unless `sendCallbackNumber` is set. */
  callerId?: string;
  callerHash?: string;
  reason: string;
  transcript: TranscriptEntry[];
  resumeHint?: string;
  summary?: string;
  pendingActions?: Array<{ kind: string; [k: string]: unknown }>;
  ttlSec?: number;
  sendCallbackNumber?: boolean;
  callSid?: string;
  consent?: ParsedPayload['consent'];
  channel?: ParsedPayload['channel'];
  priority?: ParsedPayload['priority'];
  hop?: number;
  kid?: string;
  /** Extra fields to sign (kept by receivers as unknown fields). */
  extra?: Record<string, unknown>;
}

/**
 * Builds and signs a new payload the way the reference does (`"{unix_seconds}-{from}-{to}-{hash}"`
 * ids), with our default TTL of 15 s.
 * @throws HandoffError SCHEMA when the inputs do not make a valid payload.
 */
export function buildPayload(input: BuildInput, secret: Uint8Array | string, nowMs: number): SignedPayload {
  const hash = input.callerHash ?? (input.callerId !== undefined ? callerHash(input.callerId) : undefined);
  if (hash === undefined) throw new HandoffError('SCHEMA', 'a caller id or caller hash is required');
  const ttlSec = input.ttlSec ?? DEFAULT_TTL_SEC;
  if (!(ttlSec >= 1 && ttlSec <= 86_400)) throw new HandoffError('SCHEMA', 'ttl must be between 1 and 86400 seconds');
  const startSec = Math.floor(nowMs / 1000);
  const fields: Record<string, unknown> = {
    ...input.extra,
    protocol_version: new JsonNumber(String(PROTOCOL_VERSION)),
    handoff_id: `${startSec}-${input.from}-${input.to}-${hash}`,
    caller_hash: hash,
    from_agent: input.from,
    to_agent: input.to,
    reason: input.reason,
    initiated_at: isoSeconds(startSec * 1000),
    expires_at: isoSeconds((startSec + ttlSec) * 1000),
    transcript: input.transcript,
    context_summary: input.summary,
    resume_hint: input.resumeHint,
    pending_actions: input.pendingActions,
    callback_number: input.sendCallbackNumber ? input.callerId : undefined,
    call_sid: input.callSid,
    consent: input.consent,
    channel: input.channel,
    priority: input.priority,
    hop: input.hop,
    kid: input.kid,
  };
  return signPayload(fields, secret);
}

export interface VerifyOptions {
  /** The listening agent: the payload's `to_agent` must be this name. */
  agent: string;
  keys: KeyRing;
  /** The time to judge expiry at (ms since the epoch). */
  nowMs: number;
  /** Answers whether this (from_agent, handoff_id) was already accepted. */
  seen?: (fromAgent: string, handoffId: string) => boolean;
}

export type VerifyResult =
  | { ok: true; payload: ParsedPayload; tree: JsonObject; text: string; keyIndex: number }
  | { ok: false; code: VerifyCode; message: string; handoffId?: string; fromAgent?: string };

/**
 * Verifies received payload bytes as the listener of `opts.agent` would. Never throws for a bad
 * payload: the outcome carries the typed code (VERSION, SCHEMA, ADDRESSING, SIGNATURE, EXPIRED,
 * REPLAY) and a one-line reason without payload content.
 */
export function verifyPayload(input: Uint8Array | string, opts: VerifyOptions): VerifyResult {
  let doc: ReturnType<typeof parsePayload>;
  try {
    doc = parsePayload(input);
  } catch (err) {
    if (err instanceof HandoffError && (err.code === 'SCHEMA' || err.code === 'VERSION')) {
      return { ok: false, code: err.code, message: err.message };
    }
    throw err;
  }
  const { payload, tree, text } = doc;
  const ids = { handoffId: payload.handoff_id, fromAgent: payload.from_agent };
  if (!AGENT_NAME_RE.test(opts.agent) || payload.to_agent !== opts.agent) {
    return { ok: false, code: 'ADDRESSING', message: `addressed to ${payload.to_agent}, not ${opts.agent}`, ...ids };
  }
  const secrets = opts.keys.secretsFor(payload.from_agent);
  if (!secrets || secrets.length === 0) {
    return { ok: false, code: 'ADDRESSING', message: `no pair secret for peer ${payload.from_agent}`, ...ids };
  }
  const keyIndex = secrets.findIndex((secret) => hmacMatches(computeHmac(tree, secret), payload.hmac));
  if (keyIndex < 0) {
    return { ok: false, code: 'SIGNATURE', message: 'HMAC mismatch (payload tampered or wrong secret)', ...ids };
  }
  if (isExpired(payload, opts.nowMs)) {
    return {
      ok: false,
      code: 'EXPIRED',
      message: `handoff expired at ${payload.expires_at} (now=${new Date(opts.nowMs).toISOString()})`,
      ...ids,
    };
  }
  if (opts.seen?.(payload.from_agent, payload.handoff_id)) {
    return { ok: false, code: 'REPLAY', message: `handoff ${payload.handoff_id} from ${payload.from_agent} was already accepted`, ...ids };
  }
  return { ok: true, payload, tree, text, keyIndex };
}
