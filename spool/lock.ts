/**
 * Advisory cross-process locks for the spool's few read-modify-write steps (audit appends, janitor
 * sweeps), on top of proper-lockfile (a `mkdir` lock whose mtime is refreshed while held; a lock
 * not refreshed for `staleMs` belongs to a dead holder and is broken).
 *
 * The holder of a lock taken with `acquireLock` (the audit log's) also writes `<lock>.owner`
 * (host, pid, and the inode of the lock directory it made) next to the lock. A contender that
 * finds the lock held by a process of this host that no longer exists breaks it at once instead of
 * waiting for it to go stale: after a `kill -9` a restarted hub would otherwise stall for the whole
 * stale time while a caller waits on the line. The inode
 * ties the record to one lock directory, so a record left behind by an earlier holder never
 * breaks a newer lock; a holder that died without a record still waits out the stale time.
 *
 * Correctness never depends on these locks: every state change is decided by a rename. They only
 * keep two janitors from doing the same work twice and keep the audit hash chain linear.
 */
import { readFile, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import lockfile from 'proper-lockfile';
import { HandoffError } from '../protocol/index.js';
import { errnoCode } from './durable.js';

/** A lock not refreshed for this long is considered abandoned and broken. */
export const LOCK_STALE_MS = 10_000;

/** Attempts of `acquireLock`; with the back-off below they span a little more than the stale time. */
const ACQUIRE_ATTEMPTS = 70;

export type ReleaseLock = () => Promise<void>;

function lockOptions(lockPath: string) {
  return {
    realpath: false,
    lockfilePath: lockPath,
    stale: LOCK_STALE_MS,
    retries: 0,
    // A compromised lock (its directory removed or refreshed by someone else) is not an error the
    // holder can act on, and the work it guards is safe without it; the default would throw from a
    // timer and crash the process.
    onCompromised: () => undefined,
  };
}

interface Owner {
  host: string;
  pid: number;
  ino: number;
}

const ownerFile = (lockPath: string): string => `${lockPath}.owner`;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

async function recordOwner(lockPath: string): Promise<void> {
  try {
    const { ino } = await stat(lockPath);
    const owner: Owner = { host: hostname(), pid: process.pid, ino };
    await writeFile(ownerFile(lockPath), JSON.stringify(owner), { mode: 0o600 });
  } catch {
    // Without a record the lock is broken only once it is stale, as any lock.
  }
}

/** Removes the lock if its recorded holder is a process of this host that has exited. */
async function breakIfHolderDied(lockPath: string): Promise<boolean> {
  let owner: Partial<Owner>;
  try {
    owner = JSON.parse(await readFile(ownerFile(lockPath), 'utf8')) as Partial<Owner>;
  } catch {
    return false;
  }
  if (owner.host !== hostname() || typeof owner.pid !== 'number' || isAlive(owner.pid)) return false;
  const current = await stat(lockPath).catch(() => undefined);
  if (current === undefined || current.ino !== owner.ino) return false;
  await unlink(ownerFile(lockPath)).catch(() => undefined);
  await rmdir(lockPath).catch(() => undefined);
  return true;
}

function wrapRelease(release: () => Promise<void>, recordedAt?: string): ReleaseLock {
  return async () => {
    // The record goes first: a crash between the two leaves a lock that only goes stale, never a
    // record that could be mistaken for a newer holder's.
    if (recordedAt !== undefined) await unlink(ownerFile(recordedAt)).catch(() => undefined);
    try {
      await release();
    } catch {
      // Already released or compromised: either way we no longer hold it.
    }
  };
}

/**
 * One attempt; undefined when the lock is held by a live (or recently seen) holder. `record`
 * writes the owner record: worth its two extra file operations for a lock whose stale wait would
 * stall a restart, not for one taken every second only to skip duplicate work.
 */
async function attempt(lockPath: string, record: boolean): Promise<ReleaseLock | undefined> {
  for (let tries = 0; tries < 2; tries++) {
    try {
      const release = await lockfile.lock(lockPath, lockOptions(lockPath));
      if (!record) return wrapRelease(release);
      await recordOwner(lockPath);
      return wrapRelease(release, lockPath);
    } catch (err) {
      if (errnoCode(err) !== 'ELOCKED') throw err;
      if (!(await breakIfHolderDied(lockPath))) return undefined;
    }
  }
  return undefined;
}

/**
 * Takes the lock at `lockPath`, waiting a little longer than the stale time so that a lock left by
 * a crashed process is broken rather than reported.
 * @throws HandoffError IO when the lock stays held by a live process for that long.
 */
export async function acquireLock(lockPath: string): Promise<ReleaseLock> {
  let delayMs = 5;
  for (let n = 0; ; n++) {
    let release: ReleaseLock | undefined;
    try {
      release = await attempt(lockPath, true);
    } catch (err) {
      throw new HandoffError('IO', `lock ${lockPath} failed${errnoCode(err) ? ` (${errnoCode(err)})` : ''}`, { cause: err });
    }
    if (release) return release;
    if (n >= ACQUIRE_ATTEMPTS) throw new HandoffError('IO', `lock ${lockPath} is busy (ELOCKED)`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(250, delayMs * 1.2);
  }
}

/** Takes the lock at `lockPath` if it is free now (or its recorded holder died); undefined when another holder has it. */
export async function tryLock(lockPath: string): Promise<ReleaseLock | undefined> {
  try {
    return await attempt(lockPath, false);
  } catch (err) {
    throw new HandoffError('IO', `lock ${lockPath} failed${errnoCode(err) ? ` (${errnoCode(err)})` : ''}`, { cause: err });
  }
}
