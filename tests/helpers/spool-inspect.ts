/**
 * Looking at a spool directory from the outside, as `ls`, `cat` and `jq` would.
 */
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
