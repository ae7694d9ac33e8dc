/**
 * Tampering with the audit log: every line is edited, deleted, and swapped with the next one, in a
 * log that spans two day files; `handoff audit verify` (the real CLI) must exit with TAMPERED and
 * name the first bad line. The library's `verifyAudit` is checked for every case; the CLI for
 * every case (long profile) or a sample of each kind (quick profile).
 *
 * The chain cannot see an edit or removal of the very last line (nothing after it disagrees);
 * the suite checks the documented remedy instead: the `lastHash` it prints changes, so an operator
 * who keeps a copy of it elsewhere sees the change.
 */
import { cpSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { openSpool, verifyAudit, type AuditVerifyResult } from '../../spool/index.js';
import { runCli } from '../helpers/cli.js';
import { makePayload } from '../helpers/spool-fixtures.js';
import { inParallel } from './crash-suite.js';
import { newResult, violate, type SuiteResult } from './report.js';

export interface AuditTamperOptions {
  dir: string;
  /** Transitions and reads to record (each writes one line). */
  lines: number;
  /** Run the CLI for every case, or for the first case of each kind only. */
  cli: 'all' | 'sample';
}

interface Mutation {
  kind: 'edit' | 'delete' | 'swap';
  /** Index of the line changed, across all files in chain order. */
  at: number;
}

interface LogFile {
  name: string;
  lines: string[];
}

/** Writes a log of about `count` lines over two days through a real spool. */
async function writeLog(root: string, count: number): Promise<LogFile[]> {
  const day1 = Date.UTC(2026, 10, 22, 23, 59, 0);
  const clock = { now: day1 };
  const spool = await openSpool({ root, clock: () => clock.now });
  for (let i = 0; i < count; i++) {
    if (i === Math.floor(count / 2)) clock.now = day1 + 120_000;
    const id = `audit-${i}`;
    await spool.put(makePayload({ id, nowMs: clock.now }).text);
    if (i % 3 === 1) await spool.auditRead(id, 'alice');
    if (i % 3 === 2) {
      const c = await spool.claim(id, 'alice');
      await spool.complete(id, c.token, { outcome: 'connected' });
    }
  }
  await spool.close();
  const events = path.join(root, 'events');
  return readdirSync(events)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()
    .map((name) => ({ name, lines: readFileSync(path.join(events, name), 'utf8').split('\n').slice(0, -1) }));
}

/** The log with one mutation applied, and where the first bad line must be reported. */
function mutate(files: LogFile[], m: Mutation): { files: LogFile[]; expected: { file: string; line: number; problem: RegExp } } {
  const flat = files.flatMap((f) => f.lines.map((text) => ({ file: f.name, text })));
  const changed = flat.map((x) => ({ ...x }));
  let problem: RegExp;
  if (m.kind === 'edit') {
    // A change a forger would make: another actor, another time; the line stays valid JSON.
    const line = changed[m.at] as { file: string; text: string };
    line.text = line.text.replace(/"at":"(\d{4}-\d{2}-\d{2}T[\d:]+\.)(\d)/, (_, head: string, d: string) => `"at":"${head}${(Number(d) + 1) % 10}`);
    problem = /edited/;
  } else if (m.kind === 'delete') {
    changed.splice(m.at, 1);
    problem = /missing/;
  } else {
    const a = changed[m.at] as { file: string; text: string };
    const b = changed[m.at + 1] as { file: string; text: string };
    [a.text, b.text] = [b.text, a.text];
    problem = /out of order/;
  }
  const byFile = files.map((f) => ({ name: f.name, lines: changed.filter((x) => x.file === f.name).map((x) => x.text) }));
  // The first bad line is the one now at the mutated position.
  const target = changed[m.at] as { file: string };
  const line = changed.slice(0, m.at + 1).filter((x) => x.file === target.file).length;
  return { files: byFile, expected: { file: target.file, line, problem } };
}

function writeFiles(root: string, files: LogFile[]): void {
  const events = path.join(root, 'events');
  for (const f of files) writeFileSync(path.join(events, f.name), f.lines.length > 0 ? `${f.lines.join('\n')}\n` : '');
}

/** Edits, deletes and swaps every line and checks that `handoff audit verify` names it. */
export async function auditTamper(options: AuditTamperOptions): Promise<SuiteResult> {
  const result = newResult('audit log tampering');
  const pristine = path.join(options.dir, 'pristine');
  const files = await writeLog(pristine, options.lines);
  const total = files.reduce((n, f) => n + f.lines.length, 0);
  const clean = await verifyAudit(path.join(pristine, 'events'));
  if (!clean.ok) violate(result, 'audit-broken', `the untouched log does not verify: ${JSON.stringify(clean.firstBad)}`);

  const mutations: Mutation[] = [];
  for (let at = 0; at < total; at++) {
    // The last line has no successor to disagree with it: see the header.
    if (at < total - 1) mutations.push({ kind: 'edit', at }, { kind: 'delete', at }, { kind: 'swap', at });
  }
  const sampled = new Set<string>();
  await inParallel(mutations, 4, async (m) => {
    const { files: changed, expected } = mutate(files, m);
    const root = path.join(options.dir, `${m.kind}-${m.at}`);
    cpSync(pristine, root, { recursive: true });
    writeFiles(root, changed);
    const label = `${m.kind} of line ${m.at + 1}/${total}`;
    result.operations++;
    const r = await verifyAudit(path.join(root, 'events'));
    checkVerdict(r, expected, result, `verifyAudit: ${label}`);
    const first = !sampled.has(m.kind);
    sampled.add(m.kind);
    if (options.cli === 'all' || first) {
      const cli = await runCli(['audit', 'verify', '--spool', root, '--json']);
      result.operations++;
      if (cli.code !== 28) violate(result, 'cli-exit', `${label}: handoff audit verify exited ${cli.code}: ${cli.stderr.slice(0, 200)}`);
      let out: AuditVerifyResult | undefined;
      try {
        out = JSON.parse(cli.stdout) as AuditVerifyResult;
      } catch {
        violate(result, 'cli-output', `${label}: not one JSON document: ${cli.stdout.slice(0, 200)}`);
      }
      if (out) checkVerdict(out, expected, result, `handoff audit verify: ${label}`);
    }
    result.tampered++;
    rmSync(root, { recursive: true, force: true });
  });

  // The last line: undetectable by the chain alone, but the reported last hash changes.
  for (const kind of ['edit', 'delete'] as const) {
    const root = path.join(options.dir, `${kind}-last`);
    cpSync(pristine, root, { recursive: true });
    const lastFile = files[files.length - 1] as LogFile;
    const lines = [...lastFile.lines];
    if (kind === 'delete') lines.pop();
    else lines[lines.length - 1] = (lines.at(-1) as string).replace('"event":"', '"event":"x');
    writeFiles(root, [...files.slice(0, -1), { name: lastFile.name, lines }]);
    const r = await verifyAudit(path.join(root, 'events'));
    if (r.lastHash === clean.lastHash) violate(result, 'last-line', `${kind} of the last line leaves lastHash unchanged`);
    result.operations++;
  }
  result.notes = [`${total} lines over ${files.length} files, ${mutations.length} tampered copies`];
  return result;
}

function checkVerdict(r: AuditVerifyResult, expected: { file: string; line: number; problem: RegExp }, result: SuiteResult, label: string): void {
  if (r.ok) {
    violate(result, 'tamper-undetected', `${label}: reported intact`);
    return;
  }
  const bad = r.firstBad;
  if (bad?.file !== expected.file || bad.line !== expected.line) {
    violate(result, 'wrong-line', `${label}: named ${bad?.file}:${bad?.line}, expected ${expected.file}:${expected.line} (${bad?.problem})`);
  } else if (!expected.problem.test(bad.problem)) {
    violate(result, 'wrong-problem', `${label}: ${bad.problem}`);
  }
}
