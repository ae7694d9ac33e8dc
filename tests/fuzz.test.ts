/**
 * Quick profile of the hostile-input suite (tests/stress/fuzz-suite.ts), with fast-check.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpFuzz, parserFuzz } from './stress/fuzz-suite.js';
import { describeViolations } from './stress/report.js';
import { tmpDir } from './helpers/tmp.js';

test('generated hostile requests to every endpoint → never a 5xx, the token in the query never authenticates, nothing written outside the spool, bounded heap', async (t) => {
  const result = await httpFuzz({ dir: await tmpDir(t, 'handoff-fuzz-'), runs: 250, seed: 20261122 });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.equal(result.fuzzCases, 250);
});

test('generated hostile payloads → the parser and the verifier refuse with a typed code, and a character change that alters the document never verifies', async () => {
  const result = await parserFuzz({ runs: 400, seed: 20261122 });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.ok(result.fuzzCases >= 1200, 'result.fuzzCases >= 1200');
});
