/**
 * Advisory cross-process locks for the spool's few read-modify-write steps (audit appends, janitor
 * sweeps), on top of proper-lockfile (a `mkdir` lock whose mtime is refreshed while held; a lock
 * not refreshed for `staleMs` belongs to a dead holder and is broken).
 *
 * Correctness never depends on these locks: every state change is decided by a rename. They only
 * keep two janitors from doing the same work twice and keep the audit hash chain linear.
 */
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
