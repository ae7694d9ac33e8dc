/**
 * The v1 payload (DESIGN.md §3.1): its schema, the strict parse of received bytes, and the rules
 * that make a handoff id safe to use in a file name.
 */
import * as z from 'zod';
import { HandoffError } from './errors.js';
import { isJsonObject, JsonNumber, parseJsonDocument, toJs, type JsonObject } from './json.js';
import { parseIsoTime } from './time.js';

export const PROTOCOL_VERSION = 1;

/** Handoff ids become file names, so only these characters are accepted. */
export const HANDOFF_ID_RE = /^[A-Za-z0-9_-]{1,128}$/;
/** Agent names: any configured name of this shape (the reference hard-codes four). */
export const AGENT_NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;
export const CALLER_HASH_RE = /^[0-9a-f]{16}$/;
export const E164_RE = /^\+[1-9][0-9]{1,14}$/;
/** The largest `hop` (how many times a conversation was handed on) a payload may carry. */
export const MAX_HOP = 1000;

/** True when `id` is a safe handoff id (`[A-Za-z0-9_-]{1,128}`). */
export function isSafeId(id: unknown): id is string {
  return typeof id === 'string' && HANDOFF_ID_RE.test(id);
}

/** @throws HandoffError INVALID_ID unless `id` is a safe handoff id. */
export function assertSafeId(id: unknown): asserts id is string {
  if (!isSafeId(id)) throw new HandoffError('INVALID_ID', 'handoff id must match [A-Za-z0-9_-]{1,128}');
}

/** The handoff id as gptme-voice names its bootstrap file: only letters, digits, `-` and `_` kept. */
export function sanitizeId(id: string): string {
  return id.replace(/[^A-Za-z0-9_-]/g, '');
}

const isoTime = z.string().refine((s) => parseIsoTime(s) !== undefined, {
  message: 'must be an ISO 8601 timestamp with a time zone',
  params: { fieldRule: true },
});

const agentName = z.string().regex(AGENT_NAME_RE, { message: 'must match [a-z][a-z0-9_-]{0,31}' });

export const TranscriptEntrySchema = z.looseObject({
  role: z.enum(['user', 'assistant', 'system'], { message: 'must be user/assistant/system' }),
  text: z.string({ message: 'must be a string' }),
  ts: isoTime.optional(),
});

export const ConsentSchema = z.looseObject({
  granted: z.boolean({ message: 'must be true or false' }),
  method: z.enum(['verbal', 'dtmf', 'sms', 'prior'], { message: 'must be verbal/dtmf/sms/prior' }),
  at: isoTime,
  utterance: z.string().optional(),
});

export const PendingActionSchema = z.looseObject({
  kind: z.string({ message: 'must be a string' }).min(1, { message: 'must not be empty' }),
});

export const PRIORITIES = Object.freeze(['low', 'normal', 'high', 'urgent'] as const);
export const CHANNELS = Object.freeze(['voice', 'sms', 'whatsapp'] as const);

/** The v1 payload; unknown fields are kept (and are covered by the signature). */
export const PayloadSchema = z
  .looseObject({
    protocol_version: z.literal(PROTOCOL_VERSION),
    handoff_id: z.string().regex(HANDOFF_ID_RE, { message: 'must match [A-Za-z0-9_-]{1,128}' }),
    caller_hash: z.string().regex(CALLER_HASH_RE, { message: 'must be 16 lowercase hex chars' }),
    from_agent: agentName,
    to_agent: agentName,
    reason: z.string({ message: 'must be a string' }),
    initiated_at: isoTime,
    expires_at: isoTime,
    transcript: z.array(TranscriptEntrySchema, { message: 'must be a list' }),
    hmac: z.string({ message: 'must be a string' }),
    context_summary: z.string().optional(),
    resume_hint: z.string().optional(),
    pending_actions: z.array(PendingActionSchema).optional(),
    callback_number: z.string().regex(E164_RE, { message: 'must be an E.164 number' }).optional(),
    call_sid: z.string().max(64).optional(),
    consent: ConsentSchema.optional(),
    channel: z.enum(CHANNELS).optional(),
    priority: z.enum(PRIORITIES).optional(),
    kid: z.string().max(64).optional(),
    hop: z.number().int().min(0).max(MAX_HOP).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.from_agent === p.to_agent) {
      ctx.addIssue({ code: 'custom', path: ['to_agent'], message: 'from_agent and to_agent must differ' });
    }
    const start = parseIsoTime(p.initiated_at);
    const end = parseIsoTime(p.expires_at);
    if (start !== undefined && end !== undefined && end <= start) {
      ctx.addIssue({ code: 'custom', path: ['expires_at'], message: 'expires_at must be after initiated_at' });
    }
  });

export type ParsedPayload = z.infer<typeof PayloadSchema>;
export type TranscriptEntry = z.infer<typeof TranscriptEntrySchema>;
export type Consent = z.infer<typeof ConsentSchema>;

export const REQUIRED_FIELDS = Object.freeze([
  'protocol_version',
  'handoff_id',
  'caller_hash',
  'from_agent',
  'to_agent',
  'reason',
  'initiated_at',
  'expires_at',
  'transcript',
  'hmac',
] as const);

/** A payload parsed from text: the checked plain view, the lossless tree, and the decoded text. */
export interface PayloadDocument {
  payload: ParsedPayload;
  tree: JsonObject;
  text: string;
}

/** Checks a lossless payload tree: version first, then every rule of §3.1. */
export function checkPayloadTree(tree: unknown): ParsedPayload {
  if (!isJsonObject(tree as never)) throw new HandoffError('SCHEMA', 'payload must be a JSON object');
  const obj = tree as JsonObject;
  const version = obj.protocol_version;
  if (version !== undefined) {
    // The lexeme, not the lossy number: a version must be the integer 1, not 1.0 or 1e0.
    const ok = version instanceof JsonNumber && version.lexeme === String(PROTOCOL_VERSION);
    if (!ok) {
      const shown = version instanceof JsonNumber ? version.lexeme : JSON.stringify(toJs(version));
      throw new HandoffError('VERSION', `unsupported protocol_version: ${shown} (expected 1)`);
    }
  }
  for (const field of REQUIRED_FIELDS) {
    if (!Object.hasOwn(obj, field)) throw new HandoffError('SCHEMA', `missing required field: ${field}`);
  }
  const result = PayloadSchema.safeParse(toJs(obj));
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue ? formatPath(issue.path) : 'payload';
    // Rules across fields carry a complete sentence; a field's rule (built-in, or custom like the
    // timestamp's) is prefixed with the field's path.
    const sentence = issue?.code === 'custom' && (issue.params as { fieldRule?: boolean } | undefined)?.fieldRule !== true;
    throw new HandoffError('SCHEMA', sentence ? issue.message : `${where} ${issue?.message ?? 'is invalid'}`);
  }
  return result.data;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)), '');
}

/**
 * Parses received payload bytes strictly and checks the schema.
 * @throws HandoffError SCHEMA (bad JSON or field) or VERSION.
 */
export function parsePayload(input: Uint8Array | string): PayloadDocument {
  const doc = parseJsonDocument(input);
  const payload = checkPayloadTree(doc.value);
  return { payload, tree: doc.value as JsonObject, text: doc.text };
}

/** True when the payload is past its deadline at `nowMs` (expired means now > expires_at). */
export function isExpired(payload: Pick<ParsedPayload, 'expires_at'>, nowMs: number): boolean {
  const end = parseIsoTime(payload.expires_at);
  return end === undefined || nowMs > end;
}

/** The deadline of a payload in ms since the epoch. */
export function expiresAtMs(payload: Pick<ParsedPayload, 'expires_at'>): number {
  const end = parseIsoTime(payload.expires_at);
  if (end === undefined) throw new HandoffError('SCHEMA', 'expires_at must be an ISO 8601 timestamp');
  return end;
}
