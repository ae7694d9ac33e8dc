/**
 * The hub as users run it: the compiled `handoff hub serve` in its own process, logging at info
 * level to a file, so that its CPU time and peak memory can be read from outside.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuWindow, peakRssMiB, type CpuUse } from './proc.js';
import { writeHubConfig, type Tokens } from './fixtures.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The built `handoff` command (the bundle `npm run build` writes), what `npm install -g` puts on the PATH. */
export const CLI_BIN = path.join(REPO_ROOT, 'dist', 'bin', 'handoff.js');

export interface BenchHub {
  url: string;
  pid: number;
  tokens: Tokens;
  spoolDir: string;
  /** Milliseconds from spawn to the "listening on" line (process start + spool recovery). */
  startMs: number;
  cpu(): { stop(): CpuUse };
  peakRssMiB(): number;
  stop(): Promise<void>;
}

export interface BenchHubOptions {
  /** Working directory: holds hub.json and hub.log; the spool is `<dir>/spool` unless given. */
  dir: string;
  agents: readonly string[];
  spoolDir?: string;
  /** Reuse tokens (a restart on the same config). */
  tokens?: Tokens;
  logLevel?: string;
  /** Extra node flags for the hub process (e.g. `--cpu-prof` when profiling). */
  nodeArgs?: readonly string[];
  /** Another tree's built bin (the side-by-side comparison); this tree's by default. */
  bin?: string;
}

/** Starts `node dist/bin/handoff.js hub serve` on a free port and waits for its URL. */
export async function startBenchHub(options: BenchHubOptions): Promise<BenchHub> {
  const spoolDir = options.spoolDir ?? path.join(options.dir, 'spool');
  const configFile = path.join(options.dir, 'hub.json');
  const tokens = options.tokens ?? (await writeHubConfig(configFile, options.agents));
  const log = openSync(path.join(options.dir, 'hub.log'), 'a');
  const args = [...(options.nodeArgs ?? []), options.bin ?? CLI_BIN, 'hub', 'serve', '--spool', spoolDir, '--config', configFile, '--port', '0', '--max-pending', '100000', '--log-level', options.logLevel ?? 'info'];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: options.dir, stdio: ['ignore', 'pipe', log], env: { ...process.env, HANDOFF_SPOOL: '' } });
  closeSync(log);
  const url = await firstLine(child);
  const startMs = performance.now() - t0;
  const m = /^listening on (http:\/\/\S+)$/.exec(url);
  if (!m) throw new Error(`bench: unexpected hub output ${JSON.stringify(url)}`);
  const pid = child.pid as number;
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return {
    url: m[1] as string,
    pid,
    tokens,
    spoolDir,
    startMs,
    cpu: () => cpuWindow(pid),
    peakRssMiB: () => peakRssMiB(pid),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The first line a child prints on stdout (its "listening on" line); stdout keeps draining after. */
export function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        child.stdout?.off('data', onData);
        child.off('close', onClose);
        // Keep draining stdout so that the hub can never block on a full pipe.
        child.stdout?.resume();
        resolve(out.slice(0, nl));
      }
    };
    const onClose = (code: number | null): void => reject(new Error(`bench: hub exited with ${code} before listening (see hub.log)`));
    child.stdout?.on('data', onData);
    child.once('close', onClose);
  });
}
