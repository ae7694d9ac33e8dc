/**
 * The hub's janitor: moves pending handoffs past `expires_at` and claims past their lease to
 * `rejected/` (the spool's `sweep`), and, when a retention is set, deletes finished handoffs
 * older than it (the spool's `purge`) once at start and then every `purgeEveryMs`.
 *
 * Two triggers: a periodic sweep (every `sweepIntervalMs`, for leases and anything another process
 * left behind) and a precise timer armed for the earliest known pending deadline, so that an
 * unclaimed handoff expires right at its deadline and the initiator's waiter hears of it at once
 * rather than up to one interval later. The deadlines live in the files; the timer is only a hint
 * recomputed from the spool's pending index after every sweep. Sweeps never overlap: a trigger that
 * arrives during a sweep schedules one more run after it.
 */
import type { Logger } from 'pino';
import { expiresAtMs, HandoffError, toHandoffError } from '../protocol/index.js';
import type { PurgeResult, SpoolApi, SweepResult } from '../spool/index.js';

export interface JanitorOptions {
  spool: Pick<SpoolApi, 'sweep' | 'listPending' | 'purge'>;
  clock: () => number;
  /** Period of the background sweep; default 1000 ms. */
  sweepIntervalMs?: number;
  /** Finished handoffs older than this are deleted; undefined keeps them forever. */
  retentionMs?: number;
  /** Period of the purge; default an hour (it reads every file of archive/ and rejected/). */
  purgeEveryMs?: number;
  logger?: Logger;
}

const DEFAULT_PURGE_EVERY_MS = 3_600_000;

// setTimeout's delay is a signed 32-bit number of milliseconds.
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Janitor {
  readonly #spool: JanitorOptions['spool'];
  readonly #clock: () => number;
  readonly #intervalMs: number;
  readonly #logger: Logger | undefined;
  readonly #retentionMs: number | undefined;
  readonly #purgeEveryMs: number;
  #interval: NodeJS.Timeout | undefined;
  #purgeTimer: NodeJS.Timeout | undefined;
  #purging: Promise<void> | undefined;
  /** Aborts a running purge when the janitor stops: a shutdown must not wait for a whole archive. */
  readonly #purgeAbort = new AbortController();
  #precise: NodeJS.Timeout | undefined;
  #preciseAt = Infinity;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: JanitorOptions) {
    const interval = options.sweepIntervalMs ?? 1000;
    if (!Number.isFinite(interval) || interval <= 0) throw new RangeError('sweepIntervalMs must be a positive number');
    const retention = options.retentionMs;
    if (retention !== undefined && !(Number.isFinite(retention) && retention > 0)) throw new RangeError('retentionMs must be a positive number');
    const purgeEvery = options.purgeEveryMs ?? DEFAULT_PURGE_EVERY_MS;
    if (!Number.isFinite(purgeEvery) || purgeEvery <= 0 || purgeEvery > MAX_TIMER_MS) throw new RangeError('purgeEveryMs must be a positive number of ms that fits a timer');
    this.#retentionMs = retention;
    this.#purgeEveryMs = purgeEvery;
    this.#spool = options.spool;
    this.#clock = options.clock;
    this.#intervalMs = interval;
    this.#logger = options.logger;
  }

  /** Starts the periodic sweep and runs a first one (which also arms the precise timer). */
  start(): void {
    if (this.#stopped || this.#interval !== undefined) return;
    this.#interval = setInterval(() => this.trigger(), this.#intervalMs);
    this.#interval.unref();
    this.trigger();
    if (this.#retentionMs !== undefined) {
      this.#purgeTimer = setInterval(() => this.#purgeInBackground(), this.#purgeEveryMs);
      this.#purgeTimer.unref();
      this.#purgeInBackground();
    }
  }

  /** Tells the janitor about a new pending deadline (ms since epoch). */
  noteDeadline(deadlineMs: number): void {
    if (this.#stopped || !(deadlineMs < this.#preciseAt)) return;
    this.#arm(deadlineMs);
  }

  /** Requests a sweep now; overlapping requests collapse into one extra run. */
  trigger(): void {
    if (this.#stopped) return;
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  /** Runs one sweep and resolves with its result (used by tests and the CLI). */
  async sweepNow(): Promise<SweepResult> {
    return this.#spool.sweep(this.#clock());
  }

  /**
   * Deletes the finished handoffs older than the retention now, after a background purge that is
   * running (tests).
   * @throws HandoffError CONFIG when no retention is set, UNAVAILABLE while another purge runs, IO
   */
  async purgeNow(): Promise<PurgeResult> {
    await this.#purging; // the background purge reports its own errors
    return this.#purge();
  }

  #purge(): Promise<PurgeResult> {
    if (this.#retentionMs === undefined) return Promise.reject(new HandoffError('CONFIG', 'no retention is set'));
    return this.#spool.purge({ beforeMs: this.#clock() - this.#retentionMs, signal: this.#purgeAbort.signal });
  }

  /** Stops the timers, aborts a running purge (between buckets) and waits for it and a running sweep. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#interval);
    clearTimeout(this.#precise);
    clearInterval(this.#purgeTimer);
    this.#purgeAbort.abort();
    this.#interval = undefined;
    this.#precise = undefined;
    this.#purgeTimer = undefined;
    await this.#running;
    await this.#purging;
  }

  /** One purge at a time; a period that comes while one still runs is skipped. */
  #purgeInBackground(): void {
    if (this.#stopped || this.#purging !== undefined) return;
    this.#purging = this.#purge()
      .then(
        (r) => {
          if (r.archived + r.rejected + r.dropped > 0 || r.keptUnreadable > 0) {
            this.#logger?.info({ archived: r.archived, rejected: r.rejected, dropped: r.dropped, bytes: r.bytes, kept_unexpired: r.keptUnexpired, kept_unreadable: r.keptUnreadable }, 'janitor purged finished handoffs past the retention');
          }
        },
        (err: unknown) => {
          const e = toHandoffError(err, 'IO');
          this.#logger?.error({ code: e.code, err: e.message }, 'janitor purge failed');
        },
      )
      .finally(() => {
        this.#purging = undefined;
      });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        const sweptAt = this.#clock();
        const result = await this.#spool.sweep(sweptAt);
        if (result.expired.length > 0 || result.leaseExpired.length > 0) {
          this.#logger?.info({ expired: result.expired, lease_expired: result.leaseExpired }, 'janitor moved handoffs to rejected');
        }
        await this.#rearm(sweptAt);
      } catch (err) {
        const e = toHandoffError(err, 'IO');
        this.#logger?.error({ code: e.code, err: e.message }, 'janitor sweep failed');
      }
    } while (this.#again && !this.#stopped);
  }

  async #rearm(sweptAt: number): Promise<void> {
    let earliest = Infinity;
    for (const entry of await this.#spool.listPending()) {
      const at = safeDeadline(entry.expiresAt);
      // A deadline the sweep should already have handled but did not (another process holds the
      // sweep lock, say) is left to the periodic sweep; arming for it would spin.
      if (at >= sweptAt && at < earliest) earliest = at;
    }
    clearTimeout(this.#precise);
    this.#precise = undefined;
    this.#preciseAt = Infinity;
    if (earliest !== Infinity) this.#arm(earliest);
  }

  #arm(deadlineMs: number): void {
    if (this.#stopped) return;
    clearTimeout(this.#precise);
    this.#preciseAt = deadlineMs;
    // "Expired" means now > expires_at, so fire just after the deadline.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, deadlineMs - this.#clock() + 1));
    this.#precise = setTimeout(() => {
      this.#precise = undefined;
      this.#preciseAt = Infinity;
      this.trigger();
    }, delay);
    this.#precise.unref();
  }
}

function safeDeadline(expiresAt: string): number {
  try {
    return expiresAtMs({ expires_at: expiresAt });
  } catch {
    // An unreadable deadline is the sweep's business (it rejects the file); it needs no timer.
    return Infinity;
  }
}
