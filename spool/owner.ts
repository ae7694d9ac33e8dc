/**
 * Who owns an exclusive spool (the hub's), recorded in `<root>/.owner`.
 *
 * An exclusive spool trusts that no other process writes it: its pending index, its claim cache
 * and the tail of its audit chain live in memory. Another writer — a second hub, a local-mode
 * listener, `handoff spool purge`, or just the recovery every open runs — would break that without
 * a sound: the audit chain forks, a put is never offered, a purge races a complete. So the owner
 * records itself at open and removes the record at close, and any other open of the spool is
 * refused while the recorded owner is alive: by another process, or by the owner itself (a
 * second instance in one process would keep a second copy of that state just the same).
 *
 * Alive means: the record was written on this host, in this boot and in this pid namespace, its
 * pid exists, and its process started at the recorded time (from /proc), so a pid reused after a
 * crash or a reboot is not taken for the owner. Whenever that cannot be told (another host on a
 * shared file system, a container with a new hostname or its own pid namespace, no /proc), the
 * owner counts as gone: a hub restarted after `kill -9` must never be locked out of its own spool,
 * and those set-ups are no worse off than with no record at all. The record is created with
 * `link(2)`, which never replaces a file, so two hubs starting at once cannot both take the spool;
 * a dead owner's record is first renamed aside (one of two racing openers wins that too). Like
 * the locks, the record is advisory, so it is plain `node:fs`, outside `FsOps`.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, readlink, rename, stat, unlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { HandoffError } from '../protocol/index.js';
import { errnoCode } from './durable.js';

export const OWNER_FILE = '.owner';

/**
 * Roots this process holds exclusively (one spool instance each), by device and inode: the same
 * directory reached through a symlink or another path is the same root.
 */
const HELD = new Set<string>();

interface OwnerRecord {
  pid: number;
  host: string;
  /** The process's start time in clock ticks since boot (/proc/<pid>/stat). */
  started?: string;
  /** /proc/sys/kernel/random/boot_id: which boot of the host. */
  boot?: string;
  /** The pid namespace (`readlink /proc/self/ns/pid`): a pid means something only inside it. */
  pidns?: string;
}

/** This process as an owner record. */
async function self(): Promise<OwnerRecord> {
  const [started, boot, pidns] = await Promise.all([
    startTimeOf(process.pid),
    readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((b) => b.trim(), () => undefined),
    readlink('/proc/self/ns/pid').catch(() => undefined),
  ]);
  return { pid: process.pid, host: os.hostname(), ...(started ? { started } : {}), ...(boot ? { boot } : {}), ...(pidns ? { pidns } : {}) };
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
  for (const k of ['started', 'boot', 'pidns'] as const) if (r[k] !== undefined && typeof r[k] !== 'string') return undefined;
  return r as OwnerRecord;
}

/** Whether the recorded owner is known to be running (see the header): false when it cannot be told. */
async function isAlive(owner: OwnerRecord, me: OwnerRecord): Promise<boolean> {
  if (owner.host !== me.host || owner.started === undefined || me.started === undefined) return false;
  if (owner.boot !== me.boot || owner.pidns !== me.pidns) return false;
  return (await startTimeOf(owner.pid)) === owner.started;
}

function isSelf(owner: OwnerRecord, me: OwnerRecord): boolean {
  return owner.pid === me.pid && owner.host === me.host && owner.started === me.started && owner.boot === me.boot && owner.pidns === me.pidns;
}

/**
 * Refuses (UNAVAILABLE) when another process that may be alive owns the spool at `root`, or this
 * process holds it already; with `take`, records this process as the owner (an exclusive open)
 * and returns the key to give back to `releaseOwner`.
 */
export async function checkOwner(root: string, options: { take: boolean }): Promise<string | undefined> {
  const file = path.join(root, OWNER_FILE);
  let key: string;
  try {
    const st = await stat(root);
    key = `${st.dev}:${st.ino}`;
  } catch (err) {
    throw new HandoffError('IO', `spool ${root} cannot be read (${errnoCode(err) ?? 'error'})`, { cause: err });
  }
  if (HELD.has(key)) throw new HandoffError('UNAVAILABLE', `spool ${root} is already open exclusively in this process; use that instance`);
  // Taken with no await since the check, so that two opens of this process started together
  // cannot both pass it.
  if (options.take) HELD.add(key);
  try {
    const me = await self();
    for (let attempt = 0; ; attempt++) {
      const owner = await readRecord(file);
      if (owner !== undefined && !isSelf(owner, me) && (await isAlive(owner, me))) {
        throw new HandoffError('UNAVAILABLE', `spool ${root} is owned by a running hub (pid ${owner.pid}); use the hub's API, or stop it first`);
      }
      if (!options.take) return undefined;
      if (owner !== undefined && isSelf(owner, me)) return key;
      if (owner !== undefined || attempt > 0) await moveAside(file, owner);
      if (await create(file, me)) return key;
      if (attempt >= 3) throw new HandoffError('UNAVAILABLE', `spool ${root}: another process keeps taking its owner record (${file})`);
    }
  } catch (err) {
    if (options.take) HELD.delete(key);
    throw err;
  }
}

/**
 * Removes the dead (or unreadable) record `judged` from `file`: renamed aside, never overwritten,
 * and put back if what was moved is not what was judged (another opener replaced it meanwhile).
 */
async function moveAside(file: string, judged: OwnerRecord | undefined): Promise<void> {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  if (!(await rename(file, aside).then(() => true, () => false))) return;
  const moved = await readRecord(aside).catch(() => undefined);
  if (JSON.stringify(moved) !== JSON.stringify(judged)) await link(aside, file).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

/** Creates `file` with `record` unless it exists (then false): written whole, then linked. */
async function create(file: string, record: OwnerRecord): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    await link(tmp, file);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw new HandoffError('IO', `recording the owner in ${file} failed (${errnoCode(err) ?? 'error'})`, { cause: err });
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/**
 * The exclusive spool of `root` (`key` from `checkOwner`) closes: removes the record if it is this
 * process's, and only then lets this process open the root again. Never throws.
 */
export async function releaseOwner(root: string, key: string): Promise<void> {
  const file = path.join(root, OWNER_FILE);
  try {
    const [owner, me] = await Promise.all([readRecord(file), self()]);
    if (owner !== undefined && isSelf(owner, me)) await unlink(file);
  } catch {
    // Left behind, it names a process that is gone by the time anyone reads it: harmless.
  } finally {
    HELD.delete(key);
  }
}
