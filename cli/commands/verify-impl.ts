import { lstat, readFile, stat } from 'node:fs/promises';
import {
  AGENT_NAME_RE,
  HandoffError,
  isJsonObject,
  keyFilePath,
  keyRingFromSecrets,
  loadKeyRing,
  parseIsoTime,
  parseJsonDocument,
  verifyPayload,
  type KeyRing,
} from '../../protocol/index.js';

export type VerifyOutput =
  | { valid: true; handoff_id: string; from_agent: string; to_agent: string; expires_at: string }
  | { valid: false; code: string; message: string; handoff_id?: string };

/**
 * Verifies a payload file as the listener of `flags.agent` would. Only the key file of the
 * payload's `from_agent` is read: a missing one in an existing key directory means an unknown peer
 * (ADDRESSING); a missing directory, or an unusable file (a dangling symlink among them), is a
 * KEY_FILE error, as the listener reports it.
 */
export async function verifyFile(file: string, flags: { agent: string; keys?: string; at?: string }): Promise<VerifyOutput> {
  let nowMs = Date.now();
  if (flags.at !== undefined) {
    const at = parseIsoTime(flags.at);
    if (at === undefined) throw new HandoffError('USAGE', `--at must be an ISO 8601 timestamp with a zone, got ${JSON.stringify(flags.at)}`);
    nowMs = at;
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new HandoffError('NOT_FOUND', `cannot read ${file}`, { cause });
  }
  const { text, fromAgent } = extractPayload(bytes);
  const keys = await peerKeys(flags.keys ?? '.', fromAgent);
  const result = verifyPayload(text, { agent: flags.agent, keys, nowMs });
  if (result.ok) {
    const p = result.payload;
    return { valid: true, handoff_id: p.handoff_id, from_agent: p.from_agent, to_agent: p.to_agent, expires_at: p.expires_at };
  }
  return { valid: false, code: result.code, message: result.message, handoff_id: result.handoffId };
}

async function peerKeys(dir: string, peer: string | undefined): Promise<KeyRing> {
  if (peer === undefined || !AGENT_NAME_RE.test(peer)) return keyRingFromSecrets({});
  try {
    await lstat(keyFilePath(dir, peer)); // lstat: a dangling symlink exists, and readKeyFile refuses it
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new HandoffError('KEY_FILE', `cannot look up the key file of ${peer} in ${dir}`, { cause: err });
    try {
      if (!(await stat(dir)).isDirectory()) throw new HandoffError('KEY_FILE', `key directory ${dir} is not a directory`);
    } catch (cause) {
      if (cause instanceof HandoffError) throw cause;
      throw new HandoffError('KEY_FILE', `cannot read key directory ${dir}`, { cause });
    }
    return keyRingFromSecrets({});
  }
  return loadKeyRing(dir, [peer]);
}

/**
 * The payload text of a plain payload file or of a spool envelope (`{"relay":…,"payload":…}`),
 * cut out verbatim so that the bytes judged are the bytes that were signed.
 */
export function extractPayload(bytes: Uint8Array): { text: Uint8Array | string; fromAgent?: string } {
  let doc;
  try {
    doc = parseJsonDocument(bytes);
  } catch {
    return { text: bytes }; // verification reports the parse error with its own code
  }
  let text: Uint8Array | string = bytes;
  let payload = doc.value;
  const span = doc.spans.get('payload');
  if (span && isJsonObject(doc.value) && isJsonObject(doc.value.relay) && isJsonObject(doc.value.payload)) {
    text = doc.text.slice(span.start, span.end);
    payload = doc.value.payload;
  }
  const from = isJsonObject(payload) ? payload.from_agent : undefined;
  return { text, fromAgent: typeof from === 'string' ? from : undefined };
}
