/**
 * (2) Full lifecycle throughput: P initiator/target pairs, each running start → poll → accept →
 * complete back to back for a fixed time against a durable hub (every 2xx means fsynced file and
 * directory). Reports completed handoffs per second, the latency of one lifecycle, and the hub's
 * CPU use and peak RSS during the run.
 */
import { HubClient } from '../../agent-listener/index.js';
import type { BenchHub } from '../lib/hub-process.js';
import { signedPayload, tokenOf } from '../lib/fixtures.js';
import { runLanes } from '../lib/lanes.js';
import type { Summary } from '../lib/stats.js';

export interface LifecycleResult {
  pairs: number;
  seconds: number;
  handoffs: number;
  perSec: number;
  /** One start → poll → accept → complete, in ms. */
  lifecycle: Summary;
  hubCpuPct: number;
  /** The hub's main thread (its event loop): CPU ms per handoff. */
  hubMainMs: number;
  /** The hub's main thread: ms per handoff ready to run but waiting for a CPU. */
  hubMainWaitMs: number;
  hubPeakRssMiB: number;
  /** CPU of this process (the clients: signing, HTTP, parsing replies), % of one core. */
  clientCpuPct: number;
  /** The machine's CPU time taken by the hypervisor during the run, % of all vCPU time. */
  stealPct: number;
}

/** Pair k is `i<k>` → `t<k>`. */
export function pairAgents(pairs: number): string[] {
  return Array.from({ length: pairs }, (_, k) => [`i${k}`, `t${k}`]).flat();
}

/** Runs `pairs` pairs for `seconds` on `hub` (registered with `pairAgents(pairs)` or more). */
export async function measureLifecycle(hub: BenchHub, pairs: number, seconds: number): Promise<LifecycleResult> {
  const clients = Array.from({ length: pairs }, (_, k) => ({
    from: `i${k}`,
    to: `t${k}`,
    initiator: new HubClient({ url: hub.url, token: tokenOf(hub.tokens, `i${k}`) }),
    target: new HubClient({ url: hub.url, token: tokenOf(hub.tokens, `t${k}`) }),
  }));
  // One round first, so that connections are open and code is warm before the clock starts.
  const one = async (c: (typeof clients)[number]): Promise<void> => {
    const signed = signedPayload(c.from, c.to);
    const id = signed.payload.handoff_id;
    await c.initiator.start(signed.text);
    const texts = await c.target.poll(c.to, 5);
    if (texts.length === 0) throw new Error(`bench: poll of ${c.to} found nothing after start`);
    await c.target.accept(id);
    await c.target.complete(id, { outcome: 'connected' });
  };
  await Promise.all(clients.map(one));

  const run = await runLanes(clients, one, seconds, () => hub.cpu());
  await Promise.all(clients.flatMap((c) => [c.initiator.close(), c.target.close()]));
  const { serverCpuPct, serverMainMs, serverMainWaitMs, ...measured } = run;
  return { pairs, ...measured, hubCpuPct: serverCpuPct, hubMainMs: serverMainMs, hubMainWaitMs: serverMainWaitMs, hubPeakRssMiB: hub.peakRssMiB() };
}
