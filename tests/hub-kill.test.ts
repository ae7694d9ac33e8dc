/**
 * Quick profile of the kill -9 suite (tests/stress/kill-suite.ts): a real `handoff hub serve`
 * child is killed with SIGKILL under concurrent clients and restarted on the same spool.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubKills } from './stress/kill-suite.js';
import { describeViolations } from './stress/report.js';
import { tmpDir } from './helpers/tmp.js';

test('a hub killed with SIGKILL under concurrent clients restarts with every acknowledged operation, once, in one complete file', async (t) => {
  const dir = await tmpDir(t, 'handoff-kill-');
  const result = await hubKills({ dir, kills: 3, clients: 6, seed: 11 });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.equal(result.kills, 3);
  assert.ok(result.operations > 30, `only ${result.operations} operations ran`);
});
