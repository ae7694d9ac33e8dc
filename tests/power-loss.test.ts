/**
 * Quick profile of the power-loss suite (tests/stress/crash-suite.ts over power-loss-fs.ts): a
 * concurrent workload of every operation, the power cut at many step boundaries, and every
 * acknowledged operation checked in the durable image. The negative control proves the suite can
 * see a missing directory fsync.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { bucketOf, openSpool } from '../spool/index.js';
import { noSyncFsOps, powerLoss } from './stress/crash-suite.js';
import { PowerLossFs } from './stress/power-loss-fs.js';
import { describeViolations } from './stress/report.js';
import { makePayload } from './helpers/spool-fixtures.js';
import { tmpDir } from './helpers/tmp.js';

test('a power cut at any of many steps of a concurrent workload loses no acknowledged operation', async (t) => {
  const scratch = await tmpDir(t, 'handoff-power-');
  const result = await powerLoss({ scratch, stride: 5, seed: 6 });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.ok(result.crashes >= 20, `only ${result.crashes} power cuts`);
});

test('the same on an exclusive spool, as the hub opens it, which leaves the source directory of a move unsynced', async (t) => {
  const scratch = await tmpDir(t, 'handoff-power-excl-');
  const result = await powerLoss({ scratch, stride: 5, seed: 7, exclusive: true });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.ok(result.crashes >= 20, `only ${result.crashes} power cuts`);
});

test('after a power cut an exclusive spool can hold a moved file at both names; recovery keeps the later one', async (t) => {
  const scratch = await tmpDir(t, 'handoff-power-both-');
  const live = path.join(scratch, 'live');
  mkdirSync(live);
  const model = new PowerLossFs(live, {}, noSyncFsOps());
  const spool = await openSpool({ root: path.join(live, 'spool'), exclusive: true, fs: model.ops, recoveryGraceMs: 0 });
  const now = Date.now();
  for (const id of ['both-claimed', 'both-archived']) await spool.put(makePayload({ id, nowMs: now }).text);
  const held = await spool.claim('both-claimed', 'alice');
  const done = await spool.claim('both-archived', 'alice');
  await spool.complete('both-archived', done.token, { outcome: 'connected' });
  await spool.close();

  const image = path.join(scratch, 'image');
  model.materialize(image);
  const root = path.join(image, 'spool');
  const names = (dir: string) => readdirSync(path.join(root, dir)).sort();
  // What the skipped fsyncs leave: the old names are still in the durable image.
  assert.deepEqual(names('handoff'), ['both-archived.json', 'both-claimed.json']);
  assert.deepEqual(names('claimed'), ['both-archived.json', 'both-claimed.json']);
  assert.ok(existsSync(path.join(root, 'archive', bucketOf('both-archived'), 'both-archived.json')));

  const recovered = await openSpool({ root, exclusive: true, recoveryGraceMs: 0 });
  t.after(() => recovered.close());
  assert.deepEqual(names('handoff'), []);
  assert.deepEqual(names('claimed'), ['both-claimed.json']);
  const claim = await recovered.get('both-claimed');
  assert.equal(claim?.state, 'claimed');
  assert.equal(claim?.relay.claim_token_sha256, held.record.relay.claim_token_sha256, 'the acknowledged claim holds');
  const archived = await recovered.get('both-archived');
  assert.equal(archived?.state, 'archived');
  assert.equal(archived?.relay.outcome, 'connected');
  assert.deepEqual(await recovered.listPending('alice'), []);
});

test('negative control: with directory fsyncs made ineffective, the suite sees acknowledged handoffs lost', async (t) => {
  const scratch = await tmpDir(t, 'handoff-power-control-');
  const result = await powerLoss({ scratch, disableDirSync: true, cuts: [40, 80] });
  const lost = result.violations.filter((v) => v.kind === 'lost-ack');
  assert.ok(lost.length > 0, 'the suite must fail when the directory fsync is missing');
  assert.match(lost[0]?.detail ?? '', /acknowledged/);
});

/**
 * A directory (an archive bucket, an audit day file's entry in events/) created by an attempt
 * whose fsync failed: a later acknowledged operation must still make it durable, though its own
 * mkdir finds the directory (or file) there already.
 */
test('a bucket or audit day file made by an attempt whose fsync failed is made durable by the next acknowledged operation', async (t) => {
  for (const exclusive of [false, true]) {
    const scratch = await tmpDir(t, 'handoff-power-dir-');
    const live = path.join(scratch, 'live');
    mkdirSync(live);
    const model = new PowerLossFs(live);
    let failNext: 'archive' | 'events' | undefined = 'events';
    let failTruncate = false;
    const spool = await openSpool({
      root: path.join(live, 'spool'),
      exclusive,
      recoveryGraceMs: 0,
      fs: {
        ...model.ops,
        fsyncDir: async (dir) => {
          if (failNext !== undefined && path.basename(dir) === failNext) {
            failTruncate = failNext === 'events';
            failNext = undefined;
            throw Object.assign(new Error('injected fsync failure'), { code: 'EIO' });
          }
          return model.ops.fsyncDir(dir);
        },
        // The audit log then cuts the failed line off; that fails too, so the day file stays.
        truncate: async (file, length) => {
          if (failTruncate) {
            failTruncate = false;
            throw Object.assign(new Error('injected truncate failure'), { code: 'EIO' });
          }
          return model.ops.truncate(file, length);
        },
      },
    });
    const id = 'dir-durable';
    // The first put creates today's audit file; the fsync of events/ fails, and so does the put.
    await assert.rejects(spool.put(makePayload({ id: 'dir-first' }).text), { code: 'IO' });
    await spool.put(makePayload({ id }).text);
    const claim = await spool.claim(id, 'alice');
    failNext = 'archive'; // the new bucket's entry in archive/
    await assert.rejects(spool.complete(id, claim.token, { outcome: 'connected' }), { code: 'IO' });
    await spool.complete(id, claim.token, { outcome: 'connected' }); // acknowledged
    await spool.close();
    const image = path.join(scratch, 'image');
    model.materialize(image);
    const root = path.join(image, 'spool');
    assert.ok(existsSync(path.join(root, 'archive', bucketOf(id), `${id}.json`)), `exclusive=${exclusive}: the bucket survived the power cut`);
    assert.equal(readdirSync(path.join(root, 'events')).filter((f) => f.endsWith('.jsonl')).length, 1, `exclusive=${exclusive}: the audit file survived`);
    const reopened = await openSpool({ root, exclusive, recoveryGraceMs: 0 });
    assert.equal((await reopened.get(id))?.state, 'archived', `exclusive=${exclusive}`);
    await reopened.close();
  }
});
