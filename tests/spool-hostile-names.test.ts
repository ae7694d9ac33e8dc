/**
 * Names in the spool that hold no handoff — a directory or FIFO a person made in claimed/, tmp/ or
 * handoff/, a file far too large to be a spool file — and free-text reasons: none of them may stop
 * the spool, none is read into memory, and none reaches the relay facts or the audit log.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { HandoffError } from '../protocol/index.js';
import { bucketOf, createRealFsOps, openSpool, type FsOps, type Spool, type SpoolOptions } from '../spool/index.js';
import { MAX_SPOOL_FILE_BYTES, MAX_SPOOL_PAYLOAD_BYTES } from '../spool/spool.js';
import { makePayload, TestFs, rejectsWith } from './helpers/spool-fixtures.js';
import { listTree } from './helpers/spool-inspect.js';
import { runCli } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

/** Long enough for a slow machine, short enough that a hang fails the test instead of the run. */
const HANG_TIMEOUT_MS = 15_000;
const GIB = 1024 * 1024 * 1024;
/** Far enough ahead that every lease and payload made by a test has run out. */
const LATER_MS = 60 * 60_000;

interface Harness {
  root: string;
  spool: Spool;
  fs: TestFs;
  reopen(extra?: Partial<SpoolOptions>): Promise<Spool>;
}

/**
 * A spool on the real clock, a second ahead: the foreign grace compares the clock with the real
 * mtimes of the files a test drops (with sub-millisecond parts that `Date.now()` lacks), and a
 * clock behind them would make a file just dropped look as if it were still being written.
 */
async function harness(t: TestContext, extra: Partial<SpoolOptions> = {}): Promise<Harness> {
  const root = path.join(await tmpDir(t), 'spool');
  const fs = new TestFs(extra.fs);
  const opened: Spool[] = [];
  const open = async (more: Partial<SpoolOptions> = {}) => {
    const s = await openSpool({ root, clock: () => Date.now() + 1000, recoveryGraceMs: 0, foreignGraceMs: 0, ...extra, fs: fs.ops, ...more });
    opened.push(s);
    return s;
  };
  t.after(async () => {
    for (const s of opened) await s.close();
  });
  const spool = await open();
  return { root, spool, fs, reopen: open };
}

/** A handoff put and claimed by alice, with the bytes of its claim file (to show a refusal left it). */
async function claimedHandoff(h: Harness): Promise<{ p: ReturnType<typeof makePayload>; token: string; claimFile: () => Buffer; before: Buffer }> {
  const p = makePayload();
  await h.spool.put(p.text);
  const { token } = await h.spool.claim(p.id, 'alice');
  const claimFile = () => readFileSync(path.join(h.root, 'claimed', `${p.id}.json`));
  return { p, token, claimFile, before: claimFile() };
}

/**
 * Makes FIFOs, and lets go of any reader stuck opening one (the defect under test) when the test
 * ends, so that a failing test cannot keep the test process from exiting. Call it before
 * `harness`: its hook must run before the temporary directory is removed (hooks run in the order
 * they were added).
 */
function fifoMaker(t: TestContext): (file: string) => void {
  const made: string[] = [];
  t.after(async () => {
    for (let round = 0; round < 20; round++) {
      for (const file of made) {
        try {
          // Succeeds only while a reader waits in open(2); closing lets it read end-of-file.
          closeSync(openSync(file, constants.O_WRONLY | constants.O_NONBLOCK));
        } catch {
          // No reader waiting (ENXIO), or gone.
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
  return (file) => {
    execFileSync('mkfifo', [file]);
    made.push(file);
  };
}

function isFifo(file: string): boolean {
  return statSync(file).isFIFO();
}

function auditText(root: string): string {
  return listTree(path.join(root, 'events'))
    .filter((f) => f.endsWith('.jsonl'))
    .map((f) => readFileSync(path.join(root, 'events', f), 'utf8'))
    .join('');
}

/** A pending and a claimed handoff, the spool closed. */
async function withTwoHandoffs(h: Harness): Promise<{ pendingId: string; claimedId: string; token: string }> {
  const pending = makePayload();
  const claimed = makePayload();
  await h.spool.put(pending.text);
  await h.spool.put(claimed.text);
  const { token } = await h.spool.claim(claimed.id, 'alice');
  await h.spool.close();
  return { pendingId: pending.id, claimedId: claimed.id, token };
}

describe('spool: names that are not regular files hold no handoff', () => {
  for (const kind of ['directory', 'FIFO'] as const) {
    test(`a ${kind} in claimed/, tmp/ and handoff/ blocks neither open nor get, list, listPending, sweep or claim, and is left alone`, { timeout: HANG_TIMEOUT_MS }, async (t) => {
      const mkfifo = fifoMaker(t);
      const h = await harness(t);
      const { pendingId, claimedId, token } = await withTwoHandoffs(h);
      const make = kind === 'directory' ? (file: string) => mkdirSync(file) : mkfifo;
      const isKind = (file: string): boolean => {
        const st = statSync(file, { throwIfNoEntry: false });
        return kind === 'directory' ? st?.isDirectory() === true : st?.isFIFO() === true;
      };
      const junk = [
        path.join(h.root, 'claimed', 'junk.json'),
        // No writer's name: an orphan that the tmp clean-up would delete, were it a file.
        path.join(h.root, 'tmp', 'junk'),
        path.join(h.root, 'handoff', 'junk.json'),
      ];
      for (const file of junk) make(file);

      const spool = await h.reopen({ fullRecovery: true });
      const report = await spool.recover();
      assert.ok(junk.every((file) => isKind(file)), `every ${kind} is left where it was`);
      assert.equal(report.skipped, 3, `each ${kind} is counted as left for a person`);
      assert.equal(report.invalid, 0, 'none is taken for an invalid handoff file');

      assert.equal((await spool.get(claimedId))?.state, 'claimed');
      assert.equal(await spool.get('junk'), undefined);
      assert.deepEqual((await spool.list('claimed')).map((r) => r.id), [claimedId]);
      assert.deepEqual((await spool.listPending('alice')).map((e) => e.id), [pendingId]);

      const swept = await spool.sweep(Date.now() + LATER_MS);
      assert.deepEqual(swept.leaseExpired, [claimedId], `the real claim expires; the ${kind} is no claim`);
      assert.deepEqual(swept.expired, [pendingId]);
      assert.ok(junk.every((file) => isKind(file)), 'every name is still there, as it was');

      // And the spool goes on working around them.
      const next = makePayload();
      await spool.put(next.text);
      const claim = await spool.claim(next.id, 'alice');
      assert.equal((await spool.complete(next.id, claim.token, { outcome: 'connected' })).state, 'archived');
      await rejectsWith(spool.complete(claimedId, token, { outcome: 'connected' }), 'FENCED');
    });
  }

  test("a FIFO made in claimed/ while a listener runs does not hang that listener's sweep or reads", { timeout: HANG_TIMEOUT_MS }, async (t) => {
    const mkfifo = fifoMaker(t);
    const h = await harness(t);
    const p = makePayload();
    await h.spool.put(p.text);
    // Made at the pending handoff's own claimed/ name: get, list and claim all look there.
    const fifo = path.join(h.root, 'claimed', `${p.id}.json`);
    mkfifo(fifo);
    const other = path.join(h.root, 'claimed', 'x.json');
    mkfifo(other);
    mkdirSync(path.join(h.root, 'claimed', 'y.json'));

    assert.deepEqual(await h.spool.sweep(Date.now() + 1000), { expired: [], leaseExpired: [] });
    assert.equal((await h.spool.get(p.id))?.state, 'pending', 'a FIFO at its claimed/ name is not a claim of it');
    assert.deepEqual((await h.spool.listPending('alice')).map((e) => e.id), [p.id]);
    assert.deepEqual(await h.spool.list('claimed'), []);
    // Claiming would replace the FIFO (rename): refused, and the FIFO stays.
    await rejectsWith(h.spool.claim(p.id, 'alice'), 'IO');
    assert.ok(isFifo(fifo), 'the FIFO is left where it was');
    assert.deepEqual((await h.spool.sweep(Date.now() + LATER_MS)).expired, [p.id]);
  });

  test('a directory in tmp/ is skipped by the clean-up, which still removes the orphaned tmp files', { timeout: HANG_TIMEOUT_MS }, async (t) => {
    const h = await harness(t);
    await h.spool.close();
    mkdirSync(path.join(h.root, 'tmp', 'sub'));
    mkdirSync(path.join(h.root, 'tmp', '1.0123456789ab.7')); // named like a dead writer's tmp file
    writeFileSync(path.join(h.root, 'tmp', 'leftover'), 'half a payload'); // no writer's name: garbage
    const spool = await h.reopen();
    const report = await spool.recover();
    assert.equal(report.skipped, 2);
    assert.equal(report.tmpRemoved, 0, 'the orphan went at open already');
    assert.deepEqual(listTree(path.join(h.root, 'tmp')), [], 'the orphaned tmp file is gone');
    assert.ok(statSync(path.join(h.root, 'tmp', 'sub')).isDirectory() && statSync(path.join(h.root, 'tmp', '1.0123456789ab.7')).isDirectory(), 'the directories are left alone');
  });
});

describe('spool: files too large to be a spool file', () => {
  test('a 5 GiB (sparse) file in handoff/ is set aside to rejected/_invalid/ without being read', { timeout: HANG_TIMEOUT_MS }, async (t) => {
    const h = await harness(t);
    const p = makePayload();
    await h.spool.put(p.text);
    await h.spool.close();
    const big = path.join(h.root, 'handoff', 'big.json');
    writeFileSync(big, '{"protocol_version":1}');
    truncateSync(big, 5 * GIB);
    h.fs.reset();

    const spool = await h.reopen();
    const reads = h.fs.calls.filter((c) => (c.op === 'readFile' || c.op === 'readRange') && path.basename(String(c.args[0])) === 'big.json');
    assert.deepEqual(reads, [], 'not one byte of it was read');
    assert.equal(existsSync(big), false);
    assert.equal(statSync(path.join(h.root, 'rejected', '_invalid', 'big.json')).size, 5 * GIB, 'set aside as it was');
    const line = auditText(h.root).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'invalid');
    assert.equal(line?.file, 'big.json');
    assert.equal(line?.reason, 'TOO_LARGE');
    assert.deepEqual((await spool.listPending()).map((e) => e.id), [p.id]);
  });

  test('a file in handoff/ grown too large while the spool runs is set aside by the next scan, unread', { timeout: HANG_TIMEOUT_MS }, async (t) => {
    const h = await harness(t);
    const big = path.join(h.root, 'handoff', 'late.json');
    writeFileSync(big, '');
    truncateSync(big, 5 * GIB);
    h.fs.reset();
    assert.deepEqual(await h.spool.listPending(), []);
    assert.ok(existsSync(path.join(h.root, 'rejected', '_invalid', 'late.json')), 'set aside');
    assert.deepEqual(h.fs.calls.filter((c) => c.op === 'readFile' && String(c.args[0]).endsWith('late.json')), []);
  });

  test('a file over the limit in claimed/ or archive/ is skipped and left in place, never read into memory', { timeout: HANG_TIMEOUT_MS }, async (t) => {
    // Records how many bytes each read returned: an oversized file must never come back.
    const returned: { file: string; bytes: number }[] = [];
    const real = createRealFsOps();
    const recording: FsOps = {
      ...real,
      readFile: async (file, maxBytes) => {
        const bytes = await real.readFile(file, maxBytes);
        returned.push({ file, bytes: bytes.length });
        return bytes;
      },
    };
    const h = await harness(t, { fs: recording });
    const { claimedId } = await withTwoHandoffs(h);
    const overClaimed = path.join(h.root, 'claimed', 'huge.json');
    writeFileSync(overClaimed, '');
    truncateSync(overClaimed, MAX_SPOOL_FILE_BYTES + 1);
    const bucket = path.join(h.root, 'archive', bucketOf('giant'));
    mkdirSync(bucket, { recursive: true });
    const overArchived = path.join(bucket, 'giant.json');
    writeFileSync(overArchived, '');
    truncateSync(overArchived, 5 * GIB);

    const spool = await h.reopen({ fullRecovery: true });
    const report = await spool.recover({ full: true });
    assert.equal(report.skipped, 2);
    assert.equal(report.invalid, 0);
    assert.equal(statSync(overClaimed).size, MAX_SPOOL_FILE_BYTES + 1, 'left in claimed/ for a person');
    assert.equal(statSync(overArchived).size, 5 * GIB, 'left in archive/ for a person');
    assert.deepEqual((await spool.list('claimed')).map((r) => r.id), [claimedId]);
    assert.deepEqual(await spool.list('archived'), []);
    assert.equal(await spool.get('huge'), undefined);
    assert.equal(await spool.get('giant'), undefined);
    assert.deepEqual((await spool.sweep(Date.now() + LATER_MS)).leaseExpired, [claimedId]);
    assert.ok(existsSync(overClaimed), 'still there');
    const largest = Math.max(...returned.map((r) => r.bytes));
    assert.ok(largest < 64 * 1024, `no read returned more than a handoff file (largest: ${largest} bytes)`);
  });

  test('a payload dropped into handoff/ that a put would refuse is set aside too (claimed, it would outgrow the limit)', async (t) => {
    const h = await harness(t);
    const p = makePayload({ extra: { notes_big: 'x'.repeat(MAX_SPOOL_PAYLOAD_BYTES) } });
    assert.ok(Buffer.byteLength(p.text) <= MAX_SPOOL_FILE_BYTES, 'under the file limit, over the payload limit');
    writeFileSync(path.join(h.root, 'handoff', `${p.id}.json`), p.text);
    assert.deepEqual(await h.spool.listPending(), []);
    assert.ok(existsSync(path.join(h.root, 'rejected', '_invalid', `${p.id}.json`)), 'set aside');
  });

  test('an oversized file at the claimed/ or archive/ name of a handoff blocks only that handoff, with IO naming it', { timeout: HANG_TIMEOUT_MS }, async (t) => {
    const h = await harness(t);
    const make = fifoMaker(t);
    const p = makePayload();
    await h.spool.put(p.text);
    const taken = path.join(h.root, 'claimed', `${p.id}.json`);
    writeFileSync(taken, '');
    truncateSync(taken, MAX_SPOOL_FILE_BYTES + 1);
    assert.deepEqual((await h.spool.listPending()).map((e) => e.id), [p.id], 'still pending: the big file is no claim');
    await assert.rejects(h.spool.claim(p.id, 'alice'), (err: unknown) => err instanceof HandoffError && err.code === 'IO' && /holds no handoff file/.test(err.message));
    execFileSync('rm', [taken]);
    const claim = await h.spool.claim(p.id, 'alice');
    // A FIFO where the completion would go: the holder of the claim hears IO, not FENCED.
    const dest = path.join(h.root, 'archive', bucketOf(p.id));
    mkdirSync(dest, { recursive: true });
    make(path.join(dest, `${p.id}.json`));
    await assert.rejects(h.spool.complete(p.id, claim.token, { outcome: 'connected' }), (err: unknown) => err instanceof HandoffError && err.code === 'IO' && /holds no handoff file/.test(err.message));
    assert.equal((await h.spool.get(p.id))?.state, 'claimed');
  });

  test('put refuses a payload over the limit (TOO_LARGE) and writes nothing', async (t) => {
    const h = await harness(t);
    const p = makePayload({ extra: { notes_big: 'x'.repeat(MAX_SPOOL_FILE_BYTES) } });
    await rejectsWith(h.spool.put(p.text), 'TOO_LARGE');
    assert.deepEqual(listTree(path.join(h.root, 'handoff')), []);
    assert.deepEqual(listTree(path.join(h.root, 'tmp')), []);
  });

  test('complete refuses a final record over the limit (TOO_LARGE) and leaves the claim as it was', async (t) => {
    const h = await harness(t);
    const { p, token, claimFile, before } = await claimedHandoff(h);
    const longTranscript = [{ role: 'user', text: 'x'.repeat(MAX_SPOOL_FILE_BYTES), ts: new Date().toISOString().slice(0, 19) + 'Z' }];
    await rejectsWith(h.spool.complete(p.id, token, { outcome: 'connected', finalTranscript: longTranscript }), 'TOO_LARGE');
    assert.deepEqual(claimFile(), before, 'the claim is untouched');
    assert.equal((await h.spool.complete(p.id, token, { outcome: 'connected' })).state, 'archived', 'and can still be completed');
  });
});

describe('spool: reasons and outcomes are short codes, as the hub accepts them', () => {
  const FREE_TEXT = 'caller said +1 555 123 4567 "hi"';

  test('reject with a free-text reason → BAD_REQUEST, nothing written', async (t) => {
    const h = await harness(t);
    const pending = makePayload();
    const claimed = makePayload();
    await h.spool.put(pending.text);
    await h.spool.put(claimed.text);
    const claim = await h.spool.claim(claimed.id, 'alice');
    const tree = listTree(h.root);
    const audit = auditText(h.root);
    for (const reason of [FREE_TEXT, 'a b', '', 'x'.repeat(65), 'naïve', 'line\nbreak']) {
      await rejectsWith(h.spool.reject(pending.id, { reason, by: 'alice' }), 'BAD_REQUEST');
      await rejectsWith(h.spool.reject(claimed.id, { reason, by: 'alice', token: claim.token }), 'BAD_REQUEST');
    }
    assert.deepEqual(listTree(h.root), tree, 'no file moved or written');
    assert.equal(auditText(h.root), audit, 'no audit line');
    for (const reason of ['busy', 'no_answer', 'claim_lost:FENCED', 'v1.2-x', 'x'.repeat(64)]) {
      const p = makePayload();
      await h.spool.put(p.text);
      assert.equal((await h.spool.reject(p.id, { reason, by: 'alice' })).relay.reason, reason);
    }
  });

  test('complete with a free-text outcome → BAD_REQUEST, the claim untouched', async (t) => {
    const h = await harness(t);
    const { p, token, claimFile, before } = await claimedHandoff(h);
    await rejectsWith(h.spool.complete(p.id, token, { outcome: FREE_TEXT }), 'BAD_REQUEST');
    await rejectsWith(h.spool.complete(p.id, token, { outcome: 'call went fine' }), 'BAD_REQUEST');
    assert.deepEqual(claimFile(), before);
    assert.ok(!auditText(h.root).includes('123 4567'), 'the refused text is not in the audit log');
    assert.equal((await h.spool.complete(p.id, token, { outcome: 'connected' })).relay.outcome, 'connected');
  });

  test('`handoff reject --reason` with free text in local mode fails (exit 30) and records nothing', async (t) => {
    const h = await harness(t);
    const p = makePayload({ ttlMs: 10 * 60_000 });
    await h.spool.put(p.text);
    await h.spool.close();
    const audit = auditText(h.root);
    const r = await runCli(['reject', p.id, '--spool', h.root, '--agent', 'alice', '--reason', FREE_TEXT]);
    assert.equal(r.code, 30, r.stderr);
    assert.ok(existsSync(path.join(h.root, 'handoff', `${p.id}.json`)), 'still pending');
    assert.equal(auditText(h.root), audit);
    assert.ok(!r.stderr.includes('123 4567'), 'the refused text is not echoed');
  });
});
