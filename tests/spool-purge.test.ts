/**
 * Retention: `purge` deletes finished handoffs that ended (and expired) before a moment, records
 * every deletion in the audit log first, and keeps everything else.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { HandoffError } from '../protocol/index.js';
import { bucketOf, openSpool, verifyAudit, type HandoffState, type Spool } from '../spool/index.js';
import { runCli } from './helpers/cli.js';
import { readyChild } from './helpers/ready-child.js';
import { startTestHub, writeTestConfig } from './helpers/hub.js';
import { makePayload, TestFs } from './helpers/spool-fixtures.js';
import { auditEvents, placesOf, treeSnapshot } from './helpers/spool-inspect.js';
import { tmpDir } from './helpers/tmp.js';

const DAY = 86_400_000;
const NOW = Date.now();
const OLD = NOW - 40 * DAY;
const CUT = NOW - 30 * DAY;

interface Harness {
  root: string;
  spool: Spool;
  fs: TestFs;
  clock: { now: number };
}

async function harness(t: TestContext, exclusive = false): Promise<Harness> {
  const root = path.join(await tmpDir(t), 'spool');
  const clock = { now: OLD };
  const fs = new TestFs();
  const spool = await openSpool({ root, clock: () => clock.now, fs: fs.ops, recoveryGraceMs: 0, foreignGraceMs: 0, exclusive });
  t.after(() => spool.close());
  return { root, spool, fs, clock };
}

/** Takes a handoff initiated at `atMs` to a final state, and dates its final file `fileAgeMs` back. */
async function finished(h: Harness, how: 'complete' | 'reject', atMs: number, options: { ttlMs?: number; fileAtMs?: number } = {}): Promise<string> {
  h.clock.now = atMs;
  const p = makePayload({ nowMs: atMs, ttlMs: options.ttlMs });
  await h.spool.put(p.text);
  const claim = await h.spool.claim(p.id, 'alice');
  if (how === 'complete') await h.spool.complete(p.id, claim.token, { outcome: 'connected' });
  else await h.spool.reject(p.id, { reason: 'no_answer', by: 'alice', token: claim.token });
  const [place] = placesOf(h.root, p.id);
  const at = (options.fileAtMs ?? atMs) / 1000;
  utimesSync(path.join(h.root, place as string), at, at);
  h.clock.now = NOW;
  return p.id;
}


describe('spool: purge', () => {
  test('deletes what ended and expired before the cut, records each deletion, keeps the rest', async (t) => {
    const h = await harness(t);
    const oldDone = await finished(h, 'complete', OLD);
    const oldRejected = await finished(h, 'reject', OLD);
    const recentDone = await finished(h, 'complete', NOW - DAY);
    const sizes = [oldDone, oldRejected].map((id) => readFileSync(path.join(h.root, placesOf(h.root, id)[0] as string)).length);

    const result = await h.spool.purge({ beforeMs: CUT });
    assert.deepEqual(result, { archived: 1, rejected: 1, dropped: 0, bytes: sizes[0]! + sizes[1]!, keptUnexpired: 0, keptUnreadable: 0 });
    assert.deepEqual(placesOf(h.root, oldDone), []);
    assert.deepEqual(placesOf(h.root, oldRejected), []);
    assert.equal((await h.spool.get(oldDone)), undefined);
    assert.equal((await h.spool.get(recentDone))?.state, 'archived');

    const purged = auditEvents(h.root).filter((e) => e.event === 'purge');
    assert.deepEqual(
      purged.map((e) => [e.id, e.state]).sort(),
      [[oldDone, 'archived'], [oldRejected, 'rejected']].sort(),
    );
    assert.equal((await verifyAudit(path.join(h.root, 'events'))).ok, true);
    assert.deepEqual(await h.spool.purge({ beforeMs: CUT }), { archived: 0, rejected: 0, dropped: 0, bytes: 0, keptUnexpired: 0, keptUnreadable: 0 });
  });

  test('the audit line is durable before the unlink, and the bucket is fsynced after it', async (t) => {
    const h = await harness(t);
    const id = await finished(h, 'complete', OLD);
    const file = path.join(h.root, placesOf(h.root, id)[0] as string);
    h.fs.reset();
    await h.spool.purge({ beforeMs: CUT });
    const ops = h.fs.mutatingCalls().map((c) => `${c.op} ${path.relative(h.root, String(c.args[0]))}`);
    const unlink = ops.indexOf(`unlink ${path.relative(h.root, file)}`);
    assert.ok(unlink > 0, ops.join('\n'));
    assert.ok(ops.slice(0, unlink).some((op) => op.startsWith('fsync')), `audit fsync before the unlink:\n${ops.join('\n')}`);
    assert.ok(ops.slice(unlink).includes(`fsyncDir ${path.relative(h.root, path.dirname(file))}`), ops.join('\n'));
  });

  test('a failed unlink leaves the file and its audit line; the next purge deletes it', async (t) => {
    const h = await harness(t);
    const id = await finished(h, 'complete', OLD);
    h.fs.failWhen = (c) => c.op === 'unlink' && String(c.args[0]).endsWith(`${id}.json`);
    await assert.rejects(h.spool.purge({ beforeMs: CUT }), (err: unknown) => err instanceof HandoffError && err.code === 'IO');
    assert.equal(placesOf(h.root, id).length, 1);
    assert.equal(auditEvents(h.root).filter((e) => e.event === 'purge').length, 1);
    assert.equal((await h.spool.purge({ beforeMs: CUT })).archived, 1);
    assert.deepEqual(placesOf(h.root, id), []);
    assert.equal((await verifyAudit(path.join(h.root, 'events'))).ok, true);
  });

  test('keeps an old file whose payload has not expired before the cut: its id could be put again', async (t) => {
    const h = await harness(t);
    const id = await finished(h, 'complete', OLD, { ttlMs: 20 * DAY });
    const result = await h.spool.purge({ beforeMs: CUT });
    assert.equal(result.archived, 0);
    assert.equal(result.keptUnexpired, 1);
    assert.equal(placesOf(h.root, id).length, 1);
  });

  test('a purged payload submitted again is only ever rejected as expired', async (t) => {
    const h = await harness(t, true);
    h.clock.now = OLD;
    const p = makePayload({ nowMs: OLD });
    await h.spool.put(p.text);
    const claim = await h.spool.claim(p.id, 'alice');
    await h.spool.complete(p.id, claim.token, { outcome: 'connected' });
    const at = OLD / 1000;
    utimesSync(path.join(h.root, placesOf(h.root, p.id)[0] as string), at, at);
    h.clock.now = NOW;
    assert.equal((await h.spool.purge({ beforeMs: CUT })).archived, 1);
    await h.spool.put(p.text);
    await assert.rejects(h.spool.claim(p.id, 'alice'), (err: unknown) => err instanceof HandoffError && err.code === 'EXPIRED');
    assert.equal((await h.spool.get(p.id))?.state, 'rejected');
  });

  test('a file moved but not yet rewritten (it keeps its old mtime) is left alone', async (t) => {
    const h = await harness(t);
    h.clock.now = OLD;
    const p = makePayload({ nowMs: OLD });
    await h.spool.put(p.text);
    await h.spool.claim(p.id, 'alice');
    // As another process's reject leaves it between its rename and its rewrite: the claimed
    // envelope under rejected/, with the mtime it had in claimed/.
    const claimed = path.join(h.root, placesOf(h.root, p.id)[0] as string);
    const moved = path.join(h.root, 'rejected', bucketOf(p.id), `${p.id}.json`);
    mkdirSync(path.dirname(moved), { recursive: true });
    renameSync(claimed, moved);
    utimesSync(moved, OLD / 1000, OLD / 1000);
    h.clock.now = NOW;
    const result = await h.spool.purge({ beforeMs: CUT });
    assert.equal(result.rejected, 0);
    assert.equal(placesOf(h.root, p.id).length, 1);
  });

  test('an aborted purge stops before the next bucket and deletes nothing more', async (t) => {
    const h = await harness(t);
    const id = await finished(h, 'complete', OLD);
    const result = await h.spool.purge({ beforeMs: CUT, signal: AbortSignal.abort() });
    assert.equal(result.archived, 0);
    assert.equal(placesOf(h.root, id).length, 1);
  });

  test('a dry run counts and changes nothing', async (t) => {
    const h = await harness(t);
    await finished(h, 'complete', OLD);
    const before = treeSnapshot(h.root);
    const lines = auditEvents(h.root).length;
    const result = await h.spool.purge({ beforeMs: CUT, dryRun: true });
    assert.equal(result.archived, 1);
    assert.deepEqual(treeSnapshot(h.root), before);
    assert.equal(auditEvents(h.root).length, lines);
  });

  test('dropped files go by the later of mtime and ctime; an unreadable file in a bucket is kept', async (t) => {
    const h = await harness(t);
    const invalid = path.join(h.root, 'rejected', '_invalid');
    mkdirSync(invalid, { recursive: true });
    writeFileSync(path.join(invalid, 'old.json'), 'not json');
    writeFileSync(path.join(invalid, 'new.json'), 'not json');
    // As a file dropped just now by rename: written long ago (mtime), moved today (ctime).
    utimesSync(path.join(invalid, 'old.json'), OLD / 1000, OLD / 1000);
    const bucket = path.join(h.root, 'archive', 'ab');
    mkdirSync(bucket, { recursive: true });
    writeFileSync(path.join(bucket, 'garbled.json'), '{"relay":');
    utimesSync(path.join(bucket, 'garbled.json'), OLD / 1000, OLD / 1000);

    const early = await h.spool.purge({ beforeMs: CUT });
    assert.equal(early.dropped, 0);
    assert.equal(early.keptUnreadable, 1);
    assert.deepEqual(readdirSync(invalid).sort(), ['new.json', 'old.json']);

    // A cut after old.json's ctime takes it; new.json is dated after that cut.
    const cut = Date.now() + 1000;
    utimesSync(path.join(invalid, 'new.json'), (cut + DAY) / 1000, (cut + DAY) / 1000);
    const result = await h.spool.purge({ beforeMs: cut });
    assert.equal(result.dropped, 1);
    assert.equal(result.keptUnreadable, 1);
    assert.deepEqual(readdirSync(invalid), ['new.json']);
    assert.deepEqual(readdirSync(bucket), ['garbled.json']);
    const line = auditEvents(h.root).find((e) => e.event === 'purge');
    assert.equal(line?.file, path.join('rejected', '_invalid', 'old.json'));
  });

  test('refuses a bad cut, and a second purge while one holds the lock', async (t) => {
    const h = await harness(t);
    await assert.rejects(h.spool.purge({ beforeMs: Number.NaN }), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
    await readyChild(t, 'lock-holder.ts', [path.join(h.root, 'events', '.purge.lock')], 'locked');
    await assert.rejects(h.spool.purge({ beforeMs: CUT }), (err: unknown) => err instanceof HandoffError && err.code === 'UNAVAILABLE');
    // A dry run takes no lock.
    assert.equal((await h.spool.purge({ beforeMs: CUT, dryRun: true })).archived, 0);
  });
});

/** A spool at `root` (closed again) holding one handoff archived 40 days ago and one yesterday. */
async function oldAndRecent(root: string): Promise<{ old: string; recent: string }> {
  const clock = { now: OLD };
  const spool = await openSpool({ root, clock: () => clock.now });
  try {
    const h: Harness = { root, spool, fs: new TestFs(), clock };
    return { old: await finished(h, 'complete', OLD), recent: await finished(h, 'complete', NOW - DAY) };
  } finally {
    await spool.close();
  }
}

describe('retention: the hub and the CLI', () => {
  test('a hub with a retention purges at start; the purge is in the audit log', async (t) => {
    const dir = await tmpDir(t, 'handoff-hub-');
    const { old, recent } = await oldAndRecent(path.join(dir, 'spool'));
    await writeTestConfig(path.join(dir, 'hub.json'));
    const hub = await startTestHub(t, { retentionMs: 30 * DAY }, dir);
    for (let i = 0; i < 200 && placesOf(hub.spoolDir, old).length > 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.deepEqual(placesOf(hub.spoolDir, old), []);
    assert.equal(placesOf(hub.spoolDir, recent).length, 1);
    assert.ok(auditEvents(hub.spoolDir).some((e) => e.event === 'purge' && e.id === old), "auditEvents(hub.spoolDir).some((e) => e.event === 'purge' && e.id === old)");
    assert.equal((await hub.hub.app.janitor?.purgeNow())?.archived, 0);
    // Closed here, not only by its hook: the directory's removal hook was added first and runs first.
    await hub.hub.close();
  });

  test('a hub without a retention keeps everything', async (t) => {
    const dir = await tmpDir(t, 'handoff-hub-');
    const { old } = await oldAndRecent(path.join(dir, 'spool'));
    await writeTestConfig(path.join(dir, 'hub.json'));
    const hub = await startTestHub(t, {}, dir);
    await assert.rejects(hub.hub.app.janitor!.purgeNow(), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
    assert.equal(placesOf(hub.spoolDir, old).length, 1);
    await hub.hub.close();
  });

  test('`handoff spool purge`: a dry run, then the purge; the retention is required and whole days', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    const { old, recent } = await oldAndRecent(root);
    const env = { HANDOFF_RETENTION_DAYS: '' };

    const missing = await runCli(['spool', 'purge', '--spool', root], { env });
    assert.equal(missing.code, 3, missing.stderr);
    assert.match(missing.stderr, /retentionDays is required: set --retention-days/);
    const zero = await runCli(['spool', 'purge', '--spool', root, '--retention-days', '0'], { env });
    assert.equal(zero.code, 3, zero.stderr);
    assert.match(zero.stderr, /at least 1 day/);

    const dry = await runCli(['spool', 'purge', '--spool', root, '--retention-days', '30', '--dry-run', '--json'], { env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(JSON.parse(dry.stdout), { archived: 1, rejected: 0, dropped: 0, bytes: JSON.parse(dry.stdout).bytes, keptUnexpired: 0, keptUnreadable: 0, dryRun: true });
    assert.equal(placesOf(root, old).length, 1);

    const done = await runCli(['spool', 'purge', '--spool', root, '--retention-days', '30'], { env });
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /^deleted 1 archived, 0 rejected, 0 dropped \(\d+ bytes\)$/m);
    assert.deepEqual(placesOf(root, old), []);
    assert.equal(placesOf(root, recent).length, 1);
    assert.equal((await verifyAudit(path.join(root, 'events'))).ok, true);
  });

  test('`handoff spool purge` on the spool of a running hub is refused and deletes nothing; a dry run may look', async (t) => {
    const dir = await tmpDir(t, 'handoff-hub-');
    const root = path.join(dir, 'spool');
    const { old } = await oldAndRecent(root);
    await readyChild(t, 'spool-owner.ts', [root], 'open');
    const r = await runCli(['spool', 'purge', '--spool', root, '--retention-days', '30']);
    assert.equal(r.code, 34, r.stderr);
    assert.match(r.stderr, /owned by a running hub/);
    assert.equal(placesOf(root, old).length, 1);

    const dry = await runCli(['spool', 'purge', '--spool', root, '--retention-days', '30', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^would delete 1 archived, 0 rejected, 0 dropped/m);
    assert.equal(placesOf(root, old).length, 1);
  });

  test('`handoff spool purge --dry-run` changes nothing, not even what recovery would', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    await oldAndRecent(root);
    // A stale tmp file, which any open's recovery deletes.
    const stale = path.join(root, 'tmp', '12345.1.1');
    writeFileSync(stale, 'half a payload');
    utimesSync(stale, OLD / 1000, OLD / 1000);
    const before = treeSnapshot(root);
    const dry = await runCli(['spool', 'purge', '--spool', root, '--retention-days', '30', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(JSON.parse(dry.stdout).archived, 1);
    assert.deepEqual(treeSnapshot(root), before);

    const missing = await runCli(['spool', 'purge', '--spool', path.join(root, 'nope'), '--retention-days', '30', '--dry-run']);
    assert.equal(missing.code, 3, missing.stderr);
    assert.match(missing.stderr, /no spool directory at/);
    assert.equal(existsSync(path.join(root, 'nope')), false);
  });
});
