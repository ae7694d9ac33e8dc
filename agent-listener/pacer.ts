/**
 * Call pacing and the sleeps the telephony code waits with.
 *
 * Twilio queues outbound calls beyond the account's calls-per-second (1 by default) and may
 * refuse them; pacing on our side keeps a burst of handoffs from piling up there. Time comes from
 * an injected clock and every wait goes through an injected `Sleep`, so tests assert the waits
 * that were requested rather than measuring wall time.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { HandoffError } from '../protocol/index.js';

/** Waits `ms` milliseconds; rejects with the signal's reason when aborted. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** The real `Sleep`, on Node's timers. */
export const abortableSleep: Sleep = async (ms, signal) => {
  await delay(ms, undefined, signal === undefined ? undefined : { signal });
};

export interface Pacer {
  /** Resolves when the caller may start its request; callers are served in arrival order. */
  take(): Promise<void>;
}

export interface PacerOptions {
  /** Minimum spacing between the starts of two requests. */
  intervalMs: number;
  clock: () => number;
  sleep: Sleep;
}

/** A pacer that spaces request starts at least `intervalMs` apart, in arrival order. */
export function createPacer(options: PacerOptions): Pacer {
  const { intervalMs, clock, sleep } = options;
  if (!Number.isFinite(intervalMs) || intervalMs < 0) throw new HandoffError('CONFIG', 'intervalMs must be a finite number ≥ 0');
  let nextSlotMs = Number.NEGATIVE_INFINITY;
  let queue: Promise<void> = Promise.resolve();
  return {
    take(): Promise<void> {
      const turn = queue.then(async () => {
        const now = clock();
        const slot = Math.max(now, nextSlotMs);
        nextSlotMs = slot + intervalMs;
        if (slot > now) await sleep(slot - now);
      });
      // One caller's failed wait must not block the ones queued behind it.
      queue = turn.catch(() => undefined);
      return turn;
    },
  };
}
