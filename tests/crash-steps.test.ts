/**
 * Quick profile of the crash-at-every-step suite (tests/stress/crash-suite.ts): every state-changing
 * operation is cut off after each of its file-system steps, then recovered in both modes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crashAtEveryStep, STEP_SCENARIOS } from './stress/crash-suite.js';
import { describeViolations } from './stress/report.js';
import { tmpDir } from './helpers/tmp.js';

test('every operation cut off after any of its steps recovers, fully and quickly, to one consistent file that can still progress', async (t) => {
  const scratch = await tmpDir(t, 'handoff-crash-');
  const result = await crashAtEveryStep({ scratch });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  // Each of the eight operations has several steps, and each step boundary was a crash point.
  assert.ok(result.crashes >= STEP_SCENARIOS.length * 5, `only ${result.crashes} crash points`);
});
