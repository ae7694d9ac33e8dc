/**
 * `npm run eval:policy`: precision and recall per rule type on the labelled conversations, then
 * the conversations the engine got wrong. Exits 1 when explicit requests or regulated topics fall
 * below recall 1.0 or precision 0.95 (issue 8). `--verbose` also prints each missed transcript.
 */
import { RULE_TYPES } from '../policy/index.js';
import { evaluate, loadFixtures, thresholdFailures } from './helpers/policy-eval.js';

const verbose = process.argv.includes('--verbose');
const fixtures = loadFixtures();
const report = evaluate(fixtures);

const pct = (n: number): string => n.toFixed(3).padStart(6);
const splits = Object.entries(report.bySplit).map(([k, v]) => `${k} ${v}`).join(', ');
console.log(`${report.conversations} conversations (${splits})\n`);
console.log(`${'rule type'.padEnd(20)} ${'tp'.padStart(4)} ${'fp'.padStart(4)} ${'fn'.padStart(4)} ${'precision'.padStart(9)} ${'recall'.padStart(7)}`);
for (const type of RULE_TYPES) {
  const s = report.perType[type];
  console.log(`${type.padEnd(20)} ${String(s.tp).padStart(4)} ${String(s.fp).padStart(4)} ${String(s.fn).padStart(4)} ${pct(s.precision).padStart(9)} ${pct(s.recall).padStart(7)}`);
}
console.log(`\ndecisions (action and target) as labelled: ${report.decisionsCorrect}/${report.conversations}`);

console.log('\nstrict rule types per split (the fixture file records each holdout split\'s first run):');
for (const [split, types] of Object.entries(report.strictBySplit)) {
  const cells = Object.entries(types).map(([t, sc]) => `${t} P ${sc.precision.toFixed(3)} R ${sc.recall.toFixed(3)}`);
  console.log(`  ${split.padEnd(10)} ${cells.join('   ')}`);
}

if (report.misses.length > 0) {
  console.log('\nmisses:');
  const byId = new Map(fixtures.conversations.map((c) => [c.id, c]));
  for (const m of report.misses) {
    const parts = [
      m.decisionOk ? '' : `decision ${m.got}, expected ${m.expected}`,
      m.falsePositives.length > 0 ? `extra ${m.falsePositives.join(', ')}` : '',
      m.falseNegatives.length > 0 ? `missed ${m.falseNegatives.join(', ')}` : '',
    ].filter((p) => p !== '');
    console.log(`  ${m.id}${m.note === undefined ? '' : ` (${m.note})`}: ${parts.join('; ')}`);
    if (verbose) console.log(`    ${JSON.stringify(byId.get(m.id)?.transcript)}`);
  }
}

const failures = thresholdFailures(report);
if (failures.length > 0) {
  console.log(`\nFAIL: ${failures.join('; ')}`);
  process.exitCode = 1;
} else {
  console.log('\nexplicit_request and regulated_topic meet recall 1.0 and precision ≥ 0.95');
}
