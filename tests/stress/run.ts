/**
 * The long profile of the reliability and security suites (`npm run test:stress`): the same suites
 * as the quick profile in `npm test`, with large counts. Prints one row per suite and a summary;
 * exits non-zero if any suite found a failure, or if a negative control did not see its bug.
 *
 *   npm run test:stress                 every suite
 *   npm run test:stress -- kill fuzz    only the suites whose key starts with one of the words
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { auditTamper } from './audit-suite.js';
import { crashAtEveryStep, powerLoss } from './crash-suite.js';
import { httpFuzz, parserFuzz } from './fuzz-suite.js';
import { hubKills } from './kill-suite.js';
import { claimRaceInstances, claimRaces, copyUnlinkClaims, leaseBoundaryRaces, parkedPolls, ttlBoundaryRaces } from './race-suite.js';
import { describeViolations, newResult, type SuiteResult } from './report.js';

interface Suite {
  key: string;
  /** What the suite must find: nothing (a real suite), a kind of violation (a negative control), or anything (informational). */
  expect: 'clean' | { control: string } | 'informational';
  run(dir: string): Promise<SuiteResult>;
}

const SUITES: Suite[] = [
  { key: 'crash-steps', expect: 'clean', run: (dir) => crashAtEveryStep({ scratch: dir, rounds: 3 }) },
  { key: 'power-loss', expect: 'clean', run: (dir) => powerLoss({ scratch: dir, workloads: 6, stride: 1, seed: 2026 }) },
  { key: 'power-loss-exclusive', expect: 'clean', run: (dir) => powerLoss({ scratch: dir, workloads: 6, stride: 1, seed: 2027, exclusive: true }) },
  { key: 'power-loss-control', expect: { control: 'lost-ack' }, run: (dir) => powerLoss({ scratch: dir, workloads: 2, stride: 10, disableDirSync: true }) },
  { key: 'power-loss-strict', expect: 'informational', run: (dir) => powerLoss({ scratch: dir, workloads: 2, stride: 2, seed: 11, strictRenames: true }) },
  {
    key: 'kill',
    expect: 'clean',
    run: (dir) =>
      hubKills({
        dir,
        kills: 200,
        clients: 8,
        seed: 2026,
        onRound: (round, r) => {
          if ((round + 1) % 20 === 0) process.stderr.write(`  kill -9 #${round + 1}: ${r.operations} operations, ${r.violations.length} violations\n`);
        },
      }),
  },
  { key: 'claim-races', expect: 'clean', run: (dir) => claimRaces({ dir, rounds: 50, handoffs: 8, httpAcceptors: 3 }) },
  { key: 'claim-instances', expect: 'clean', run: (dir) => claimRaceInstances({ dir, rounds: 50 }) },
  { key: 'claim-control', expect: { control: 'two-winners' }, run: (dir) => claimRaceInstances({ dir, rounds: 5, fs: copyUnlinkClaims() }) },
  { key: 'lease-boundary', expect: 'clean', run: (dir) => leaseBoundaryRaces({ dir, rounds: 2000 }) },
  { key: 'ttl-boundary', expect: 'clean', run: (dir) => ttlBoundaryRaces({ dir, rounds: 2000 }) },
  { key: 'parked-polls', expect: 'clean', run: (dir) => parkedPolls({ dir, polls: 1000, rounds: 5 }) },
  { key: 'fuzz-http', expect: 'clean', run: (dir) => httpFuzz({ dir, runs: 10_000, seed: 2026 }) },
  { key: 'fuzz-parser', expect: 'clean', run: () => parserFuzz({ runs: 5_000, seed: 2026 }) },
  { key: 'audit', expect: 'clean', run: (dir) => auditTamper({ dir, lines: 40, cli: 'all' }) },
];

interface Row {
  suite: Suite;
  result: SuiteResult;
  seconds: number;
  failures: number;
  verdict: string;
}

function judge(suite: Suite, result: SuiteResult): { failures: number; verdict: string } {
  if (suite.expect === 'informational') return { failures: 0, verdict: result.violations.length === 0 ? 'nothing found' : `${result.violations.length} found (not counted)` };
  if (suite.expect === 'clean') return { failures: result.violations.length, verdict: result.violations.length === 0 ? 'ok' : 'FAILED' };
  const seen = result.violations.some((v) => v.kind === (suite.expect as { control: string }).control);
  return { failures: seen ? 0 : 1, verdict: seen ? `ok (control saw ${suite.expect.control})` : `FAILED (control blind)` };
}

function table(rows: Row[]): string {
  const head = ['suite', 'operations', 'crash points', 'kills -9', 'races', 'fuzz cases', 'tampered', 'failures', 'seconds', 'verdict'];
  const body = rows.map((r) => [r.suite.key, r.result.operations, r.result.crashes, r.result.kills, r.result.races, r.result.fuzzCases, r.result.tampered, r.failures, r.seconds.toFixed(0), r.verdict].map(String));
  const sum = (f: (r: Row) => number) => rows.reduce((n, r) => n + f(r), 0).toFixed(0);
  body.push(['TOTAL', sum((r) => r.result.operations), sum((r) => r.result.crashes), sum((r) => r.result.kills), sum((r) => r.result.races), sum((r) => r.result.fuzzCases), sum((r) => r.result.tampered), sum((r) => r.failures), sum((r) => r.seconds), '']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.slice(0, -1).map(line), widths.map((w) => '-'.repeat(w)).join('  '), line(body.at(-1) as string[])].join('\n');
}

async function main(): Promise<number> {
  const only = process.argv.slice(2);
  const chosen = SUITES.filter((s) => only.length === 0 || only.some((w) => s.key.startsWith(w)));
  const rows: Row[] = [];
  for (const suite of chosen) {
    const dir = mkdtempSync(path.join(tmpdir(), `handoff-stress-${suite.key}-`));
    process.stderr.write(`${suite.key}: running\n`);
    const started = performance.now();
    let result: SuiteResult;
    try {
      result = await suite.run(dir);
    } catch (err) {
      result = newResult(suite.key);
      result.violations.push({ kind: 'suite-crashed', detail: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const seconds = (performance.now() - started) / 1000;
    const { failures, verdict } = judge(suite, result);
    rows.push({ suite, result, seconds, failures, verdict });
    process.stderr.write(`${suite.key}: ${verdict} in ${seconds.toFixed(0)} s\n`);
  }

  process.stdout.write(`\n${table(rows)}\n\n`);
  for (const r of rows) {
    for (const note of r.result.notes ?? []) process.stdout.write(`${r.suite.key}: ${note}\n`);
    if (r.result.violations.length > 0) process.stdout.write(`${r.suite.key} (${r.verdict}):\n${describeViolations(r.result.violations).replace(/^/gm, '  ')}\n`);
  }
  const failures = rows.reduce((n, r) => n + r.failures, 0);
  process.stdout.write(`\nfailures found: ${failures}\n`);
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main();
