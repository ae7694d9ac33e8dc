import { readdir } from 'node:fs/promises';
import { AGENT_NAME_RE, HandoffError, keyFilePath, readKeyFile, toHandoffError } from '../../protocol/index.js';

export interface KeyRow {
  peer: string;
  file: string;
  ok: boolean;
  secrets: number;
  warnings: string[];
  code?: string;
  message?: string;
}

/** Every `voice-handoff-<peer>.key` in `dir`, each checked as the listener would at start. */
export async function listKeys(dir: string): Promise<KeyRow[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (cause) {
    throw new HandoffError('KEY_FILE', `cannot read key directory ${dir}`, { cause });
  }
  const peers = names
    .map((n) => /^voice-handoff-(.+)\.key$/.exec(n)?.[1])
    .filter((p): p is string => p !== undefined && AGENT_NAME_RE.test(p))
    .sort();
  const rows: KeyRow[] = [];
  for (const peer of peers) {
    const file = keyFilePath(dir, peer);
    try {
      const { secrets, warnings } = await readKeyFile(file);
      rows.push({ peer, file, ok: true, secrets: secrets.length, warnings });
    } catch (err) {
      const e = toHandoffError(err);
      rows.push({ peer, file, ok: false, secrets: 0, warnings: [], code: e.code, message: e.message });
    }
  }
  return rows;
}
