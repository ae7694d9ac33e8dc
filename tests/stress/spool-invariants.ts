/**
 * The invariants of DESIGN.md §4, checked on a spool directory from the outside (as `ls`, `cat`
 * and `jq` see it) and through an open spool's `get`/`list`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { decodeStoredFile, HANDOFF_STATES, verifyAudit, type HandoffState, type Spool, type StoredFile } from '../../spool/index.js';
import { violate, type SuiteResult } from './report.js';

/** The order in which a handoff moves; a later state never goes back. */
export const STATE_RANK: Readonly<Record<HandoffState, number>> = Object.freeze({ pending: 0, claimed: 1, archived: 2, rejected: 2 });

export interface Place {
  state: HandoffState;
  rel: string;
  bytes: Buffer;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Every `<id>.json` under the four state directories (quarantine folders excluded), by id. */
export function placesById(root: string): Map<string, Place[]> {
  const out = new Map<string, Place[]>();
  const add = (state: HandoffState, rel: string): void => {
    const name = path.basename(rel);
    if (!name.endsWith('.json')) return;
    const full = path.join(root, rel);
    if (!statSync(full).isFile()) return;
    const id = name.slice(0, -5);
    out.set(id, [...(out.get(id) ?? []), { state, rel, bytes: readFileSync(full) }]);
  };
  for (const name of listDir(path.join(root, HANDOFF_STATES.pending))) add('pending', path.join(HANDOFF_STATES.pending, name));
  for (const name of listDir(path.join(root, HANDOFF_STATES.claimed))) add('claimed', path.join(HANDOFF_STATES.claimed, name));
  for (const state of ['archived', 'rejected'] as const) {
    const dir = HANDOFF_STATES[state];
    for (const bucket of listDir(path.join(root, dir))) {
      if (!/^[0-9a-f]{2}$/.test(bucket)) continue;
      for (const name of listDir(path.join(root, dir, bucket))) add(state, path.join(dir, bucket, name));
    }
  }
  return out;
}

/** The decoded file, or undefined when it is not a complete, valid handoff file. */
export function decodeOrUndefined(bytes: Uint8Array): StoredFile | undefined {
  try {
    return decodeStoredFile(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Structure that must hold after any crash and recovery: every handoff is one complete file in one
 * state directory, tmp/ is empty, and the audit chain verifies. Returns the places by id.
 */
export async function checkTree(root: string, result: SuiteResult, label: string): Promise<Map<string, Place[]>> {
  const places = placesById(root);
  for (const [id, list] of places) {
    if (list.length !== 1) violate(result, 'not-one-file', `${label}: ${id} is in ${list.map((p) => p.rel).join(', ')}`);
    for (const p of list) {
      const file = decodeOrUndefined(p.bytes);
      if (!file) violate(result, 'partial-file', `${label}: ${p.rel} is not a complete handoff file (${p.bytes.length} bytes)`);
      else if (file.payload.handoff_id !== id) violate(result, 'wrong-name', `${label}: ${p.rel} holds ${file.payload.handoff_id}`);
    }
  }
  const tmp = listDir(path.join(root, 'tmp'));
  if (tmp.length > 0) violate(result, 'tmp-not-clean', `${label}: tmp/ holds ${tmp.join(', ')}`);
  const audit = await verifyAudit(path.join(root, 'events'));
  if (!audit.ok) violate(result, 'audit-broken', `${label}: ${JSON.stringify(audit.firstBad)}`);
  return places;
}

/** `get` and `list` agree with the directories for `ids`. */
export async function checkReads(spool: Spool, root: string, ids: Iterable<string>, result: SuiteResult, label: string): Promise<void> {
  const places = placesById(root);
  const listed = new Map<HandoffState, string[]>();
  for (const state of ['pending', 'claimed', 'archived', 'rejected'] as const) {
    listed.set(state, (await spool.list(state)).map((r) => r.id));
  }
  for (const id of ids) {
    const place = places.get(id)?.[0];
    const record = await spool.get(id);
    if (place === undefined) {
      if (record !== undefined) violate(result, 'phantom', `${label}: get(${id}) → ${record.state} but no file`);
      continue;
    }
    if (record?.state !== place.state) violate(result, 'get-disagrees', `${label}: ${id} is in ${place.rel}, get → ${record?.state}`);
    for (const [state, list] of listed) {
      const n = list.filter((x) => x === id).length;
      if (n !== (state === place.state ? 1 : 0)) violate(result, 'list-disagrees', `${label}: list(${state}) has ${id} ${n} times (file in ${place.rel})`);
    }
  }
}

/** Audit lines of transitions never run ahead of the files: the state a line records was reached. */
export function checkAuditAgainstFiles(root: string, places: Map<string, Place[]>, result: SuiteResult, label: string): void {
  const events = path.join(root, 'events');
  const transitions = new Set(['put', 'adopt', 'claim', 'complete', 'reject', 'expire', 'lease_expire']);
  for (const name of listDir(events).filter((n) => n.endsWith('.jsonl')).sort()) {
    for (const line of readFileSync(path.join(events, name), 'utf8').split('\n')) {
      if (line === '') continue;
      let entry: { event?: string; id?: string; state?: HandoffState };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      if (!entry.event || !transitions.has(entry.event) || !entry.id || !entry.state) continue;
      const place = places.get(entry.id)?.[0];
      if (!place || STATE_RANK[place.state] < STATE_RANK[entry.state] || (STATE_RANK[entry.state] === 2 && place.state !== entry.state)) {
        violate(result, 'audit-ahead', `${label}: audit says ${entry.id} ${entry.event} → ${entry.state}, file is ${place?.rel ?? 'missing'}`);
      }
    }
  }
}
