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
