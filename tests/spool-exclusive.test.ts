/**
 * An exclusive spool (the hub's) answers lookups from its pending index and stops at the first
 * state it finds, instead of reading all four state directories. These tests show that it gives
 * the same answers as a shared spool reading the disk, reads no file for a pending handoff, and
 * recovers a put that failed after linking its file.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { openSpool, verifyAudit, type HandoffRecord, type Spool } from '../spool/index.js';
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
