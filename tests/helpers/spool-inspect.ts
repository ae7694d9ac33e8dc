/**
 * Looking at a spool directory from the outside, as `ls`, `cat` and `jq` would.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { decodeStoredFile, HANDOFF_STATES, type HandoffState } from '../../spool/index.js';

const DIR_STATE: Record<string, HandoffState> = {
  [HANDOFF_STATES.pending]: 'pending',
  [HANDOFF_STATES.claimed]: 'claimed',
  [HANDOFF_STATES.archived]: 'archived',
  [HANDOFF_STATES.rejected]: 'rejected',
};

/** Every file of the spool (relative paths), except the audit log's lock directories. */
export function listTree(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[])
    .filter((rel) => statSync(path.join(root, rel)).isFile())
    .sort();
}

/** Where files named `<id>.json` are, as relative paths (anywhere under the root except tmp/). */
export function placesOf(root: string, id: string): string[] {
  return listTree(root).filter((rel) => path.basename(rel) === `${id}.json` && !rel.startsWith('tmp'));
}

/** The state whose directory holds `rel`. */
export function stateOfPath(rel: string): HandoffState | undefined {
  return DIR_STATE[rel.split(path.sep)[0] ?? ''];
}

/** The single place of `id`, failing if there are zero or several. */
export function onlyPlace(root: string, id: string): { rel: string; state: HandoffState; bytes: Buffer } {
  const places = placesOf(root, id);
  if (places.length !== 1) throw new Error(`expected exactly one file for ${id}, found ${JSON.stringify(places)}`);
  const rel = places[0] as string;
  const state = stateOfPath(rel);
  if (!state) throw new Error(`${rel} is not in a state directory`);
  return { rel, state, bytes: readFileSync(path.join(root, rel)) };
}

/** The exact payload bytes stored in a spool file (raw or envelope). */
export function payloadBytesOf(bytes: Uint8Array): Buffer {
  return Buffer.from(decodeStoredFile(bytes).payloadText, 'utf8');
}

/** The files in tmp/. */
export function tmpFiles(root: string): string[] {
  return readdirSync(path.join(root, 'tmp'));
}

/** One line of the audit log, as parsed JSON (the fields tests look at). */
export interface AuditEntry {
  seq: number;
  event: string;
  id: string;
  state: HandoffState | null;
  by?: string;
  file?: string;
}

/** Every line of the spool's audit log (`events/*.jsonl`), in chain order. */
export function auditEvents(root: string): AuditEntry[] {
  const dir = path.join(root, 'events');
  return readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()
    .flatMap((n) => readFileSync(path.join(dir, n), 'utf8').split('\n').filter(Boolean))
    .map((line) => JSON.parse(line) as AuditEntry);
}

/**
 * Every directory and file under `root` with each file's size and SHA-256: two snapshots are
 * equal only if nothing was created, removed, renamed, appended to or rewritten.
 */
export function treeSnapshot(root: string): string[] {
  return (readdirSync(root, { recursive: true }) as string[])
    .map((rel) => {
      const full = path.join(root, rel);
      const st = statSync(full);
      if (!st.isFile()) return `${rel}/`;
      return `${rel} ${st.size} ${createHash('sha256').update(readFileSync(full)).digest('hex')}`;
    })
    .sort();
}
