/**
 * Call following driven by Twilio's status callbacks, with polling as a safety net.
 *
 * A callback can arrive before anyone waits for it (a busy line answers within milliseconds of
 * the create request), and callbacks can be lost or reordered, so the final state of each call is
 * remembered for a while, the answering-machine verdict is merged across events, and a slow poll of
 * the call resource settles a call whose final callback never came. The moment a call is first
 * seen in progress (by callback or poll) is kept and carried into its final state as
 * `answeredAtMs`, for the listener's dial → answer latency.
 */
import { isFinalCallStatus, type AnsweredBy, type CallInfo } from './dialer.js';
import type { CallStatusEvent } from './call-webhook.js';
import { sleep } from './listener.js';

const REMEMBER_FINALS = 1000;
/**
 * Facts about calls still live (answered by whom, answered when). A call whose final callback
 * never comes, and that nobody waits for any more, would keep its entries for ever: the oldest go
 * first past this many. A listener has a handful of calls in flight, so only such leftovers go.
 */
const REMEMBER_LIVE = 1000;

/** Sets `key` as the newest entry of `map`, dropping the oldest beyond `cap`. */
function remember<V>(map: Map<string, V>, key: string, value: V, cap: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > cap) map.delete(map.keys().next().value as string);
}

export interface CallEventHubOptions {
  /** Stamps `answeredAtMs`; must be the listener's clock, which measures from the dial. Default Date.now. */
  clock?: () => number;
}

export class CallEventHub {
  private readonly finals = new Map<string, CallInfo>();
  private readonly answeredBy = new Map<string, AnsweredBy>();
  /** When each live call was first seen in progress. */
  private readonly answeredAt = new Map<string, number>();
  private readonly waiters = new Map<string, Set<(info: CallInfo) => void>>();
  private readonly clock: () => number;

  constructor(options: CallEventHubOptions = {}) {
    this.clock = options.clock ?? Date.now;
  }

  /** Feeds one validated status callback. */
  push(event: CallStatusEvent): void {
    if (event.answeredBy) remember(this.answeredBy, event.callSid, event.answeredBy, REMEMBER_LIVE);
    if (event.callStatus === 'in-progress') this.noteAnswered(event.callSid);
    if (!isFinalCallStatus(event.callStatus)) return;
    const info: CallInfo = {
      sid: event.callSid,
      status: event.callStatus,
      answeredBy: event.answeredBy ?? this.answeredBy.get(event.callSid),
      durationSec: event.durationSec,
    };
    this.settle(info);
  }

  private noteAnswered(sid: string): void {
    // A late in-progress callback of a call that already ended is not an answer we waited for.
    if (this.finals.has(sid) || this.answeredAt.has(sid)) return;
    remember(this.answeredAt, sid, this.clock(), REMEMBER_LIVE);
  }

  private settle(final: CallInfo): void {
    if (this.finals.has(final.sid)) return;
    const answeredAtMs = final.answeredAtMs ?? this.answeredAt.get(final.sid);
    const info = answeredAtMs === undefined ? final : { ...final, answeredAtMs };
    remember(this.finals, info.sid, info, REMEMBER_FINALS);
    this.answeredBy.delete(info.sid);
    this.answeredAt.delete(info.sid);
    for (const resolve of this.waiters.get(info.sid) ?? []) resolve(info);
    this.waiters.delete(info.sid);
  }

  /**
   * Resolves with the call's final state: from a callback, or from `poll` every `safetyPollMs`
   * when callbacks do not come. Rejects only if `poll` throws while the signal is live.
   */
  async wait(sid: string, poll: (sid: string) => Promise<CallInfo>, safetyPollMs: number, signal: AbortSignal): Promise<CallInfo> {
    const known = this.finals.get(sid);
    if (known) return known;
    // An abort event has fired already for a signal aborted before the call: it never comes again.
    if (signal.aborted) throw signal.reason ?? new Error('aborted');
    return new Promise<CallInfo>((resolve, reject) => {
      const done = new AbortController();
      const finish = (info: CallInfo) => {
        done.abort();
        resolve(info);
      };
      const set = this.waiters.get(sid) ?? new Set();
      set.add(finish);
      this.waiters.set(sid, set);
      const onAbort = () => {
        set.delete(finish);
        done.abort();
        reject(signal.reason ?? new Error('aborted'));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      void (async () => {
        while (!done.signal.aborted) {
          await sleep(safetyPollMs, done.signal);
          if (done.signal.aborted) break;
          try {
            const info = await poll(sid);
            if (info.status === 'in-progress') this.noteAnswered(sid);
            if (isFinalCallStatus(info.status)) this.settle(info);
          } catch {
            // the next safety poll or a callback will tell
          }
        }
        signal.removeEventListener('abort', onAbort);
      })();
    });
  }
}
