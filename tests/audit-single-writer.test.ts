/**
 * The audit log of an exclusive spool (the hub's) is written by one process only: it reads the
 * chain's tail once at open and keeps the day's file open, instead of locking and re-reading
 * events/ for every batch. These tests pin that down and show the chain stays whole through it.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { openSpool, verifyAudit, type Spool } from '../spool/index.js';
import { makePayload, TestFs } from './helpers/spool-fixtures.js';
import { tmpDir } from './helpers/tmp.js';

const T0 = Date.UTC(2026, 10, 22, 10, 0, 0);

async function spoolWith(t: TestContext, exclusive: boolean): Promise<{ spool: Spool; fs: TestFs; root: string; events: string }> {
  const root = path.join(await tmpDir(t), 'spool');
  const fs = new TestFs();
  const spool = await openSpool({ root, clock: () => T0, exclusive, fs: fs.ops });
  t.after(() => spool.close());
  return { spool, fs, root, events: path.join(root, 'events') };
}

/** put, read, claim, complete of one handoff: four audit batches when awaited one by one. */
async function oneLifecycle(spool: Spool, id: string): Promise<void> {
  await spool.put(makePayload({ id, nowMs: T0 }).text);
  await spool.auditRead(id, 'alice');
  const claim = await spool.claim(id, 'alice');
  await spool.complete(id, claim.token, { outcome: 'connected' });
}

function callsOn(fs: TestFs, op: string, dir: string): number {
  return fs.calls.filter((c) => c.op === op && typeof c.args[0] === 'string' && path.dirname(c.args[0]) === dir).length;
}

test('an exclusive spool appends without re-reading events/, opening the day file once', async (t) => {
  const { spool, fs, events } = await spoolWith(t, true);
  fs.reset();
  await oneLifecycle(spool, 'single-1');
  await oneLifecycle(spool, 'single-2');
  assert.equal(fs.calls.filter((c) => c.op === 'readdir' && c.args[0] === events).length, 0, 'no re-read of the tail');
  assert.equal(callsOn(fs, 'openAppend', events), 1, 'the day file stays open');
  const audit = await verifyAudit(events);
  assert.equal(audit.ok, true);
  assert.equal(audit.lines, 8);
});

test('a shared (non-exclusive) spool re-reads the tail under the lock for every batch', async (t) => {
  const { spool, fs, events } = await spoolWith(t, false);
  fs.reset();
  await oneLifecycle(spool, 'shared-1');
  assert.equal(fs.calls.filter((c) => c.op === 'readdir' && c.args[0] === events).length, 4, 'one re-read per batch');
  assert.equal(callsOn(fs, 'openAppend', events), 4);
  assert.equal((await verifyAudit(events)).ok, true);
});

test('the chain an exclusive spool kept in memory continues across a reopen', async (t) => {
  const { spool, root, events } = await spoolWith(t, true);
  await oneLifecycle(spool, 'reopen-1');
  await spool.close();
  const again = await openSpool({ root, clock: () => T0, exclusive: true });
  t.after(() => again.close());
  await oneLifecycle(again, 'reopen-2');
  const audit = await verifyAudit(events);
  assert.equal(audit.ok, true, JSON.stringify(audit.firstBad));
  assert.equal(audit.lines, 8);
});

test('after a failed audit write an exclusive spool reads the tail again, and the chain stays whole', async (t) => {
  const { spool, fs, events } = await spoolWith(t, true);
  await oneLifecycle(spool, 'fail-1');
  fs.reset();
  fs.failWhen = (call) => call.op === 'fsync' && fs.calls.some((c) => c.op === 'write' && Buffer.from(c.args[1] as Uint8Array).subarray(0, 7).toString() === '{"seq":');
  await assert.rejects(spool.put(makePayload({ id: 'fail-2', nowMs: T0 }).text), { code: 'IO' });
  await spool.put(makePayload({ id: 'fail-3', nowMs: T0 }).text);
  assert.ok(fs.calls.some((c) => c.op === 'readdir' && c.args[0] === events), 'the tail was read again');
  const audit = await verifyAudit(events);
  assert.equal(audit.ok, true, JSON.stringify(audit.firstBad));
  // The failed batch's line may or may not have reached the disk; either way the chain is linear.
  assert.ok(audit.lines === 5 || audit.lines === 6, `${audit.lines} lines`);
});
