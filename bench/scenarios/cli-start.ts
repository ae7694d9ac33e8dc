/**
 * (6) CLI cold start of the built bin: `handoff --help` and `handoff verify FILE`, each a fresh
 * `node dist/bin/handoff.js` process (the bundle `npm run build` writes), timed from spawn to
 * exit. `node -e 0` is measured alongside as the floor no CLI can go under.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { keyFilePath, writeKeyFile } from '../../protocol/index.js';
import { CLI_BIN } from '../lib/hub-process.js';
import { BENCH_SECRET, benchDir, signedPayload } from '../lib/fixtures.js';
import { summarize, type Summary } from '../lib/stats.js';

export interface CliStartResult {
  nodeFloor: Summary;
  help: Summary;
  verify: Summary;
}

async function timeRun(args: string[], cwd: string): Promise<number> {
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`bench: ${args.join(' ')} exited with ${code}: ${stderr}`);
  return ms;
}

async function series(runs: number, args: string[], cwd: string): Promise<Summary> {
  // One unmeasured run first: the file-system cache is warm for every measured run alike.
  await timeRun(args, cwd);
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await timeRun(args, cwd));
  return summarize(samples);
}

export async function measureCliStart(runs: number): Promise<CliStartResult> {
  const dir = await benchDir('cli');
  const keysDir = path.join(dir, 'keys');
  await writeKeyFile(keyFilePath(keysDir, 'bob'), BENCH_SECRET);
  const file = path.join(dir, 'payload.json');
  await writeFile(file, signedPayload('bob', 'alice', { ttlSec: 3600 }).text);
  return {
    nodeFloor: await series(runs, ['-e', '0'], dir),
    help: await series(runs, [CLI_BIN, '--help'], dir),
    verify: await series(runs, [CLI_BIN, 'verify', file, '--agent', 'alice', '--keys', keysDir], dir),
  };
}
