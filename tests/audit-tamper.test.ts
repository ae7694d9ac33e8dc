/**
 * Quick profile of the audit tampering suite (tests/stress/audit-suite.ts): every line of a
 * two-day log edited, deleted and swapped; `handoff audit verify` names the first bad line.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditTamper } from './stress/audit-suite.js';
import { describeViolations } from './stress/report.js';
import { tmpDir } from './helpers/tmp.js';

test('editing, deleting or reordering any line of the audit log → handoff audit verify exits TAMPERED and names the first bad line', async (t) => {
  const result = await auditTamper({ dir: await tmpDir(t, 'handoff-audit-'), lines: 12, cli: 'sample' });
  assert.deepEqual(result.violations, [], describeViolations(result.violations));
  assert.ok(result.tampered >= 60, `only ${result.tampered} tampered copies`);
  assert.ok(result.operations >= result.tampered + 3, 'the CLI ran for a sample of each kind');
});
