/**
 * (4) Scale: wake-up (1 parked agent), lifecycle (8 pairs) and start-up with 0, 10,000 and 100,000
 * handoffs already in `archive/`. Start-up is timed twice: `openSpool` in this process (the
 * recovery pass alone) and the compiled hub from spawn to "listening on" (process start, module
 * loading and recovery). Work per operation must not grow with the archive.
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { openSpool } from '../../spool/index.js';
import { startBenchHub } from '../lib/hub-process.js';
import { benchDir, prefillArchive } from '../lib/fixtures.js';
import { summarize } from '../lib/stats.js';
import { measureLifecycle, pairAgents, type LifecycleResult } from './lifecycle.js';
import { measureWakeup, type WakeupResult } from './wakeup.js';

export interface ScalePoint {
  archived: number;
  openSpoolMs: number;
  hubStartMs: number;
  wakeup: WakeupResult;
  lifecycle: LifecycleResult;
}

async function countArchived(spoolDir: string): Promise<number> {
  const archive = path.join(spoolDir, 'archive');
  let n = 0;
  for (const bucket of await readdir(archive).catch(() => [] as string[])) {
    n += (await readdir(path.join(archive, bucket))).length;
  }
  return n;
}

/** Start-up times are short and noisy: each is the median of a few runs. */
const START_RUNS = 3;

async function measurePoint(dir: string, spoolDir: string, wakeups: number, seconds: number): Promise<ScalePoint> {
  const archived = await countArchived(spoolDir);
  const opens: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const t0 = performance.now();
    const spool = await openSpool({ root: spoolDir, exclusive: true });
    opens.push(performance.now() - t0);
    await spool.close();
  }
  const agents = ['bob', 'a000', ...pairAgents(8)];
  const starts: number[] = [];
  let tokens;
  for (let i = 1; i < START_RUNS; i++) {
    const probe = await startBenchHub({ dir, spoolDir, agents, tokens });
    tokens = probe.tokens;
    starts.push(probe.startMs);
    await probe.stop();
  }
  const hub = await startBenchHub({ dir, spoolDir, agents, tokens });
  starts.push(hub.startMs);
  try {
    const wakeup = await measureWakeup(hub, 'bob', ['a000'], wakeups);
    const lifecycle = await measureLifecycle(hub, 8, seconds);
    return { archived, openSpoolMs: summarize(opens).p50, hubStartMs: summarize(starts).p50, wakeup, lifecycle };
  } finally {
    await hub.stop();
  }
}

/** Measures at each size in `sizes` (ascending), filling one spool's archive step by step. */
export async function measureScale(sizes: readonly number[], wakeups: number, seconds: number, log: (line: string) => void): Promise<ScalePoint[]> {
  const points: ScalePoint[] = [];
  const dir = await benchDir('scale');
  const spoolDir = path.join(dir, 'spool');
  for (const size of sizes) {
    // The runs themselves archive handoffs too: top up to the size, do not add it.
    const have = await countArchived(spoolDir);
    if (size > have) {
      log(`  filling archive/ to ${size.toLocaleString('en-US')} handoffs…`);
      await prefillArchive(spoolDir, size - have);
    }
    points.push(await measurePoint(dir, spoolDir, wakeups, seconds));
  }
  return points;
}
