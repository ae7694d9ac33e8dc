/**
 * The two file formats of the spool.
 *
 * - `handoff/<id>.json` holds the payload exactly as received (a plain v1 payload, so a gptme-voice
 *   reader of a shared spool sees what it expects).
 * - Every later state holds an envelope: `{"relay":{…RelayFacts…},"payload":<payload text>}` and a
 *   newline. The relay facts come first so that `head` and `jq .relay` show them; the payload text
 *   is spliced in verbatim, so it stays byte-identical and verifiable with the pair secret
 *   (`jq -c .payload` re-serialises it; cut the bytes with `decodeStoredFile` for verification).
 *
 * A file is an envelope when its top-level object has exactly the members `relay` and `payload`;
 * anything else is read as a raw payload.
 */
import * as z from 'zod';
import {
  checkPayloadTree,
  HandoffError,
  isJsonObject,
  parseJsonDocument,
  parsePayload,
  type ParsedPayload,
} from '../protocol/index.js';
import { HANDOFF_STATES, type HandoffState, type RelayFacts } from './types.js';

const STATE_NAMES = Object.keys(HANDOFF_STATES) as [HandoffState, ...HandoffState[]];

/** Relay facts as written by us; unknown members are kept so a newer writer's facts survive. */
export const RelayFactsSchema = z.looseObject({
  state: z.enum(STATE_NAMES),
  handoff_id: z.string(),
  from_agent: z.string(),
  to_agent: z.string(),
  received_at: z.string().optional(),
  claimed_by: z.string().optional(),
  claimed_at: z.string().optional(),
  lease_until: z.string().optional(),
  claim_token_sha256: z.string().optional(),
  completed_at: z.string().optional(),
  outcome: z.string().optional(),
  final_transcript: z.array(z.unknown()).optional(),
  notes: z.string().optional(),
  rejected_at: z.string().optional(),
  reason: z.string().optional(),
  rejected_by: z.string().optional(),
  recovered: z.boolean().optional(),
});

/** The order of relay members in a file: identity and state first, then the facts in time order. */
const RELAY_KEY_ORDER: readonly (keyof RelayFacts)[] = [
  'state',
  'handoff_id',
  'from_agent',
  'to_agent',
  'received_at',
  'claimed_by',
  'claimed_at',
  'lease_until',
  'claim_token_sha256',
  'completed_at',
  'outcome',
  'notes',
  'rejected_at',
  'reason',
  'rejected_by',
  'recovered',
  'final_transcript',
];

/** A file as read from the spool. */
export interface StoredFile {
  kind: 'raw' | 'envelope';
  /** The payload's JSON text exactly as received (without surrounding whitespace). */
  payloadText: string;
  payload: ParsedPayload;
  /** The relay facts of an envelope; undefined for a raw payload. */
  relay: RelayFacts | undefined;
}

const JSON_WS = /^[ \t\n\r]+|[ \t\n\r]+$/g;

/** The payload's JSON text without the whitespace that may surround it in a file. */
export function trimJson(text: string): string {
  return text.replace(JSON_WS, '');
}

/**
 * Decodes a spool file (raw payload or envelope) and checks the payload's schema.
 * @throws HandoffError SCHEMA/VERSION (bad payload or envelope).
 */
export function decodeStoredFile(bytes: Uint8Array): StoredFile {
  const doc = parseJsonDocument(bytes);
  const value = doc.value;
  if (!isJsonObject(value)) throw new HandoffError('SCHEMA', 'spool file is not a JSON object');
  const keys = Object.keys(value);
  const isEnvelope = keys.length === 2 && Object.hasOwn(value, 'relay') && Object.hasOwn(value, 'payload');
  if (!isEnvelope) {
    const payload = checkPayloadTree(value);
    return { kind: 'raw', payloadText: trimJson(doc.text), payload, relay: undefined };
  }
  const span = doc.spans.get('payload');
  const relaySpan = doc.spans.get('relay');
  if (!span || !relaySpan) throw new HandoffError('SCHEMA', 'envelope without payload or relay');
  const payload = checkPayloadTree(value.payload);
  const relayResult = RelayFactsSchema.safeParse(JSON.parse(doc.text.slice(relaySpan.start, relaySpan.end)));
  if (!relayResult.success) throw new HandoffError('SCHEMA', 'envelope relay facts are malformed');
  const relay = relayResult.data as RelayFacts;
  if (relay.handoff_id !== payload.handoff_id) throw new HandoffError('SCHEMA', 'envelope relay and payload name different ids');
  return { kind: 'envelope', payloadText: doc.text.slice(span.start, span.end), payload, relay };
}

/** Parses payload bytes as received by `put` (strict parse + schema). @throws HandoffError SCHEMA/VERSION/INVALID_ID */
export function decodeIncoming(input: Uint8Array | string): { payload: ParsedPayload; payloadText: string } {
  const doc = parsePayload(input);
  return { payload: doc.payload, payloadText: trimJson(doc.text) };
}

/** The envelope text for `relay` around the verbatim `payloadText`. */
export function encodeEnvelope(relay: RelayFacts, payloadText: string): string {
  const ordered: Record<string, unknown> = {};
  for (const key of RELAY_KEY_ORDER) if (relay[key] !== undefined) ordered[key] = relay[key];
  for (const [key, v] of Object.entries(relay)) if (!(key in ordered) && v !== undefined) ordered[key] = v;
  return `{"relay":${JSON.stringify(ordered)},"payload":${payloadText}}\n`;
}

/** The prefix every up-to-date envelope of `state` starts with (a cheap check during recovery). */
export function envelopePrefix(state: HandoffState): string {
  return `{"relay":{"state":${JSON.stringify(state)},`;
}
