/**
 * The timed part of every throughput scenario: each lane (an initiator/target pair) runs one
 * lifecycle after another until the time is up, while the server's CPU and this process's (the
 * clients') are measured over exactly that window.
 */
import { stealWindow, type CpuUse } from './proc.js';
import { summarize, type Summary } from './stats.js';

export interface LanesResult {
  /** Wall-clock length of the window, in seconds. */
  seconds: number;
  handoffs: number;
  perSec: number;
  /** One lifecycle, in ms. */
  lifecycle: Summary;
  /** The server's CPU over the window, % of one core. */
  serverCpuPct: number;
  /** The server's main thread: CPU ms per lifecycle (see `CpuUse.mainCpuSec`). */
  serverMainMs: number;
  /** The server's main thread: ms per lifecycle spent ready to run but waiting for a CPU. */
  serverMainWaitMs: number;
  /** This process's CPU (the clients), % of one core. */
  clientCpuPct: number;
  /** The machine's CPU time taken by the hypervisor over the window, % of all vCPU time. */
  stealPct: number;
}

/**
 * Runs `one(lane)` back to back on every lane for `seconds`. `serverCpu` starts the server's CPU
 * window; it is called right before the clock starts.
 */
export async function runLanes<L>(
  lanes: readonly L[],
  one: (lane: L) => Promise<void>,
  seconds: number,
  serverCpu: () => { stop(): CpuUse },
): Promise<LanesResult> {
  const latencies: number[] = [];
  const cpu = serverCpu();
  const steal = stealWindow();
  const clientCpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    lanes.map(async (lane) => {
      while (performance.now() < end) {
        const started = performance.now();
        await one(lane);
        latencies.push(performance.now() - started);
      }
    }),
  );
  const wallSec = (performance.now() - t0) / 1000;
  const { corePct, mainCpuSec, mainWaitSec } = cpu.stop();
  const stealPct = steal.stop();
  const clientCpu = process.cpuUsage(clientCpu0);
  return {
    seconds: wallSec,
    handoffs: latencies.length,
    perSec: latencies.length / wallSec,
    lifecycle: summarize(latencies),
    serverCpuPct: corePct,
    serverMainMs: (1000 * mainCpuSec) / latencies.length,
    serverMainWaitMs: (1000 * mainWaitSec) / latencies.length,
    clientCpuPct: (clientCpu.user + clientCpu.system) / 1e4 / wallSec,
    stealPct,
  };
}
