/**
 * Side by side: this tree's hub and another tree's hub (another checkout of handoff-relay, built)
 * run the 8-pair lifecycle at the same time, round after round. The host's speed drifts by up to
 * 2x within minutes here, which buries a 10% change when two trees are measured one after the
 * other; measured at once, both see the same host, so the ratio of each round is meaningful even
 * when the absolute rates (two hubs sharing two cores) are not.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { benchDir } from '../lib/fixtures.js';
import { CLI_BIN, startBenchHub } from '../lib/hub-process.js';
import { measureLifecycle, pairAgents } from './lifecycle.js';

export interface CompareRound {
  thisPerSec: number;
  otherPerSec: number;
  thisCpuMsPerHandoff: number;
  otherCpuMsPerHandoff: number;
}

export interface CompareResult {
  other: string;
  pairs: number;
  secondsPerRound: number;
  rounds: CompareRound[];
}

/** The built `handoff` bin of another checkout: the bundle, or tsc's output in trees from before it. */
export function otherBin(tree: string): string {
  for (const rel of [['dist', 'bin', 'handoff.js'], ['dist', 'cli', 'main.js']]) {
    const bin = path.resolve(tree, ...rel);
    if (existsSync(bin)) return bin;
  }
  throw new Error(`--compare: no built bin under ${tree} (run npm install or npm run build there)`);
}

export async function measureSideBySide(tree: string, pairs: number, seconds: number, rounds: number): Promise<CompareResult> {
  const bins = [CLI_BIN, otherBin(tree)];
  const hubs = [];
  try {
    for (const bin of bins) hubs.push(await startBenchHub({ dir: await benchDir('compare'), agents: pairAgents(pairs), bin }));
    await Promise.all(hubs.map((hub) => measureLifecycle(hub, pairs, 1)));
    const result: CompareResult = { other: path.resolve(tree), pairs, secondsPerRound: seconds, rounds: [] };
    for (let i = 0; i < rounds; i++) {
      const [mine, theirs] = await Promise.all(hubs.map((hub) => measureLifecycle(hub, pairs, seconds)));
      if (!mine || !theirs) throw new Error('bench: a side-by-side round returned no result');
      const cpuMs = (r: typeof mine): number => (r.hubCpuPct * 10) / r.perSec;
      result.rounds.push({ thisPerSec: mine.perSec, otherPerSec: theirs.perSec, thisCpuMsPerHandoff: cpuMs(mine), otherCpuMsPerHandoff: cpuMs(theirs) });
    }
    return result;
  } finally {
    await Promise.all(hubs.map((hub) => hub.stop()));
  }
}
