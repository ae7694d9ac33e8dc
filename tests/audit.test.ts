import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { HandoffError } from '../protocol/index.js';
import { GENESIS_HASH, openSpool, verifyAudit, type Spool, type SpoolOptions } from '../spool/index.js';
import { makePayload, TestFs } from './helpers/spool-fixtures.js';
import { runCli } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);

async function spoolAt(t: TestContext, extra: Partial<SpoolOptions> = {}): Promise<{ spool: Spool; root: string; events: string; clock: { now: number } }> {
  const root = path.join(await tmpDir(t), 'spool');
  const clock = { now: T0 };
  const spool = await openSpool({ root, clock: () => clock.now, ...extra });
  t.after(() => spool.close());
  return { spool, root, events: path.join(root, 'events'), clock };
}

function logFiles(events: string): string[] {
  return readdirSync(events)
    .filter((n) => n.endsWith('.jsonl'))
    .sort();
}

function linesOf(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').slice(0, -1);
}

/** Five lines: put, read, claim, complete (one handoff) and a put of a second one. */
async function fiveLines(spool: Spool): Promise<void> {
  const p = makePayload({ id: 'audit-1', nowMs: T0 });
  await spool.put(p.text);
  await spool.auditRead('audit-1', 'alice');
  const c = await spool.claim('audit-1', 'alice');
  await spool.complete('audit-1', c.token, { outcome: 'connected' });
  await spool.put(makePayload({ id: 'audit-2', nowMs: T0 }).text);
}

/** The hash of line `index` (0-based) of `file`, as verify computes it. */
function linesHash(file: string, index: number): string {
  return createHash('sha256').update(linesOf(file)[index] as string, 'utf8').digest('hex');
}

function rewrite(file: string, edit: (lines: string[]) => string[]): void {
  writeFileSync(file, `${edit(linesOf(file)).join('\n')}\n`);
}

test('every transition and every read appends one hash-chained line', async (t) => {
  const { spool, events } = await spoolAt(t);
  await fiveLines(spool);
  const [file] = logFiles(events);
  assert.ok(file, 'file');
  const lines = linesOf(path.join(events, file));
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    parsed.map((l) => [l.seq, l.event, l.id, l.state]),
    [
      [1, 'put', 'audit-1', 'pending'],
      [2, 'read', 'audit-1', 'pending'],
      [3, 'claim', 'audit-1', 'claimed'],
      [4, 'complete', 'audit-1', 'archived'],
      [5, 'put', 'audit-2', 'pending'],
    ],
  );
  assert.equal(parsed[0]?.prev, GENESIS_HASH);
  for (let i = 1; i < lines.length; i++) {
    assert.equal(parsed[i]?.prev, createHash('sha256').update(lines[i - 1] as string).digest('hex'));
  }
  assert.equal(parsed[1]?.by, 'alice');
  assert.deepEqual(Object.keys(parsed[3] ?? {}), ['seq', 'at', 'event', 'id', 'from_agent', 'to_agent', 'state', 'reason', 'by', 'prev']);
  const result = await verifyAudit(events);
  assert.deepEqual(result, { ok: true, lines: 5, lastHash: createHash('sha256').update(lines[4] as string).digest('hex') });
});

test('the log never holds transcript text, the claim token or a phone number', async (t) => {
  const { spool, events } = await spoolAt(t);
  const p = makePayload({ id: 'private-1', nowMs: T0, extra: { callback_number: '+14155550100' } });
  await spool.put(p.text);
  const c = await spool.claim('private-1', 'alice');
  await spool.renew('private-1', c.token);
  await spool.complete('private-1', c.token, { outcome: 'connected', notes: 'called back', finalTranscript: [{ role: 'user', text: 'secret words' }] });
  const log = logFiles(events)
    .map((f) => readFileSync(path.join(events, f), 'utf8'))
    .join('');
  assert.ok(log.includes('"event":"complete"'), 'log.includes(\'"event":"complete"\')');
  for (const forbidden of [c.token, '+14155550100', 'Patrik', 'secret words', 'called back', 'hmac']) {
    assert.equal(log.includes(forbidden), false, `log contains ${forbidden}`);
  }
});

test('verify names an edited line', async (t) => {
  const { spool, events } = await spoolAt(t);
  await fiveLines(spool);
  const file = path.join(events, logFiles(events)[0] as string);
  rewrite(file, (lines) => lines.map((l, i) => (i === 1 ? l.replace('"by":"alice"', '"by":"mallory"') : l)));
  const result = await verifyAudit(events);
  assert.equal(result.ok, false);
  assert.equal(result.firstBad?.line, 2);
  assert.equal(result.firstBad?.file, path.basename(file));
  assert.match(result.firstBad?.problem ?? '', /edited/);
});

test('verify names a line whose prev was edited', async (t) => {
  const { spool, events } = await spoolAt(t);
  await fiveLines(spool);
  const file = path.join(events, logFiles(events)[0] as string);
  rewrite(file, (lines) => lines.map((l, i) => (i === 2 ? l.replace(/"prev":"[0-9a-f]{64}"/, `"prev":"${'1'.repeat(64)}"`) : l)));
  const result = await verifyAudit(events);
  assert.equal(result.firstBad?.line, 3);
  assert.match(result.firstBad?.problem ?? '', /edited/);
});

test('verify names the place of a deleted line', async (t) => {
  const { spool, events } = await spoolAt(t);
  await fiveLines(spool);
  const file = path.join(events, logFiles(events)[0] as string);
  rewrite(file, (lines) => lines.filter((_, i) => i !== 2));
  const result = await verifyAudit(events);
  assert.equal(result.ok, false);
  assert.equal(result.firstBad?.line, 3);
  assert.match(result.firstBad?.problem ?? '', /missing/);
  assert.equal(result.lines, 4);
});

test('verify names two swapped lines', async (t) => {
  const { spool, events } = await spoolAt(t);
  await fiveLines(spool);
  const file = path.join(events, logFiles(events)[0] as string);
  rewrite(file, (lines) => [lines[0], lines[2], lines[1], lines[3], lines[4]] as string[]);
  const result = await verifyAudit(events);
  assert.equal(result.ok, false);
  assert.equal(result.firstBad?.line, 2);
  assert.match(result.firstBad?.problem ?? '', /out of order/);
});

test('an anchor kept from an earlier verify shows lines cut off the end, which the chain alone cannot', async (t) => {
  const { spool, events } = await spoolAt(t);
  await fiveLines(spool);
  const anchor = (await verifyAudit(events)).lastHash;
  await spool.auditRead('audit-2', 'alice');
  const grown = await verifyAudit(events, { anchor });
  assert.equal(grown.ok, true);
  assert.equal(grown.anchorSeq, 5);
  assert.equal(grown.lines, 6);

  // The last three lines cut off: still a valid chain, but the anchor's line is gone.
  const file = path.join(events, logFiles(events)[0] as string);
  rewrite(file, (lines) => lines.slice(0, 3));
  assert.equal((await verifyAudit(events)).ok, true);
  const cut = await verifyAudit(events, { anchor });
  assert.equal(cut.ok, false);
  assert.equal(cut.anchorSeq, undefined);
  assert.deepEqual({ file: cut.firstBad?.file, line: cut.firstBad?.line }, { file: path.basename(file), line: 4 });
  assert.match(cut.firstBad?.problem ?? '', /anchor line [0-9a-f]{12}… is not in the log/);

  await assert.rejects(verifyAudit(events, { anchor: anchor.toUpperCase() }), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');

  const cli = (...extra: string[]) => runCli(['audit', 'verify', '--spool', path.dirname(events), ...extra]);
  const refused = await cli('--anchor', anchor);
  assert.equal(refused.code, 28, refused.stderr);
  assert.match(refused.stdout, /^BROKEN at .* line 4: the anchor line/m);
  const malformed = await cli('--anchor', 'abc');
  assert.equal(malformed.code, 3, malformed.stderr);
  const early = JSON.parse((await cli('--anchor', linesHash(file, 1), '--json')).stdout);
  assert.deepEqual({ ok: early.ok, anchorSeq: early.anchorSeq }, { ok: true, anchorSeq: 2 });
});

test("a new day's file continues the chain from the last line of the previous day", async (t) => {
  const { spool, events, clock } = await spoolAt(t);
  clock.now = Date.UTC(2026, 10, 22, 23, 59, 59, 500);
  await spool.put(makePayload({ id: 'night-1', nowMs: clock.now }).text);
  clock.now = Date.UTC(2026, 10, 23, 0, 0, 0, 500);
  await spool.put(makePayload({ id: 'night-2', nowMs: clock.now }).text);
  const files = logFiles(events);
  assert.deepEqual(files, ['2026-11-22.jsonl', '2026-11-23.jsonl']);
  const last = linesOf(path.join(events, files[0] as string)).at(-1) as string;
  const first = JSON.parse(linesOf(path.join(events, files[1] as string))[0] as string) as { prev: string; seq: number };
  assert.equal(first.prev, createHash('sha256').update(last).digest('hex'));
  assert.equal(first.seq, 2);
  assert.equal((await verifyAudit(events)).ok, true);
  // Deleting the whole first day breaks the chain at the first line of the second.
  writeFileSync(path.join(events, files[0] as string), '');
  const broken = await verifyAudit(events);
  assert.deepEqual(broken.firstBad && [broken.firstBad.file, broken.firstBad.line], ['2026-11-23.jsonl', 1]);
});

test('a half-written last line left by a crash is cut off before the next append', async (t) => {
  const { spool, events } = await spoolAt(t);
  await spool.put(makePayload({ id: 'torn-1', nowMs: T0 }).text);
  const file = path.join(events, logFiles(events)[0] as string);
  appendFileSync(file, '{"seq":2,"at":"2026-11-22T10:00:00.000Z","ev');
  const torn = await verifyAudit(events);
  assert.equal(torn.ok, false);
  assert.match(torn.firstBad?.problem ?? '', /incomplete/);
  await spool.put(makePayload({ id: 'torn-2', nowMs: T0 }).text);
  const result = await verifyAudit(events);
  assert.equal(result.ok, true, JSON.stringify(result.firstBad));
  assert.equal(result.lines, 2);
});

test('two spools appending to one log at once keep a single chain', async (t) => {
  const { spool, root, events } = await spoolAt(t);
  const other = await openSpool({ root, clock: () => T0 });
  t.after(() => other.close());
  await Promise.all(
    Array.from({ length: 30 }, (_, i) => (i % 2 ? other : spool).put(makePayload({ id: `pair-${i}`, nowMs: T0 }).text)),
  );
  const result = await verifyAudit(events);
  assert.equal(result.ok, true, JSON.stringify(result.firstBad));
  assert.equal(result.lines, 30);
});

test('appends of one tick share one write and one fsync', async (t) => {
  const { spool, root } = await spoolAt(t);
  const ids = Array.from({ length: 10 }, (_, i) => `batch-${i}`);
  for (const id of ids) await spool.put(makePayload({ id, nowMs: T0 }).text);
  const fs = new TestFs();
  const watched = await openSpool({ root, clock: () => T0, fs: fs.ops });
  t.after(() => watched.close());
  fs.reset();
  await Promise.all(ids.map((id) => watched.auditRead(id, 'alice')));
  const appends = fs.calls.filter((c) => c.op === 'openAppend').length;
  const fsyncs = fs.calls.filter((c) => c.op === 'fsync').length;
  assert.equal(appends, 1);
  assert.equal(fsyncs, 1);
  assert.equal((await verifyAudit(path.join(root, 'events'))).lines, 20);
});
