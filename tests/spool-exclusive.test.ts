/**
 * An exclusive spool (the hub's) answers lookups from its pending index and stops at the first
 * state it finds, instead of reading all four state directories. These tests show that it gives
 * the same answers as a shared spool reading the disk, reads no file for a pending handoff, and
 * recovers a put that failed after linking its file.
 */
import assert from 'node:assert/strict';
import * as fsSync from 'node:fs';
import { statSync } from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { isoMillis } from '../protocol/index.js';
import { bucketOf, openSpool, Spool, verifyAudit, type HandoffRecord } from '../spool/index.js';
import { makePayload, TestFs } from './helpers/spool-fixtures.js';
import { tmpDir } from './helpers/tmp.js';

const T0 = Date.now();

async function root(t: TestContext): Promise<string> {
  return path.join(await tmpDir(t), 'spool');
}

/** One handoff in each state: pending, claimed, archived, rejected (by the target). */
async function oneOfEach(spool: Spool): Promise<string[]> {
  const ids = ['ex-pending', 'ex-claimed', 'ex-archived', 'ex-rejected'];
  for (const id of ids) await spool.put(makePayload({ id, nowMs: T0 }).text);
  await spool.claim('ex-claimed', 'alice');
  const done = await spool.claim('ex-archived', 'alice');
  await spool.complete('ex-archived', done.token, { outcome: 'connected' });
  await spool.reject('ex-rejected', { reason: 'busy', by: 'alice' });
  return [...ids, 'ex-unknown'];
}

function view(r: HandoffRecord | undefined): unknown {
  return r === undefined ? undefined : { state: r.state, relay: r.relay, payloadText: r.payloadText, path: r.path };
}

test('an exclusive spool finds every state exactly as a shared spool reading the disk does', async (t) => {
  const dir = await root(t);
  const writer = await openSpool({ root: dir, exclusive: true });
  const ids = await oneOfEach(writer);
  const fromIndex = await Promise.all(ids.map(async (id) => view(await writer.get(id))));
  await writer.close();
  const shared = await openSpool({ root: dir });
  t.after(() => shared.close());
  const fromDisk = await Promise.all(ids.map(async (id) => view(await shared.get(id))));
  assert.deepEqual(fromIndex, fromDisk);
  assert.deepEqual(
    fromIndex.map((v) => (v as { state?: string } | undefined)?.state),
    ['pending', 'claimed', 'archived', 'rejected', undefined],
  );
});

test('get and claim of a pending handoff in an exclusive spool read no file', async (t) => {
  const fs = new TestFs();
  const spool = await openSpool({ root: await root(t), exclusive: true, fs: fs.ops });
  t.after(() => spool.close());
  const p = makePayload({ id: 'ex-noread', nowMs: T0 });
  await spool.put(p.text);
  fs.reset();
  const record = await spool.get('ex-noread');
  assert.equal(record?.state, 'pending');
  assert.equal(record?.payloadText, p.text);
  const claim = await spool.claim('ex-noread', 'alice');
  assert.equal(claim.record.payloadText, p.text);
  assert.deepEqual(fs.calls.filter((c) => c.op === 'readFile').map((c) => c.args[0]), []);
});

test('a put that failed after linking its file is acknowledged, delivered and audited once when repeated', async (t) => {
  const fs = new TestFs();
  const dir = await root(t);
  const spool = await openSpool({ root: dir, exclusive: true, fs: fs.ops });
  t.after(() => spool.close());
  const p = makePayload({ id: 'ex-retry', nowMs: T0 });
  fs.failWhen = (call) => call.op === 'fsyncDir' && call.args[0] === path.join(dir, 'handoff');
  await assert.rejects(spool.put(p.text), { code: 'IO' });
  assert.deepEqual(await spool.listPending('alice'), [], 'an unacknowledged put is not delivered');
  const again = await spool.put(p.text);
  assert.equal(again.record.state, 'pending');
  assert.deepEqual((await spool.listPending('alice')).map((e) => e.id), ['ex-retry']);
  assert.equal((await spool.get('ex-retry'))?.state, 'pending');
  const claim = await spool.claim('ex-retry', 'alice');
  assert.equal(claim.record.state, 'claimed');
  await spool.close();
  const audit = await verifyAudit(path.join(dir, 'events'));
  assert.equal(audit.ok, true);
  assert.equal(audit.lines, 2, 'one put and one claim');
});

/**
 * Each transition fails once after its rename (on the destination directory's fsync, or on its
 * audit line), and is then repeated by its caller: the repeat must make the move durable and
 * commit it exactly once (one event for the listeners, one audit line), as a first success would.
 */
test('a claim, completion or rejection that failed after its rename is made durable and committed once by its repeat', async (t) => {
  const TOKEN = 'k'.repeat(43);
  const cases: Array<{ name: string; dir: string; failAudit: boolean; run: (s: Spool, id: string) => Promise<unknown> }> = [];
  for (const failAudit of [false, true]) {
    cases.push(
      { name: 'claim', dir: 'claimed', failAudit, run: (s, id) => s.claim(id, 'alice', { token: TOKEN }) },
      { name: 'complete', dir: 'archive', failAudit, run: (s, id) => s.complete(id, TOKEN, { outcome: 'connected' }) },
      { name: 'reject claimed', dir: 'rejected', failAudit, run: (s, id) => s.reject(id, { reason: 'busy', by: 'alice', token: TOKEN }) },
      { name: 'reject pending', dir: 'rejected', failAudit, run: (s, id) => s.reject(id, { reason: 'busy', by: 'alice' }) },
    );
  }
  for (const c of cases) {
    const fs = new TestFs();
    const dir = await root(t);
    const spool = await openSpool({ root: dir, exclusive: true, fs: fs.ops });
    const id = `ex-fail-${c.name.replace(' ', '-')}-${c.failAudit ? 'audit' : 'fsync'}`;
    await spool.put(makePayload({ id, nowMs: T0 }).text);
    if (c.name !== 'claim' && c.name !== 'reject pending') await spool.claim(id, 'alice', { token: TOKEN });
    const heard: string[] = [];
    spool.onTransition((e) => heard.push(`${e.from}->${e.to}`));
    const destDir = c.dir === 'claimed' ? path.join(dir, 'claimed') : path.join(dir, c.dir, bucketOf(id));
    let destSynced = false;
    fs.failWhen = c.failAudit
      ? (call) => {
          // The audit line's fsync is the first file fsync after the destination directory's.
          if (call.op === 'fsyncDir' && call.args[0] === destDir) destSynced = true;
          return destSynced && call.op === 'fsync';
        }
      : (call) => call.op === 'fsyncDir' && call.args[0] === destDir;
    await assert.rejects(c.run(spool, id), { code: 'IO' }, `${c.name}: the first attempt fails`);
    assert.equal(fs.failWhen, undefined, `${c.name}: the injected failure happened`);
    assert.equal(heard.length, c.failAudit ? 1 : 0, `${c.name}: listeners hear of a move only once it is durable`);
    fs.reset();
    await c.run(spool, id);
    assert.ok(
      fs.calls.some((call) => call.op === 'fsyncDir' && call.args[0] === destDir),
      `${c.name}: the repeat fsyncs ${path.relative(dir, destDir)} before it answers`,
    );
    assert.equal(heard.length, 1, `${c.name}: listeners hear of it once (${heard.join(', ')})`);
    await c.run(spool, id);
    assert.equal(heard.length, 1, `${c.name}: a third attempt commits nothing more`);
    await spool.close();
    const audit = await verifyAudit(path.join(dir, 'events'));
    assert.equal(audit.ok, true, `${c.name}: ${JSON.stringify(audit)}`);
    const setup = c.name === 'claim' || c.name === 'reject pending' ? 1 : 2;
    assert.equal(audit.lines, setup + 1, `${c.name}: one audit line for the transition`);
  }
});

test('a transition whose audit line failed is recorded before the next transition of its id, once', async (t) => {
  const fs = new TestFs();
  const dir = await root(t);
  const spool = await openSpool({ root: dir, exclusive: true, fs: fs.ops });
  t.after(() => spool.close());
  const id = 'ex-stale';
  await spool.put(makePayload({ id, nowMs: T0 }).text);
  const heard: string[] = [];
  spool.onTransition((e) => heard.push(`${e.from}->${e.to}`));
  let claimedSynced = false;
  fs.failWhen = (call) => {
    if (call.op === 'fsyncDir' && call.args[0] === path.join(dir, 'claimed')) claimedSynced = true;
    return claimedSynced && call.op === 'fsync'; // the claim's audit line
  };
  const token = 'k'.repeat(43);
  await assert.rejects(spool.claim(id, 'alice', { token }), { code: 'IO' });
  await spool.complete(id, token, { outcome: 'connected' }); // a later transition, acknowledged
  await spool.complete(id, token, { outcome: 'connected' }); // and its repeat
  assert.deepEqual(heard, ['pending->claimed', 'claimed->archived']);
  await spool.close();
  const log = fsSync.readdirSync(path.join(dir, 'events')).map((f) => fsSync.readFileSync(path.join(dir, 'events', f), 'utf8')).join('');
  assert.deepEqual(log.trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event), ['put', 'claim', 'complete']);
  assert.equal((await verifyAudit(path.join(dir, 'events'))).ok, true);
});

test('a put whose audit line or directory fsync failed: its repeat records it once; nothing of it is left to diverge', async (t) => {
  for (const exclusive of [false, true]) {
    for (const fail of ['audit', 'fsyncDir'] as const) {
      const fs = new TestFs();
      const dir = await root(t);
      const spool = await openSpool({ root: dir, exclusive, fs: fs.ops });
      const heard: string[] = [];
      spool.onTransition((e) => heard.push(e.to));
      const p = makePayload({ id: `ex-put-${fail}`, nowMs: T0 });
      let handoffSynced = false;
      fs.failWhen =
        fail === 'fsyncDir'
          ? (call) => call.op === 'fsyncDir' && call.args[0] === path.join(dir, 'handoff')
          : (call) => {
              if (call.op === 'fsyncDir' && call.args[0] === path.join(dir, 'handoff')) handoffSynced = true;
              return handoffSynced && call.op === 'fsync';
            };
      const what = `exclusive=${exclusive}, ${fail}`;
      await assert.rejects(spool.put(p.text), { code: 'IO' }, what);
      if (exclusive && fail === 'fsyncDir') {
        assert.equal(fsSync.existsSync(path.join(dir, 'handoff', `${p.id}.json`)), false, `${what}: the unacknowledged file is taken back`);
        const other = makePayload({ id: p.id, nowMs: T0, reason: 'other' });
        assert.equal((await spool.put(other.text)).created, true, `${what}: so the id is free, as the index says`);
      } else {
        await spool.put(p.text);
        await spool.put(p.text);
      }
      assert.deepEqual(heard, ['pending'], `${what}: one event`);
      await spool.close();
      const audit = await verifyAudit(path.join(dir, 'events'));
      assert.equal(audit.ok, true, what);
      assert.equal(audit.lines, 1, `${what}: one put line`);
    }
  }
});

test('a repeated put of a pending handoff in an exclusive spool writes nothing; other bytes → CONFLICT', async (t) => {
  const fs = new TestFs();
  const spool = await openSpool({ root: await root(t), exclusive: true, fs: fs.ops });
  t.after(() => spool.close());
  const p = makePayload({ id: 'ex-repeat', nowMs: T0 });
  assert.equal((await spool.put(p.text)).created, true);
  fs.reset();
  const again = await spool.put(p.text);
  assert.equal(again.created, false);
  assert.equal(again.record.state, 'pending');
  assert.deepEqual(fs.mutatingCalls(), [], 'nothing written for an idempotent repeat');
  const other = makePayload({ id: 'ex-repeat', nowMs: T0, extra: { reason: 'other_reason' } });
  await assert.rejects(spool.put(other.text), { code: 'CONFLICT' });
});

test('renew and complete of a claim this exclusive spool wrote read no file, and see the renewed lease', async (t) => {
  const fs = new TestFs();
  const dir = await root(t);
  const spool = await openSpool({ root: dir, exclusive: true, fs: fs.ops, clock: () => T0 });
  t.after(() => spool.close());
  await spool.put(makePayload({ id: 'ex-held', nowMs: T0 }).text);
  const claim = await spool.claim('ex-held', 'alice');
  fs.reset();
  const renewed = await spool.renew('ex-held', claim.token, 3_600_000);
  assert.equal((await spool.get('ex-held'))?.relay.lease_until, renewed.relay.lease_until);
  assert.notEqual(renewed.relay.lease_until, claim.leaseUntil);
  const done = await spool.complete('ex-held', claim.token, { outcome: 'connected' });
  assert.equal(done.state, 'archived');
  assert.equal(done.relay.lease_until, renewed.relay.lease_until, 'complete used the renewed claim');
  assert.deepEqual(fs.calls.filter((c) => c.op === 'readFile').map((c) => c.args[0]), []);
  // What it answered from memory is what the disk says (read by an instance that does not open:
  // no recovery, no owner check).
  const shared = new Spool({ root: dir });
  t.after(() => shared.close());
  assert.deepEqual(view(await spool.get('ex-held')), view(await shared.get('ex-held')));
});

test('after a claim or renew that failed midway, an exclusive spool answers from the disk, as a shared one does', async (t) => {
  const fs = new TestFs();
  const dir = await root(t);
  const spool = await openSpool({ root: dir, exclusive: true, fs: fs.ops, clock: () => T0 });
  t.after(() => spool.close());
  const shared = new Spool({ root: dir, clock: () => T0 }); // reads the disk as it is (see above)
  t.after(() => shared.close());
  const claimedDir = path.join(dir, 'claimed');

  // The claim's rename happened; writing its envelope failed: claimed/ holds the bare payload.
  await spool.put(makePayload({ id: 'ex-cut', nowMs: T0 }).text);
  fs.failWhen = (call) => call.op === 'rename' && path.dirname(call.args[1] as string) === claimedDir && path.basename(call.args[0] as string) !== 'ex-cut.json';
  await assert.rejects(spool.claim('ex-cut', 'alice'), { code: 'IO' });
  assert.deepEqual(view(await spool.get('ex-cut')), view(await shared.get('ex-cut')));

  // A renew whose rewrite failed leaves the earlier envelope in place, and that is what is read.
  await spool.put(makePayload({ id: 'ex-renew', nowMs: T0 }).text);
  const claim = await spool.claim('ex-renew', 'alice');
  fs.failWhen = (call) => call.op === 'rename' && call.args[1] === path.join(claimedDir, 'ex-renew.json');
  await assert.rejects(spool.renew('ex-renew', claim.token, 3_600_000), { code: 'IO' });
  const after = await spool.get('ex-renew');
  assert.equal(after?.relay.lease_until, claim.leaseUntil);
  assert.deepEqual(view(after), view(await shared.get('ex-renew')));
});

test('a claim and a completion in an exclusive spool fsync the directory the file moves into, not the one it leaves', async (t) => {
  const fs = new TestFs();
  const dir = await root(t);
  const spool = await openSpool({ root: dir, exclusive: true, fs: fs.ops });
  t.after(() => spool.close());
  const synced = () => fs.calls.filter((c) => c.op === 'fsyncDir').map((c) => path.relative(dir, String(c.args[0])));
  await spool.put(makePayload({ id: 'ex-dirs', nowMs: T0 }).text);
  fs.reset();
  const claim = await spool.claim('ex-dirs', 'alice');
  assert.deepEqual(synced(), ['claimed']);
  fs.reset();
  await spool.complete('ex-dirs', claim.token, { outcome: 'connected' });
  // The bucket is new here: its entry in archive/ is made durable as well.
  assert.deepEqual(synced(), ['archive', path.join('archive', bucketOf('ex-dirs'))]);
  // A shared spool, whose readers may see it before any recovery, fsyncs both (spool.test.ts).
});

test('an exclusive spool records when it received a handoff: its own put time, or the file time of one found at open', async (t) => {
  const dir = await root(t);
  let now = T0;
  const fs = new TestFs();
  const spool = await openSpool({ root: dir, exclusive: true, fs: fs.ops, clock: () => now });
  await spool.put(makePayload({ id: 'ex-recv-put', nowMs: T0 }).text);
  await spool.put(makePayload({ id: 'ex-recv-open', nowMs: T0 }).text);
  now = T0 + 5_000;
  fs.reset();
  const claim = await spool.claim('ex-recv-put', 'alice');
  assert.equal(claim.record.relay.received_at, isoMillis(T0));
  assert.deepEqual(fs.calls.filter((c) => c.op === 'stat').map((c) => path.relative(dir, String(c.args[0]))), ['claimed/ex-recv-put.json'], 'only the check that nothing is in the way');
  await spool.close();

  const file = path.join(dir, 'handoff', 'ex-recv-open.json');
  const fileTime = isoMillis(statSync(file).mtimeMs);
  const reopened = await openSpool({ root: dir, exclusive: true, clock: () => now });
  t.after(() => reopened.close());
  const found = await reopened.claim('ex-recv-open', 'alice');
  assert.equal(found.record.relay.received_at, fileTime);
});
