/**
 * (4) Scale: wake-up (1 parked agent), lifecycle (8 pairs) and start-up with 0, 10,000 and 100,000
 * handoffs already in `archive/`. Start-up is timed twice: `openSpool` in this process (the
 * recovery pass alone) and the compiled hub from spawn to "listening on" (process start, module
 * loading and recovery). Work per operation must not grow with the archive.
 *
 * Each size has its own spool, filled once and then synced (the write-back of 100,000 new files
 * would otherwise land on the first rounds' fsyncs); the sizes are then measured in turn, round
 * after round, each round starting with the next size, and each figure is the median over the
 * rounds: a machine whose load drifts (other processes, disk write-back) shifts every size alike
 * instead of one of them, and no size is always measured first or last.
 *
 * How a size compares with the first (the empty spool) is paired: per round, its figure divided by
 * the first size's figure of the same round, and the median of those ratios. The host's speed
 * drifts by tens of percent within a minute here; a ratio of figures measured seconds apart
 * cancels most of that drift, where a ratio of two medians does not.
 */
import { spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { openSpool } from '../../spool/index.js';
import { startBenchHub, type BenchHub } from '../lib/hub-process.js';
import { benchDir, prefillArchive, type Tokens } from '../lib/fixtures.js';
import { median, summarize } from '../lib/stats.js';
import { measureLifecycle, pairAgents } from './lifecycle.js';
import { measureWakeup } from './wakeup.js';

/** What one round measures at one size. */
interface Round {
  openSpoolMs: number;
  hubStartMs: number;
  wakeP50Ms: number;
  wakeP99Ms: number;
  lifecyclePerSec: number;
  hubCpuMsPerHandoff: number;
}

/** The figures compared with the first size, round by round (see the header). */
const PAIRED = ['hubStartMs', 'wakeP50Ms', 'lifecyclePerSec'] as const;

/** One size: the medians of its rounds. */
export interface ScalePoint extends Round {
  /** Handoffs in archive/ before the first round. */
  archived: number;
  rounds: number;
  /** Median over the rounds of this size's figure ÷ the first size's in the same round (1 for the first). */
  vsFirst: Record<(typeof PAIRED)[number], number>;
}

async function countArchived(spoolDir: string): Promise<number> {
  const archive = path.join(spoolDir, 'archive');
  let n = 0;
  for (const bucket of await readdir(archive).catch(() => [] as string[])) {
    n += (await readdir(path.join(archive, bucket))).length;
  }
  return n;
}

/** Start-up times are short and noisy: each round takes the median of a few. */
const START_RUNS = 5;
const WARMUP_SEC = 1;
const AGENTS = ['bob', 'a000', ...pairAgents(8)];

async function measureRound(dir: string, spoolDir: string, tokens: Tokens | undefined, wakeups: number, seconds: number): Promise<{ round: Round; tokens: Tokens }> {
  const opens: number[] = [];
  for (let i = 0; i < START_RUNS; i++) {
    const t0 = performance.now();
    const spool = await openSpool({ root: spoolDir, exclusive: true });
    opens.push(performance.now() - t0);
    await spool.close();
  }
  const starts: number[] = [];
  let hub: BenchHub | undefined;
  for (let i = 0; i < START_RUNS; i++) {
    await hub?.stop();
    hub = await startBenchHub({ dir, spoolDir, agents: AGENTS, tokens });
    tokens = hub.tokens;
    starts.push(hub.startMs);
  }
  const running = hub as BenchHub;
  try {
    const wakeup = await measureWakeup(running, 'bob', ['a000'], wakeups);
    // The hub was started just now, and V8 is still compiling its hot paths seconds into a run: a
    // second of lifecycles first, so that every size is measured on warm code.
    await measureLifecycle(running, 8, WARMUP_SEC);
    const lifecycle = await measureLifecycle(running, 8, seconds);
    return {
      tokens: running.tokens,
      round: {
        openSpoolMs: median(opens),
        hubStartMs: median(starts),
        wakeP50Ms: wakeup.sendToReceive.p50,
        wakeP99Ms: wakeup.sendToReceive.p99,
        lifecyclePerSec: lifecycle.perSec,
        hubCpuMsPerHandoff: (10 * lifecycle.hubCpuPct) / lifecycle.perSec,
      },
    };
  } finally {
    await running.stop();
  }
}

/** Fills one spool per size, then measures the sizes in turn for `rounds` rounds. */
export async function measureScale(
  sizes: readonly number[],
  options: { rounds: number; wakeups: number; seconds: number },
  log: (line: string) => void,
): Promise<ScalePoint[]> {
  const spools: Array<{ dir: string; spoolDir: string; archived: number; tokens?: Tokens; rounds: Round[] }> = [];
  for (const size of sizes) {
    const dir = await benchDir(`scale-${size}`);
    const spoolDir = path.join(dir, 'spool');
    if (size > 0) {
      log(`  filling archive/ with ${size.toLocaleString('en-US')} handoffs…`);
      await prefillArchive(spoolDir, size);
    }
    spools.push({ dir, spoolDir, archived: await countArchived(spoolDir), rounds: [] });
  }
  // `sync -f`: syncfs(2) of the file system holding the spools (named by a directory that exists
  // for every size: an empty spool's own directory is made only by the hub it starts).
  const synced = spools[0] && spawnSync('sync', ['-f', spools[0].dir], { encoding: 'utf8' });
  if (synced && synced.status !== 0) throw new Error(`bench: sync -f failed: ${synced.stderr || synced.error?.message}`);
  for (let r = 0; r < options.rounds; r++) {
    for (let i = 0; i < spools.length; i++) {
      const s = spools[(r + i) % spools.length] as (typeof spools)[number];
      log(`  round ${r + 1}/${options.rounds}, ${s.archived.toLocaleString('en-US')} archived…`);
      const { round, tokens } = await measureRound(s.dir, s.spoolDir, s.tokens, options.wakeups, options.seconds);
      s.tokens = tokens;
      s.rounds.push(round);
    }
  }
  const over = (rounds: Round[], key: keyof Round): number => median(rounds.map((x) => x[key]));
  const first = (spools[0] as (typeof spools)[number]).rounds;
  const paired = (rounds: Round[], key: keyof Round): number => median(rounds.map((x, r) => x[key] / (first[r] as Round)[key]));
  return spools.map((s) => ({
    archived: s.archived,
    rounds: s.rounds.length,
    vsFirst: Object.fromEntries(PAIRED.map((key) => [key, paired(s.rounds, key)])) as ScalePoint['vsFirst'],
    openSpoolMs: over(s.rounds, 'openSpoolMs'),
    hubStartMs: over(s.rounds, 'hubStartMs'),
    wakeP50Ms: over(s.rounds, 'wakeP50Ms'),
    wakeP99Ms: over(s.rounds, 'wakeP99Ms'),
    lifecyclePerSec: over(s.rounds, 'lifecyclePerSec'),
    hubCpuMsPerHandoff: over(s.rounds, 'hubCpuMsPerHandoff'),
  }));
}
