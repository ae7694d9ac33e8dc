/**
 * Following a call by polling the call resource, for set-ups without a public URL for status
 * callbacks. Reads are idempotent and already retried inside the dialer; a read that still fails
 * with UNAVAILABLE or TIMEOUT is skipped and the next poll tried, since losing track of a live
 * call would be worse than a late answer. Waits go through the injected sleep and stop at once
 * when the signal aborts.
 */
import { HandoffError } from '../protocol/index.js';
import { isFinalCallStatus } from './dialer.js';
import type { CallInfo, FinalCallStatus } from './dialer.js';
import type { Sleep } from './pacer.js';

/** A call that has reached a final status. */
export type FinishedCall = CallInfo & { status: FinalCallStatus };

export interface FollowCallOptions {
  /** Usually `dialer.getCall`. */
  getCall: (sid: string) => Promise<CallInfo>;
  sid: string;
  /** Pause between two polls. */
  intervalMs: number;
  sleep: Sleep;
  clock: () => number;
  signal?: AbortSignal;
  /** Give up with TIMEOUT after this long; default: follow until the call ends or the signal aborts. */
  maxDurationMs?: number;
  /** Told about each status change, e.g. to log ringing → in-progress. */
  onUpdate?: (info: CallInfo) => void;
}

const TRANSIENT_CODES: ReadonlySet<string> = new Set(['UNAVAILABLE', 'TIMEOUT']);

/**
 * Polls the call until it reaches a final status and returns it, with `answeredAtMs` set when a
 * poll saw it in progress (so it is at most one interval late). Throws TIMEOUT past
 * `maxDurationMs`, the signal's reason when aborted, and any non-transient error of `getCall`.
 */
export async function followCallByPolling(options: FollowCallOptions): Promise<FinishedCall> {
  const { getCall, sid, intervalMs, sleep, clock, signal, maxDurationMs, onUpdate } = options;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) throw new HandoffError('CONFIG', 'intervalMs must be a positive number');
  const startedMs = clock();
  let lastStatus: string | undefined;
  let answeredAtMs: number | undefined;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const info = await getCall(sid);
      if (info.status === 'in-progress') answeredAtMs ??= clock();
      if (info.status !== lastStatus) {
        lastStatus = info.status;
        onUpdate?.(info);
      }
      if (isFinalCallStatus(info.status)) return answeredAtMs === undefined ? { ...info, status: info.status } : { ...info, status: info.status, answeredAtMs };
    } catch (err) {
      if (!(err instanceof HandoffError) || !TRANSIENT_CODES.has(err.code)) throw err;
    }
    if (maxDurationMs !== undefined && clock() - startedMs >= maxDurationMs) {
      throw new HandoffError('TIMEOUT', `call not finished after ${maxDurationMs} ms of polling`);
    }
    await sleep(intervalMs, signal);
  }
}
