/**
 * Advisory cross-process locks for the spool's few read-modify-write steps (audit appends, janitor
 * sweeps), on top of proper-lockfile (a `mkdir` lock whose mtime is refreshed while held; a lock
 * not refreshed for `staleMs` belongs to a dead holder and is broken).
 *
 * Correctness never depends on these locks: every state change is decided by a rename. They only
 * keep two janitors from doing the same work twice and keep the audit hash chain linear.
 *
 * A process killed while it holds a lock leaves the lock directory behind, and every other process
 * waits until it goes stale. An exclusive spool (the hub's: no other process writes it) knows that
 * any lock there at open belongs to its dead predecessor and removes it (`removeLeftoverLock`), so
 * that a hub restarted after a crash serves at once instead of after the stale time.
 */
import { rmdir } from 'node:fs/promises';
import lockfile from 'proper-lockfile';
import { HandoffError } from '../protocol/index.js';
import { errnoCode } from './durable.js';

/** A lock not refreshed for this long is considered abandoned and broken. */
export const LOCK_STALE_MS = 10_000;

export type ReleaseLock = () => Promise<void>;

function lockOptions(lockPath: string, retries: number | { retries: number; factor: number; minTimeout: number; maxTimeout: number }) {
  return {
    realpath: false,
    lockfilePath: lockPath,
    stale: LOCK_STALE_MS,
    retries,
    // A compromised lock (its directory removed or refreshed by someone else) is not an error the
    // holder can act on, and the work it guards is safe without it; the default would throw from a
    // timer and crash the process.
    onCompromised: () => undefined,
  };
}

function wrapRelease(release: () => Promise<void>): ReleaseLock {
  return async () => {
    try {
      await release();
    } catch {
      // Already released or compromised: either way we no longer hold it.
    }
  };
}

/**
 * Takes the lock at `lockPath`, waiting a little longer than the stale time so that a lock left by
 * a crashed process is broken rather than reported.
 * @throws HandoffError IO when the lock stays held by a live process for that long.
 */
export async function acquireLock(lockPath: string): Promise<ReleaseLock> {
  try {
    const release = await lockfile.lock(
      lockPath,
      lockOptions(lockPath, { retries: 70, factor: 1.2, minTimeout: 5, maxTimeout: 250 }),
    );
    return wrapRelease(release);
  } catch (err) {
    throw new HandoffError('IO', `lock ${lockPath} is busy${errnoCode(err) ? ` (${errnoCode(err)})` : ''}`, { cause: err });
  }
}

/** Takes the lock at `lockPath` if it is free now; undefined when another holder has it. */
export async function tryLock(lockPath: string): Promise<ReleaseLock | undefined> {
  try {
    return wrapRelease(await lockfile.lock(lockPath, lockOptions(lockPath, 0)));
  } catch (err) {
    if (errnoCode(err) === 'ELOCKED') return undefined;
    throw new HandoffError('IO', `lock ${lockPath} failed${errnoCode(err) ? ` (${errnoCode(err)})` : ''}`, { cause: err });
  }
}

/**
 * Removes the lock directory at `lockPath`, if any. Only for a lock nobody can hold: the spool
 * calls it at open when it is exclusive. @throws HandoffError IO when it exists and cannot be removed.
 */
export async function removeLeftoverLock(lockPath: string): Promise<void> {
  try {
    await rmdir(lockPath);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw new HandoffError('IO', `cannot remove the leftover lock ${lockPath} (${errnoCode(err) ?? 'error'})`, { cause: err });
  }
}
