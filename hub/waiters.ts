/**
 * Parked long-polls and id watchers.
 *
 * A poll parks under its agent's name, a `GET /handoffs/{id}?wait=` under the handoff id. The
 * spool calls `notify` synchronously right after a transition is durable, and `notify` resolves the
 * matching waiters on the spot: a wake-up is one map lookup and a promise resolution, never a timer
 * or a disk scan. The only timer per waiter is the end of its `wait`. A waiter whose request is
 * aborted (client gone) is removed at once, so the registry holds only live requests.
 *
 * Callers register before they look at the spool and cancel if they found work, so a transition
 * that lands between "look" and "park" is never missed.
 *
 * Every waiter holds a connection open, so each agent may park only so many (`maxPerAgent`): one
 * runaway or hostile client cannot use up the hub's sockets and starve the other agents.
 */
import { HandoffError } from '../protocol/index.js';
import type { TransitionEvent } from '../spool/index.js';

/** Why a parked request resumed. */
export type WakeReason = 'event' | 'timeout' | 'aborted' | 'closed';

/** A parked request: await `done`, or `cancel()` when it is no longer needed. */
export interface Parked {
  readonly done: Promise<WakeReason>;
  cancel(): void;
}

interface Waiter {
  finish(reason: WakeReason): void;
}

export interface ParkOptions {
  /** The agent whose request parks (counted against its `maxPerAgent`). */
  agent: string;
  waitMs: number;
  signal?: AbortSignal;
}

const RESOLVED_CLOSED: Parked = Object.freeze({ done: Promise.resolve<WakeReason>('closed'), cancel: () => undefined });

export class WaiterRegistry {
  readonly #polls = new Map<string, Set<Waiter>>();
  readonly #watchers = new Map<string, Set<Waiter>>();
  readonly #perAgent = new Map<string, number>();
  readonly #maxPerAgent: number;
  #pollCount = 0;
  #watchCount = 0;
  #closed = false;

  constructor(options: { maxPerAgent: number }) {
    this.#maxPerAgent = options.maxPerAgent;
  }

  /**
   * Parks a poll of `options.agent` until a handoff for it becomes pending.
   * @throws HandoffError TOO_MANY_WAITING when the agent has `maxPerAgent` waiters parked.
   */
  parkPoll(options: ParkOptions): Parked {
    return this.#park(this.#polls, options.agent, options, (delta) => {
      this.#pollCount += delta;
    });
  }

  /**
   * Parks a watcher of handoff `id` until its state changes.
   * @throws HandoffError TOO_MANY_WAITING when the agent has `maxPerAgent` waiters parked.
   */
  watch(id: string, options: ParkOptions): Parked {
    return this.#park(this.#watchers, id, options, (delta) => {
      this.#watchCount += delta;
    });
  }

  /** Wakes the waiters a durable transition concerns; synchronous and cheap. */
  notify(event: TransitionEvent): void {
    if (event.to === 'pending') this.#wakeAll(this.#polls, event.toAgent);
    this.#wakeAll(this.#watchers, event.id);
  }

  /** Resolves every waiter with `closed`; later parks resolve at once (shutdown). */
  close(): void {
    this.#closed = true;
    for (const key of [...this.#polls.keys()]) this.#wakeAll(this.#polls, key, 'closed');
    for (const key of [...this.#watchers.keys()]) this.#wakeAll(this.#watchers, key, 'closed');
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Number of polls parked right now. */
  get parkedPolls(): number {
    return this.#pollCount;
  }

  /** Number of id watchers parked right now. */
  get watchers(): number {
    return this.#watchCount;
  }

  #wakeAll(map: Map<string, Set<Waiter>>, key: string, reason: WakeReason = 'event'): void {
    const set = map.get(key);
    if (set === undefined) return;
    for (const waiter of [...set]) waiter.finish(reason);
  }

  #park(map: Map<string, Set<Waiter>>, key: string, options: ParkOptions, count: (delta: number) => void): Parked {
    if (this.#closed) return RESOLVED_CLOSED;
    if (options.signal?.aborted) return { done: Promise.resolve('aborted'), cancel: () => undefined };
    const { agent } = options;
    const parkedByAgent = this.#perAgent.get(agent) ?? 0;
    if (parkedByAgent >= this.#maxPerAgent) {
      throw new HandoffError('TOO_MANY_WAITING', `agent has ${parkedByAgent} requests parked already (the most allowed)`);
    }
    this.#perAgent.set(agent, parkedByAgent + 1);
    let resolve!: (reason: WakeReason) => void;
    const done = new Promise<WakeReason>((r) => {
      resolve = r;
    });
    let finished = false;
    const agentCounts = this.#perAgent;
    const onAbort = (): void => waiter.finish('aborted');
    const waiter: Waiter = {
      finish(reason) {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        const set = map.get(key);
        if (set !== undefined) {
          set.delete(waiter);
          if (set.size === 0) map.delete(key);
        }
        count(-1);
        const left = (agentCounts.get(agent) ?? 1) - 1;
        if (left === 0) agentCounts.delete(agent);
        else agentCounts.set(agent, left);
        resolve(reason);
      },
    };
    const timer = setTimeout(() => waiter.finish('timeout'), Math.max(0, options.waitMs));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let set = map.get(key);
    if (set === undefined) {
      set = new Set();
      map.set(key, set);
    }
    set.add(waiter);
    count(1);
    return { done, cancel: () => waiter.finish('timeout') };
  }
}
