/**
 * (1) Wake-up latency: targets park a long-poll at the hub; the initiator starts a handoff for one
 * of them; we time from the moment `start` is acknowledged (the 201 reaches the initiator) to the
 * moment the parked target has the payload. Both ends live in this process, on one clock.
 *
 * The hub wakes the poll as soon as the handoff file is durable, while the initiator's 201 waits
 * for the audit line's fsync too, so the target often has the payload BEFORE the initiator hears
 * the 201: those samples are negative, and reported as measured. `send→receive` (from the moment
 * the initiator sends `start`) is always positive and is given alongside.
 *
 * Between handoffs the target accepts and completes the previous one and parks again, and the
 * driver waits until every target's poll has been parked for a moment: each sample is taken on an
 * idle hub.
 */
import { handoffIdOf, HubClient } from '../../agent-listener/index.js';
import type { BenchHub } from '../lib/hub-process.js';
import { signedPayload, tokenOf } from '../lib/fixtures.js';
import { delay, summarize, until, type Summary } from '../lib/stats.js';

export interface WakeupResult {
  parked: number;
  /** start acknowledged → payload at the parked target (may be negative, see the header). */
  ackToReceive: Summary;
  /** start sent → payload at the parked target. */
  sendToReceive: Summary;
  /** start sent → 201 at the initiator. */
  startAck: Summary;
}

/** How long a poll must have been outstanding before we trust that the hub parked it. */
const PARK_SETTLE_MS = 3;

/** A target agent that keeps one long-poll parked, and accepts and completes what it gets. */
class ParkedTarget {
  readonly received = new Map<string, number>();
  readonly settled = new Set<string>();
  polling = false;
  pollSentAt = Number.POSITIVE_INFINITY;
  failure: unknown;
  readonly #client: HubClient;
  #done: Promise<void> | undefined;

  constructor(
    readonly agent: string,
    url: string,
    token: string,
  ) {
    this.#client = new HubClient({ url, token, timeoutMs: 10_000 });
  }

  start(signal: AbortSignal): void {
    this.#done = this.#loop(signal).catch((err: unknown) => {
      if (!signal.aborted) this.failure = err;
    });
  }

  async #loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      this.pollSentAt = performance.now();
      this.polling = true;
      const texts = await this.#client.poll(this.agent, 30, { signal });
      const at = performance.now();
      this.polling = false;
      const ids = texts.map((text) => handoffIdOf(text)).filter((id): id is string => id !== undefined);
      for (const id of ids) if (!this.received.has(id)) this.received.set(id, at);
      for (const id of ids) {
        if (this.settled.has(id)) continue;
        await this.#client.accept(id);
        await this.#client.complete(id, { outcome: 'connected' });
        this.settled.add(id);
      }
    }
  }

  /** True once the poll has been outstanding long enough to be parked at the hub. */
  parked(): boolean {
    return this.polling && performance.now() - this.pollSentAt >= PARK_SETTLE_MS;
  }

  async stop(): Promise<void> {
    await this.#done;
    await this.#client.close();
  }
}

/** Runs `count` handoffs round-robin over `targets`, each one parked while its handoff starts. */
export async function measureWakeup(hub: BenchHub, initiator: string, targets: readonly string[], count: number): Promise<WakeupResult> {
  const abort = new AbortController();
  const parked = targets.map((agent) => new ParkedTarget(agent, hub.url, tokenOf(hub.tokens, agent)));
  const bob = new HubClient({ url: hub.url, token: tokenOf(hub.tokens, initiator) });
  for (const target of parked) target.start(abort.signal);
  const ackToReceive: number[] = [];
  const sendToReceive: number[] = [];
  const startAck: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const target = parked[i % parked.length] as ParkedTarget;
      await until('every target parked', () => parked.every((p) => p.failure !== undefined || p.parked()));
      const failed = parked.find((p) => p.failure !== undefined);
      if (failed) throw failed.failure;
      const signed = signedPayload(initiator, target.agent);
      const id = signed.payload.handoff_id;
      const sentAt = performance.now();
      await bob.start(signed.text);
      const ackAt = performance.now();
      await until(`handoff ${id} settled`, () => target.settled.has(id) || target.failure !== undefined);
      if (target.failure !== undefined) throw target.failure;
      const receivedAt = target.received.get(id) as number;
      ackToReceive.push(receivedAt - ackAt);
      sendToReceive.push(receivedAt - sentAt);
      startAck.push(ackAt - sentAt);
    }
  } finally {
    abort.abort();
    await Promise.all(parked.map((p) => p.stop()));
    await bob.close();
    await delay(10);
  }
  return {
    parked: parked.length,
    ackToReceive: summarize(ackToReceive),
    sendToReceive: summarize(sendToReceive),
    startAck: summarize(startAck),
  };
}
