/**
 * Quick profile of the race suite (tests/stress/race-suite.ts): claims raced through the hub and
 * in local mode, the deadline boundaries against the janitor, and parked polls with disconnects.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { claimRaceInstances, claimRaces, copyUnlinkClaims, leaseBoundaryRaces, parkedPolls, ttlBoundaryRaces } from './stress/race-suite.js';
import { describeViolations, type SuiteResult } from './stress/report.js';
import { tmpDir } from './helpers/tmp.js';

function clean(result: SuiteResult): void {
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.ok(result.races > 0, 'result.races > 0');
}

test('each handoff accepted at once through the hub, by a second spool and by another process → exactly one winner, whose token holds it', async (t) => {
  clean(await claimRaces({ dir: await tmpDir(t, 'handoff-race-'), rounds: 2, handoffs: 6 }));
});

test('three spool instances racing for each handoff → exactly one winner each', async (t) => {
  clean(await claimRaceInstances({ dir: await tmpDir(t, 'handoff-race-'), rounds: 3 }));
});

test('negative control: with the claim rename done as copy + unlink, the race sees two winners', async (t) => {
  const result = await claimRaceInstances({ dir: await tmpDir(t, 'handoff-race-'), rounds: 2, fs: copyUnlinkClaims() });
  assert.ok(
    result.violations.some((v) => v.kind === 'two-winners'),
    'the suite must fail when the claim is not one atomic rename',
  );
});

test('complete or reject against the lease sweep at lease end −1, 0, +1 ms → one outcome, each on its side of the boundary', async (t) => {
  clean(await leaseBoundaryRaces({ dir: await tmpDir(t, 'handoff-race-'), rounds: 60 }));
});

test('accept against the expiry sweep at expires_at −1, 0, +1 ms → one outcome, each on its side of the boundary', async (t) => {
  clean(await ttlBoundaryRaces({ dir: await tmpDir(t, 'handoff-race-'), rounds: 60 }));
});

test('1,000 parked polls and 100 watchers, most of them disconnected → no waiter left and the gauges read 0', async (t) => {
  clean(await parkedPolls({ dir: await tmpDir(t, 'handoff-polls-'), polls: 1000 }));
});
