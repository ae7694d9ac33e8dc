/**
 * `npm run bench [-- options]`: how fast a handoff moves through the relay on this machine, how it
 * scales with the archive, and the same lifecycle through BullMQ on Redis side by side. Prints a
 * table and writes bench/results/latest.json. See bench/README.md for what each row measures.
 *
 * Options:
 *   --quick            small counts and short runs (under two minutes)
 *   --handoffs N       wake-up samples per configuration (default 2000; quick 200)
 *   --seconds S        duration of each lifecycle run (default 10; quick 2)
 *   --archive N        largest archive size of the scale rows (default 100000; quick 100000)
 *   --e2e N            end-to-end samples through the listener (default 500; quick 100)
 *   --cli-e2e N        end-to-end samples through a spawned CLI (default 30; quick 5)
 *   --local N          local-mode samples (default 1000; quick 200)
 *   --cli-runs N       CLI cold starts per command (default 30; quick 10)
 *   --only LIST        comma-separated sections: disk,storage,http,wakeup,lifecycle,e2e,scale,local,cli,bullmq,compare
 *   --no-build         use dist/ as it is (default: npm run build first)
 *   --no-bullmq        skip the BullMQ comparison
 *   --compare DIR      also run this tree's hub and DIR's (another built checkout) side by side,
 *                      8 pairs each, --rounds rounds of --seconds (default 5 rounds)
 *   --rounds N         rounds of the side-by-side comparison
 *   --out FILE         results file (default bench/results/latest.json)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { CLI_BIN, REPO_ROOT, startBenchHub } from './lib/hub-process.js';
import { benchDir, cleanup } from './lib/fixtures.js';
import { startBenchRedis } from './lib/redis.js';
import { round, type Summary } from './lib/stats.js';
import { measureBullLifecycle, measureBullWakeup, type BullLifecycleResult, type BullWakeupResult } from './scenarios/bullmq.js';
import { measureCliStart, type CliStartResult } from './scenarios/cli-start.js';
import { measureSideBySide, type CompareResult } from './scenarios/compare.js';
import { measureDisk, type DiskResult } from './scenarios/disk.js';
import { measureE2e, type E2eResult } from './scenarios/e2e.js';
import { measureHttpFloor, type HttpFloorResult } from './scenarios/http-floor.js';
import { measureLifecycle, pairAgents, type LifecycleResult } from './scenarios/lifecycle.js';
import { measureLocal, type LocalResult } from './scenarios/local.js';
import { measureScale, type ScalePoint } from './scenarios/scale.js';
import { measureStorageFloor, type StorageFloorRow } from './scenarios/storage-floor.js';
import { measureWakeup, type WakeupResult } from './scenarios/wakeup.js';

const SECTIONS = ['disk', 'storage', 'http', 'wakeup', 'lifecycle', 'e2e', 'scale', 'local', 'cli', 'bullmq', 'compare'] as const;
type Section = (typeof SECTIONS)[number];

interface Options {
  quick: boolean;
  handoffs: number;
  seconds: number;
  archive: number;
  e2e: number;
  cliE2e: number;
  local: number;
  cliRuns: number;
  only: Set<Section>;
  build: boolean;
  out: string;
  compare: string | undefined;
  rounds: number;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      handoffs: { type: 'string' },
      seconds: { type: 'string' },
      archive: { type: 'string' },
      e2e: { type: 'string' },
      'cli-e2e': { type: 'string' },
      local: { type: 'string' },
      'cli-runs': { type: 'string' },
      only: { type: 'string' },
      'no-build': { type: 'boolean', default: false },
      'no-bullmq': { type: 'boolean', default: false },
      out: { type: 'string' },
      compare: { type: 'string' },
      rounds: { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick === true;
  const count = (name: string, text: string | undefined, full: number, fast: number, min = 1): number => {
    if (text === undefined) return quick ? fast : full;
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
    return n;
  };
  const only = new Set<Section>(values.only === undefined ? SECTIONS : []);
  for (const name of values.only?.split(',') ?? []) {
    if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`--only: unknown section ${name} (${SECTIONS.join(', ')})`);
    only.add(name as Section);
  }
  if (values['no-bullmq']) only.delete('bullmq');
  if (values.compare === undefined) {
    if (values.only?.split(',').includes('compare')) throw new Error('--only compare needs --compare DIR');
    only.delete('compare');
  }
  return {
    quick,
    handoffs: count('handoffs', values.handoffs, 2000, 200),
    seconds: duration(values.seconds, quick),
    archive: count('archive', values.archive, 100_000, 100_000, 0),
    e2e: count('e2e', values.e2e, 500, 100),
    cliE2e: count('cli-e2e', values['cli-e2e'], 30, 5, 0),
    local: count('local', values.local, 1000, 200),
    cliRuns: count('cli-runs', values['cli-runs'], 30, 10),
    only,
    build: !values['no-build'],
    out: values.out ?? path.join(REPO_ROOT, 'bench', 'results', 'latest.json'),
    compare: values.compare,
    rounds: count('rounds', values.rounds, 5, 3),
  };
}

function duration(text: string | undefined, quick: boolean): number {
  if (text === undefined) return quick ? 2 : 10;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0.5) throw new Error('--seconds must be a number ≥ 0.5');
  return n;
}

interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  disk: string;
}

function machine(): Machine {
  let disk = 'unknown';
  try {
    const mount = execFileSync('findmnt', ['-no', 'SOURCE,FSTYPE,OPTIONS', '--target', os.tmpdir()], { encoding: 'utf8' }).trim();
    const [source = '', fstype = ''] = mount.split(/\s+/);
    const dev = path.basename(source);
    let kind = '';
    try {
      kind = execFileSync('cat', [`/sys/block/${dev}/queue/rotational`], { encoding: 'utf8' }).trim() === '1' ? ', rotational' : ', non-rotational';
    } catch {
      // a partition or a virtual device without a queue entry
    }
    const virt = spawnSync('systemd-detect-virt', { encoding: 'utf8' }).stdout?.trim();
    disk = `${fstype} on ${source}${kind}${virt && virt !== 'none' ? ` (virtual disk, ${virt})` : ''}`;
  } catch {
    // findmnt missing: leave "unknown"
  }
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    disk,
  };
}

// ------------------------------------------------------------------ table

interface TableSection {
  title: string;
  columns: string[];
  rows: string[][];
}

const sections: TableSection[] = [];

/** Starts a section of the table; `columns` name the cells after the label. */
function heading(title: string, columns: string[] = []): void {
  sections.push({ title, columns, rows: [] });
}

function row(label: string, ...cells: Array<string | number>): void {
  sections[sections.length - 1]?.rows.push([label, ...cells.map((c) => (typeof c === 'number' ? String(round(c)) : c))]);
}

const LATENCY_COLUMNS = ['n', 'p50 ms', 'p99 ms', 'max ms'];

function latencyCells(s: Summary): Array<string | number> {
  return [s.n, s.p50, s.p99, s.max];
}

function renderTable(): string {
  const out: string[] = [];
  for (const section of sections) {
    out.push('', section.title);
    const all = [['', ...section.columns], ...section.rows];
    const widths: number[] = [];
    for (const r of all) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
    for (const r of section.columns.length > 0 ? all : section.rows) {
      out.push(`  ${r.map((cell, i) => (i === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ').trimEnd()}`);
    }
  }
  return out.join('\n');
}

// ------------------------------------------------------------------ run

interface Results {
  startedAt: string;
  durationSec: number;
  machine: Machine;
  options: Omit<Options, 'only'> & { only: Section[] };
  disk?: DiskResult;
  storage?: StorageFloorRow[];
  http?: HttpFloorResult;
  /** The HTTP floor with the storage floor's durable steps in its handlers: 1, 8 (with the audit lines, then without) and 64 pairs. */
  httpStorage?: HttpFloorResult[];
  wakeup?: WakeupResult[];
  lifecycle?: LifecycleResult[];
  e2e?: E2eResult;
  scale?: ScalePoint[];
  local?: LocalResult;
  cli?: CliStartResult;
  bullmq?:
    | { skipped: string }
    | {
        runs: Array<{
          mode: 'default' | 'durable';
          persistence: { save: string; appendonly: string; appendfsync: string };
          wakeup: BullWakeupResult;
          lifecycle: BullLifecycleResult[];
        }>;
      };
  compare?: CompareResult;
  targets?: Array<{ what: string; target: string; measured: string; met: boolean }>;
}

const T0 = performance.now();

function log(line: string): void {
  process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);
}

/** True when a source file (or the build configuration) is newer than the compiled CLI. */
function distIsStale(): boolean {
  let built: number;
  try {
    // The bundle is written last by `npm run build`.
    built = statSync(CLI_BIN).mtimeMs;
  } catch {
    return true;
  }
  const newer = (file: string): boolean => statSync(file).mtimeMs > built;
  if (['package.json', 'tsconfig.json', 'tsconfig.build.json', 'index.ts', 'scripts/bundle-bin.mjs'].some((f) => newer(path.join(REPO_ROOT, f)))) return true;
  for (const dir of ['protocol', 'spool', 'hub', 'agent-listener', 'policy', 'cli']) {
    for (const entry of readdirSync(path.join(REPO_ROOT, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts') && newer(path.join(entry.parentPath, entry.name))) return true;
    }
  }
  return false;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const results: Results = {
    startedAt: new Date().toISOString(),
    durationSec: 0,
    machine: machine(),
    options: { ...options, only: [...options.only] },
  };
  const has = (s: Section): boolean => options.only.has(s);
  const m = results.machine;
  log(`handoff-relay bench${options.quick ? ' (quick)' : ''}: ${m.cpu}, ${m.cores} cores, ${m.kernel}, Node ${m.node}, ${m.disk}`);

  if (options.build && (has('wakeup') || has('lifecycle') || has('e2e') || has('scale') || has('cli'))) {
    if (distIsStale()) {
      log('building dist/ (npm run build)…');
      const built = spawnSync('npm', ['run', 'build', '--silent'], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
      if (built.status !== 0) throw new Error('npm run build failed');
    } else log('dist/ is up to date with the sources');
  }

  try {
    if (has('disk')) {
      log('disk floor…');
      results.disk = await measureDisk(options.quick ? 1 : 3);
    }

    if (has('http')) {
      log('HTTP floor (a server that does nothing), 8 pairs…');
      results.http = await measureHttpFloor(8, options.seconds, {});
    }

    if (has('wakeup')) {
      results.wakeup = [];
      for (const parked of [1, 100]) {
        log(`wake-up, ${parked} parked…`);
        const targets = Array.from({ length: parked }, (_, k) => `a${String(k).padStart(3, '0')}`);
        const hub = await startBenchHub({ dir: await benchDir('wakeup'), agents: ['bob', ...targets] });
        try {
          results.wakeup.push(await measureWakeup(hub, 'bob', targets, options.handoffs));
        } finally {
          await hub.stop();
        }
      }
    }

    // The storage floor runs right before the relay's lifecycle with as many pairs: the host's
    // speed drifts within minutes, and the two are only comparable measured together.
    const storageSeconds = Math.min(options.seconds, 5);
    const storageFloor = async (pairs: number): Promise<void> => {
      for (const audit of pairs === 8 ? [false, true] : [true]) {
        log(`storage floor, ${pairs} pair${pairs > 1 ? 's' : ''}${audit ? '' : ', no audit lines'}…`);
        (results.storage ??= []).push(await measureStorageFloor(pairs, storageSeconds, audit));
      }
    };
    // Likewise the HTTP + storage floor, and at 8 pairs (the target's row) without the audit
    // lines too: the spool's promise, then DESIGN.md §4's alone. A quick run, which must stay
    // under two minutes, measures only the row beside the target.
    const httpStorageFloor = async (pairs: number): Promise<void> => {
      if (options.quick && pairs !== 8) return;
      for (const audit of pairs === 8 && !options.quick ? [true, false] : [true]) {
        log(`HTTP + storage floor (a server that makes the durable steps and nothing else), ${pairs} pair${pairs > 1 ? 's' : ''}${audit ? '' : ', no audit lines'}…`);
        (results.httpStorage ??= []).push(await measureHttpFloor(pairs, options.seconds, { storage: { audit } }));
      }
    };
    for (const pairs of has('lifecycle') ? [] : [1, 8, 64]) {
      if (has('storage')) await storageFloor(pairs);
      if (has('http')) await httpStorageFloor(pairs);
    }

    if (has('lifecycle')) {
      results.lifecycle = [];
      for (const pairs of [1, 8, 64]) {
        if (has('storage')) await storageFloor(pairs);
        if (has('http')) await httpStorageFloor(pairs);
        log(`lifecycle, ${pairs} pairs…`);
        const hub = await startBenchHub({ dir: await benchDir('lifecycle'), agents: pairAgents(pairs) });
        try {
          results.lifecycle.push(await measureLifecycle(hub, pairs, options.seconds));
        } finally {
          await hub.stop();
        }
      }
    }

    if (has('e2e')) {
      log('end to end through a listener…');
      const hub = await startBenchHub({ dir: await benchDir('e2e-hub'), agents: ['bob', 'alice'] });
      try {
        results.e2e = await measureE2e(hub, options.e2e, options.cliE2e);
      } finally {
        await hub.stop();
      }
    }

    if (has('local')) {
      log('local mode (chokidar)…');
      results.local = await measureLocal(options.local);
    }

    if (has('cli')) {
      log('CLI cold start…');
      results.cli = await measureCliStart(options.cliRuns);
    }

    if (has('bullmq')) {
      results.bullmq = await runBullmq(options);
    }

    if (has('compare') && options.compare !== undefined) {
      log(`side by side with ${options.compare}, ${options.rounds} rounds…`);
      results.compare = await measureSideBySide(options.compare, 8, options.seconds, options.rounds);
    }

    // Last: filling archive/ writes 100,000 files, whose write-back would disturb what follows.
    if (has('scale')) {
      log('scale with archive/…');
      const sizes = [...new Set([0, Math.min(10_000, options.archive), options.archive])].sort((a, b) => a - b);
      // Five rounds: a median of paired ratios that one disturbed round cannot move.
      const rounds = options.quick ? 2 : 5;
      results.scale = await measureScale(
        sizes,
        { rounds, wakeups: Math.max(50, Math.round(options.handoffs / 4 / rounds)), seconds: Math.max(1, options.seconds / rounds) },
        log,
      );
    }
  } finally {
    cleanup();
  }

  results.durationSec = (performance.now() - T0) / 1000;
  results.targets = targets(results);
  buildTable(results);
  const table = renderTable();
  process.stdout.write(`${table}\n\n`);
  await mkdir(path.dirname(options.out), { recursive: true });
  await writeFile(options.out, `${JSON.stringify(results, (_k, v: unknown) => (typeof v === 'number' ? round(v) : v), 2)}\n`);
  log(`wrote ${path.relative(process.cwd(), options.out)} (${round(results.durationSec)} s)`);
}

async function runBullmq(options: Options): Promise<NonNullable<Results['bullmq']>> {
  const runs: Extract<NonNullable<Results['bullmq']>, { runs: unknown }>['runs'] = [];
  for (const mode of ['default', 'durable'] as const) {
    log(`BullMQ on Redis (${mode} persistence)…`);
    const dir = await benchDir(`redis-${mode}`);
    const { redis, why } = await startBenchRedis(dir, mode === 'durable');
    if (redis === undefined) {
      log(`BullMQ comparison skipped: ${why}`);
      return { skipped: why ?? 'redis-server unavailable' };
    }
    try {
      const wakeup = await measureBullWakeup(redis, mode, options.handoffs);
      const lifecycle: BullLifecycleResult[] = [];
      for (const pairs of [1, 8, 64]) {
        log(`BullMQ lifecycle, ${pairs} pairs…`);
        lifecycle.push(await measureBullLifecycle(redis, `${mode}-${pairs}`, pairs, options.seconds));
      }
      runs.push({ mode, persistence: redis.persistence, wakeup, lifecycle });
    } finally {
      await redis.stop();
    }
  }
  return { runs };
}

/** The HTTP + storage floor's 8-pair row with the audit lines (the relay's promise), if measured. */
function withAudit(rows: HttpFloorResult[] | undefined): HttpFloorResult | undefined {
  return rows?.find((h) => h.pairs === 8 && h.storage?.audit === true);
}

function targets(r: Results): NonNullable<Results['targets']> {
  const out: NonNullable<Results['targets']> = [];
  const idle = r.wakeup?.[0];
  if (idle) {
    out.push({ what: 'wake-up p50 (1 parked, ack→receive)', target: '≤ 1 ms', measured: `${round(idle.ackToReceive.p50)} ms`, met: idle.ackToReceive.p50 <= 1 });
    out.push({ what: 'wake-up p99 (1 parked, ack→receive)', target: '≤ 5 ms', measured: `${round(idle.ackToReceive.p99)} ms`, met: idle.ackToReceive.p99 <= 5 });
  }
  const eight = r.lifecycle?.find((l) => l.pairs === 8);
  if (eight) {
    // The floor beside it: the same requests and durable steps with no other work, just before.
    const floor = withAudit(r.httpStorage);
    const beside = floor ? ` (HTTP + storage floor ${round(floor.perSec)} /s)` : '';
    out.push({ what: 'lifecycle at 8 pairs, durable', target: '≥ 1000 /s', measured: `${round(eight.perSec)} /s${beside}`, met: eight.perSec >= 1000 });
  }
  if (r.e2e) out.push({ what: 'end-to-end overhead p99 (in-process start)', target: '≤ 50 ms', measured: `${round(r.e2e.inProcess.p99)} ms`, met: r.e2e.inProcess.p99 <= 50 });
  if (r.scale && r.scale.length > 1) {
    const first = r.scale[0] as ScalePoint;
    const last = r.scale[r.scale.length - 1] as ScalePoint;
    // Paired within each round (scale.ts): the host's drift between rounds cancels out.
    const span = `${first.archived.toLocaleString('en-US')} → ${last.archived.toLocaleString('en-US')} archived`;
    const flat = (what: string, ratio: number, shown = `${round(100 * (ratio - 1))}%`): (typeof out)[number] => ({
      what: `${what} ${span}`,
      target: 'within 20%',
      measured: shown,
      met: Math.abs(ratio - 1) <= 0.2,
    });
    out.push(flat('lifecycle', last.vsFirst.lifecyclePerSec));
    out.push(flat('wake-up p50 (send→receive)', last.vsFirst.wakeP50Ms));
    out.push(flat('hub start', last.vsFirst.hubStartMs, `${round(first.hubStartMs)} → ${round(last.hubStartMs)} ms, ${round(100 * (last.vsFirst.hubStartMs - 1))}%`));
  }
  if (r.cli) out.push({ what: 'CLI --help cold start p50', target: '≤ 150 ms', measured: `${round(r.cli.help.p50)} ms`, met: r.cli.help.p50 <= 150 });
  return out;
}

function buildTable(r: Results): void {
  const m = r.machine;
  heading(`handoff-relay bench, ${r.startedAt.slice(0, 16).replace('T', ' ')} UTC: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.kernel}, Node ${m.node}, ${m.disk}`);
  if (r.disk) {
    heading('(7a) disk floor, 1.4 KB files', ['ops/s']);
    row('write+fsync+rename, serial', r.disk.serialPerSec);
    row('write+fsync+rename, 8 in flight', r.disk.parallel8PerSec);
    row('write+fsync+rename+fsync(dir), serial', r.disk.serialWithDirSyncPerSec);
  }
  if (r.storage) {
    heading('(7a) storage floor: the file-system calls of a lifecycle as the spool makes them, in order, nothing else; each run just before the relay\'s (2) row', [
      'lifecycles/s',
      'fsyncs/lifecycle',
      'CPU %',
      'CPU ms/lifecycle',
      'host steal %',
      'relay ÷ floor',
    ]);
    for (const s of r.storage) {
      const relay = s.audit ? r.lifecycle?.find((l) => l.pairs === s.pairs) : undefined;
      const label = `${s.pairs} pair${s.pairs > 1 ? 's' : ''}, ${s.audit ? 'state files and audit lines' : 'state files only (no audit log)'}`;
      row(label, s.perSec, s.fsyncsPerLifecycle, s.cpuPct, s.cpuMsPerLifecycle, s.stealPct, relay ? `${round(relay.perSec / s.perSec)}x` : '-');
    }
  }
  const serverColumns = ['lifecycles/s', 'server CPU %', 'server main thread ms/lifecycle', 'clients CPU %', 'host steal %'];
  if (r.http) {
    heading('(7a) HTTP floor: the four requests of a lifecycle, 8 pairs, against a hono server that does nothing', serverColumns);
    row('start → poll → accept → complete, no storage, no checks', r.http.perSec, r.http.serverCpuPct, r.http.serverMainMs, r.http.clientCpuPct, r.http.stealPct);
  }
  if (r.httpStorage) {
    heading('(7a) HTTP + storage floor: start → poll → accept → complete against the same server making the storage floor\'s durable steps in its handlers, no checks; each run just before the relay\'s (2) row', [
      ...serverColumns,
      'fsyncs/lifecycle',
      'relay ÷ floor',
    ]);
    for (const h of r.httpStorage) {
      const audit = h.storage?.audit === true;
      const relay = audit ? r.lifecycle?.find((l) => l.pairs === h.pairs) : undefined;
      const label = `${h.pairs} pair${h.pairs > 1 ? 's' : ''}, ${audit ? 'state files and audit lines' : 'state files only (no audit log)'}`;
      row(label, h.perSec, h.serverCpuPct, h.serverMainMs, h.clientCpuPct, h.stealPct, h.storage?.fsyncsPerLifecycle ?? '-', relay ? `${round(relay.perSec / h.perSec)}x` : '-');
    }
  }
  if (r.wakeup) {
    heading('(1) wake-up of a parked long-poll, hub idle', LATENCY_COLUMNS);
    for (const w of r.wakeup) {
      row(`${w.parked} parked: start ack → target has payload`, ...latencyCells(w.ackToReceive));
      row(`${w.parked} parked: start sent → target has payload`, ...latencyCells(w.sendToReceive));
      row(`${w.parked} parked: start sent → 201 at initiator`, ...latencyCells(w.startAck));
    }
  }
  if (r.lifecycle) {
    heading('(2) lifecycle start → poll → accept → complete, durable', [
      'handoffs/s',
      'p50 ms',
      'p99 ms',
      'hub CPU %',
      'hub CPU ms/handoff',
      'of which main thread',
      'main thread waiting ms/handoff',
      'hub peak RSS MiB',
      'clients CPU %',
      'host steal %',
    ]);
    for (const l of r.lifecycle) {
      const label = `${l.pairs} pair${l.pairs > 1 ? 's' : ''}`;
      row(label, l.perSec, l.lifecycle.p50, l.lifecycle.p99, l.hubCpuPct, (10 * l.hubCpuPct) / l.perSec, l.hubMainMs, l.hubMainWaitMs, l.hubPeakRssMiB, l.clientCpuPct, l.stealPct);
    }
  }
  if (r.e2e) {
    heading('(3) end to end: handoff start → call-creation request at the Twilio stub', LATENCY_COLUMNS);
    row('in-process `handoff start` action, real listener + twilio SDK', ...latencyCells(r.e2e.inProcess));
    if (r.e2e.cliProcess.n > 0) row('spawned `node dist/bin/handoff.js start` (adds cold start)', ...latencyCells(r.e2e.cliProcess));
  }
  if (r.scale) {
    heading(`(4) scale with archive/, medians of ${r.scale[0]?.rounds ?? 0} interleaved rounds (wake-up: 1 parked, send → receive; lifecycle: 8 pairs; ÷ first: paired within each round)`, [
      'archived',
      'openSpool ms',
      'hub start ms',
      'wake p50 ms',
      'wake p99 ms',
      'lifecycle/s',
      'hub CPU ms/handoff',
      'hub start ÷ first',
      'wake p50 ÷ first',
      'lifecycle/s ÷ first',
    ]);
    for (const p of r.scale) {
      row('', p.archived, p.openSpoolMs, p.hubStartMs, p.wakeP50Ms, p.wakeP99Ms, p.lifecyclePerSec, p.hubCpuMsPerHandoff, p.vsFirst.hubStartMs, p.vsFirst.wakeP50Ms, p.vsFirst.lifecyclePerSec);
    }
  }
  if (r.local) {
    heading('(5) local mode: put acknowledged → LocalSource (chokidar) has it', LATENCY_COLUMNS);
    row('watcher path (periodic rescan 60 s)', ...latencyCells(r.local.ackToReceive));
  }
  if (r.cli) {
    heading('(6) CLI cold start, compiled bin, spawn → exit', LATENCY_COLUMNS);
    row('node -e 0 (the floor)', ...latencyCells(r.cli.nodeFloor));
    row('handoff --help', ...latencyCells(r.cli.help));
    row('handoff verify FILE', ...latencyCells(r.cli.verify));
  }
  if (r.bullmq && 'skipped' in r.bullmq) heading(`(7) BullMQ side by side: SKIPPED, ${r.bullmq.skipped}`);
  if (r.bullmq && 'runs' in r.bullmq) {
    for (const run of r.bullmq.runs) {
      const p = run.persistence;
      heading(`(7) BullMQ on Redis, ${run.mode === 'durable' ? 'DURABLE' : 'default persistence'} (appendonly ${p.appendonly}, appendfsync ${p.appendfsync}, save "${p.save}")`, LATENCY_COLUMNS);
      row('wake-up: add acknowledged → worker has the job', ...latencyCells(run.wakeup.ackToReceive));
      row('wake-up: add sent → worker has the job', ...latencyCells(run.wakeup.sendToReceive));
      const relayWake = r.wakeup?.[0];
      heading(`    lifecycle add → getNextJob → moveToCompleted (${run.mode})`, ['handoffs/s', 'p50 ms', 'p99 ms', 'redis CPU %', 'redis RSS MiB', 'clients CPU %', 'host steal %', 'relay ÷ bullmq']);
      for (const l of run.lifecycle) {
        const relay = r.lifecycle?.find((x) => x.pairs === l.pairs);
        row(`${l.pairs} pair${l.pairs > 1 ? 's' : ''}`, l.perSec, l.lifecycle.p50, l.lifecycle.p99, l.redisCpuPct, l.redisPeakRssMiB, l.clientCpuPct, l.stealPct, relay ? `${round(relay.perSec / l.perSec)}x` : '-');
      }
      if (relayWake) {
        heading(`    wake-up ratio, relay ÷ bullmq (${run.mode}), send → receive`, ['p50', 'p99']);
        row('1 parked', `${round(relayWake.sendToReceive.p50 / run.wakeup.sendToReceive.p50)}x`, `${round(relayWake.sendToReceive.p99 / run.wakeup.sendToReceive.p99)}x`);
      }
    }
  }
  const eight = r.lifecycle?.find((l) => l.pairs === 8);
  if (r.disk && eight) {
    heading('(7b) distance from the disk floor (8 pairs vs 8 writes in flight)', ['value']);
    row('relay handoffs/s', eight.perSec);
    row('durable file writes per handoff (put, claim, complete)', 3);
    row('relay durable writes/s (3 × handoffs/s)', 3 * eight.perSec);
    row('floor write+fsync+rename/s', r.disk.parallel8PerSec);
    row('share of the floor reached', `${round((300 * eight.perSec) / r.disk.parallel8PerSec)}%`);
  }
  const storage8 = r.storage?.find((s) => s.pairs === 8 && s.audit);
  if (storage8 && eight) {
    heading('(7b) distance from the storage floor (8 pairs, the same durable steps without HTTP or checks)', ['value']);
    row('relay handoffs/s', eight.perSec);
    row('storage floor lifecycles/s', storage8.perSec);
    row('share of the storage floor reached', `${round((100 * eight.perSec) / storage8.perSec)}%`);
    row('storage floor CPU ms/lifecycle', storage8.cpuMsPerLifecycle);
    row('relay hub CPU ms/handoff', (10 * eight.hubCpuPct) / eight.perSec);
    row('relay hub main thread CPU ms/handoff', eight.hubMainMs);
    row('main thread CPU ms/handoff that 1,000/s allows', 1);
  }
  if (r.http && eight) {
    heading('(7b) distance from the HTTP floor (8 pairs, same requests, same machine)', ['value']);
    row('relay handoffs/s', eight.perSec);
    row('HTTP floor lifecycles/s', r.http.perSec);
    row('share of the HTTP floor reached', `${round((100 * eight.perSec) / r.http.perSec)}%`);
  }
  const httpStorage8 = withAudit(r.httpStorage);
  if (httpStorage8 && eight) {
    heading('(7b) distance from the HTTP + storage floor (8 pairs: the requests and the durable steps with the audit lines, nothing else)', ['value']);
    row('relay handoffs/s', eight.perSec);
    row('HTTP + storage floor lifecycles/s', httpStorage8.perSec);
    row('share of the HTTP + storage floor reached', `${round((100 * eight.perSec) / httpStorage8.perSec)}%`);
    row('the target (1,000/s) ÷ the floor', `${round(1000 / httpStorage8.perSec)}x`);
  }
  if (r.compare) {
    const c = r.compare;
    heading(`(8) side by side with ${c.other}: both hubs at once, ${c.pairs} pairs each, ${c.secondsPerRound} s rounds`, [
      'this /s',
      'other /s',
      'this ÷ other',
      'this CPU ms/handoff',
      'other CPU ms/handoff',
      'this ÷ other',
    ]);
    c.rounds.forEach((x, i) => {
      row(`round ${i + 1}`, x.thisPerSec, x.otherPerSec, `${round(x.thisPerSec / x.otherPerSec)}x`, x.thisCpuMsPerHandoff, x.otherCpuMsPerHandoff, `${round(x.thisCpuMsPerHandoff / x.otherCpuMsPerHandoff)}x`);
    });
  }
  if (r.targets && r.targets.length > 0) {
    heading('targets (issue 7)', ['target', 'measured', '']);
    for (const t of r.targets) row(t.what, t.target, t.measured, t.met ? 'met' : 'NOT MET');
  }
  heading(`total ${round(r.durationSec)} s`);
}

main().catch((err: unknown) => {
  cleanup();
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
