/**
 * Who owns an exclusive spool (the hub's), recorded in `<root>/.owner`.
 *
 * An exclusive spool trusts that no other process writes it: its pending index, its claim cache
 * and the tail of its audit chain live in memory. Another writer — a second hub, a local-mode
 * listener, `handoff spool purge`, or just the recovery every open runs — would break that without
 * a sound: the audit chain forks, a put is never offered, a purge races a complete. So the owner
 * records itself at open and removes the record at close, and any other open of the spool (by
 * another process) is refused while the recorded owner is alive.
 *
 * Alive means: on this host, the pid exists, and — where /proc tells a process's start time — it
 * is the process that wrote the record, so a pid reused after a crash or a reboot is not taken
 * for the owner. An owner recorded by another host cannot be checked: refused, with the file to
 * delete named in the message. Like the locks, the record is advisory (nothing in the spool's
 * correctness depends on it), so it is plain `node:fs`, outside `FsOps`.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { HandoffError } from '../protocol/index.js';
import { errnoCode } from './durable.js';

export const OWNER_FILE = '.owner';

/** Exclusive spools of this process open per root: the record goes when the last one closes. */
const HELD = new Map<string, number>();

interface OwnerRecord {
  pid: number;
  host: string;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat), when known. */
  started?: string;
}

/** This process as an owner record. */
async function self(): Promise<OwnerRecord> {
  const started = await startTimeOf(process.pid);
  return { pid: process.pid, host: os.hostname(), ...(started !== undefined ? { started } : {}) };
}

/** Field 22 of /proc/<pid>/stat; undefined where there is no /proc or no such process. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const started = fields[19];
  return started !== undefined && /^\d+$/.test(started) ? started : undefined;
}

/** The record in `file`; undefined when there is none or it is not one (then nobody owns the spool). */
async function readRecord(file: string): Promise<OwnerRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new HandoffError('IO', `reading ${file} failed (${errnoCode(err) ?? 'error'})`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = value as Partial<OwnerRecord> | null;
  if (typeof r !== 'object' || r === null || !Number.isSafeInteger(r.pid) || (r.pid as number) <= 0 || typeof r.host !== 'string') return undefined;
  if (r.started !== undefined && typeof r.started !== 'string') return undefined;
  return { pid: r.pid as number, host: r.host, ...(r.started !== undefined ? { started: r.started } : {}) };
}

/** Whether the recorded owner may be running (see the header); true when it cannot be told. */
async function mayBeAlive(owner: OwnerRecord): Promise<boolean> {
  if (owner.host !== os.hostname()) return true;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if (errnoCode(err) !== 'EPERM') return false;
  }
  if (owner.started === undefined) return true;
  const started = await startTimeOf(owner.pid);
  return started === undefined || started === owner.started;
}

function isSelf(owner: OwnerRecord, me: OwnerRecord): boolean {
  return owner.pid === me.pid && owner.host === me.host && owner.started === me.started;
}

/**
 * Refuses (UNAVAILABLE) when another process that may be alive owns the spool at `root`; with
 * `take`, records this process as the owner (an exclusive open).
 */
export async function checkOwner(root: string, options: { take: boolean }): Promise<void> {
  const file = path.join(root, OWNER_FILE);
  const [owner, me] = await Promise.all([readRecord(file), self()]);
  if (owner !== undefined && !isSelf(owner, me) && (await mayBeAlive(owner))) {
    const where = owner.host === me.host ? `pid ${owner.pid}` : `pid ${owner.pid} on host ${owner.host}`;
    throw new HandoffError(
      'UNAVAILABLE',
      `spool ${root} is owned by a running hub (${where}); use the hub's API, or stop it first (if it is gone, delete ${file})`,
    );
  }
  if (!options.take) return;
  HELD.set(root, (HELD.get(root) ?? 0) + 1);
  if (owner !== undefined && isSelf(owner, me)) return;
  // Written whole under a temporary name and renamed, so a reader never sees half a record.
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, `${JSON.stringify(me)}\n`, { mode: 0o600 });
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    await releaseOwner(root);
    throw new HandoffError('IO', `recording the owner in ${file} failed (${errnoCode(err) ?? 'error'})`, { cause: err });
  }
}

/**
 * An exclusive spool of `root` closes: the last of this process removes the record if it is this
 * process's. Never throws.
 */
export async function releaseOwner(root: string): Promise<void> {
  const left = (HELD.get(root) ?? 1) - 1;
  if (left > 0) {
    HELD.set(root, left);
    return;
  }
  HELD.delete(root);
  const file = path.join(root, OWNER_FILE);
  try {
    const [owner, me] = await Promise.all([readRecord(file), self()]);
    if (owner !== undefined && isSelf(owner, me)) await unlink(file);
  } catch {
    // Left behind, it names a process that is gone by the time anyone reads it: harmless.
  }
}
