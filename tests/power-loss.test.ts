/**
 * Quick profile of the power-loss suite (tests/stress/crash-suite.ts over power-loss-fs.ts): a
 * concurrent workload of every operation, the power cut at many step boundaries, and every
 * acknowledged operation checked in the durable image. The negative control proves the suite can
 * see a missing directory fsync.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { powerLoss } from './stress/crash-suite.js';
import { describeViolations } from './stress/report.js';
import { tmpDir } from './helpers/tmp.js';

test('a power cut at any of many steps of a concurrent workload loses no acknowledged operation', async (t) => {
  const scratch = await tmpDir(t, 'handoff-power-');
  const result = await powerLoss({ scratch, stride: 5, seed: 6 });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.ok(result.crashes >= 20, `only ${result.crashes} power cuts`);
});

test('negative control: with directory fsyncs made ineffective, the suite sees acknowledged handoffs lost', async (t) => {
  const scratch = await tmpDir(t, 'handoff-power-control-');
  const result = await powerLoss({ scratch, disableDirSync: true, cuts: [40, 80] });
  const lost = result.violations.filter((v) => v.kind === 'lost-ack');
  assert.ok(lost.length > 0, 'the suite must fail when the directory fsync is missing');
  assert.match(lost[0]?.detail ?? '', /acknowledged/);
});
