/**
 * Scores the decision policy engine on the labelled conversations in
 * tests/fixtures/policy-conversations.json: precision and recall per rule type (did a rule of
 * that type match?) and how many decisions (action and target) came out as labelled.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { PolicyEngine, RULE_TYPES } from '../../policy/index.js';
import type { Action, RuleType } from '../../policy/index.js';
import { REPO_ROOT } from './cli.js';

export const FIXTURE_PATH = path.join(REPO_ROOT, 'tests', 'fixtures', 'policy-conversations.json');

/** Rule types that must be found every time and almost never by mistake (issue 8). */
export const STRICT_TYPES: readonly RuleType[] = ['explicit_request', 'regulated_topic'];
export const MIN_RECALL = 1.0;
export const MIN_PRECISION = 0.95;

export interface LabelledConversation {
  id: string;
  policy: string;
  split: 'dev' | 'holdout';
  transcript: unknown;
  signals?: unknown;
  expect: { action: Action; target?: string; rules: RuleType[] };
  note?: string;
}

interface FixtureFile {
  policies: Record<string, string>;
  conversations: LabelledConversation[];
}

export interface TypeScore {
  tp: number;
  fp: number;
  fn: number;
  precision: number;
  recall: number;
}

export interface Miss {
  id: string;
  note?: string;
  falsePositives: RuleType[];
  falseNegatives: RuleType[];
  decisionOk: boolean;
  expected: string;
  got: string;
}

export interface EvalReport {
  conversations: number;
  bySplit: Record<string, number>;
  perType: Record<RuleType, TypeScore>;
  /** The strict rule types, scored per split. */
  strictBySplit: Record<string, Record<string, TypeScore>>;
  decisionsCorrect: number;
  misses: Miss[];
}

export function loadFixtures(file = FIXTURE_PATH): FixtureFile {
  return JSON.parse(readFileSync(file, 'utf8')) as FixtureFile;
}

// With nothing to find (or nothing found) the score is vacuously perfect.
const score = ({ tp, fp, fn }: { tp: number; fp: number; fn: number }): TypeScore => ({
  tp,
  fp,
  fn,
  precision: tp + fp === 0 ? 1 : tp / (tp + fp),
  recall: tp + fn === 0 ? 1 : tp / (tp + fn),
});

const describeDecision = (action: string, target: string | undefined): string => (target === undefined ? action : `${action} → ${target}`);

/** Runs every conversation through its policy and scores the outcome. */
export function evaluate(fixtures: FixtureFile = loadFixtures()): EvalReport {
  const engines = new Map<string, PolicyEngine>();
  for (const [name, file] of Object.entries(fixtures.policies)) {
    engines.set(name, new PolicyEngine(JSON.parse(readFileSync(path.join(REPO_ROOT, file), 'utf8'))));
  }
  const counts = Object.fromEntries(RULE_TYPES.map((t) => [t, { tp: 0, fp: 0, fn: 0 }])) as Record<RuleType, { tp: number; fp: number; fn: number }>;
  const bySplit: Record<string, number> = {};
  const splitCounts: Record<string, Record<string, { tp: number; fp: number; fn: number }>> = {};
  const misses: Miss[] = [];
  let decisionsCorrect = 0;
  for (const conv of fixtures.conversations) {
    const engine = engines.get(conv.policy);
    if (engine === undefined) throw new Error(`${conv.id}: unknown policy ${conv.policy}`);
    bySplit[conv.split] = (bySplit[conv.split] ?? 0) + 1;
    const decision = engine.decide(conv.transcript, conv.signals ?? {});
    const found = new Set(decision.matched.map((m) => m.type));
    const expected = new Set(conv.expect.rules);
    const falsePositives: RuleType[] = [];
    const falseNegatives: RuleType[] = [];
    for (const type of RULE_TYPES) {
      const f = found.has(type);
      const e = expected.has(type);
      if (STRICT_TYPES.includes(type)) {
        const c = ((splitCounts[conv.split] ??= {})[type] ??= { tp: 0, fp: 0, fn: 0 });
        if (f && e) c.tp++;
        else if (f) c.fp++;
        else if (e) c.fn++;
      }
      if (f && e) counts[type].tp++;
      else if (f) {
        counts[type].fp++;
        falsePositives.push(type);
      } else if (e) {
        counts[type].fn++;
        falseNegatives.push(type);
      }
    }
    const decisionOk = decision.action === conv.expect.action && (decision.action !== 'handoff' || decision.target === conv.expect.target);
    if (decisionOk) decisionsCorrect++;
    if (!decisionOk || falsePositives.length > 0 || falseNegatives.length > 0) {
      misses.push({
        id: conv.id,
        ...(conv.note === undefined ? {} : { note: conv.note }),
        falsePositives,
        falseNegatives,
        decisionOk,
        expected: describeDecision(conv.expect.action, conv.expect.target),
        got: describeDecision(decision.action, decision.target),
      });
    }
  }
  const perType = Object.fromEntries(RULE_TYPES.map((t) => [t, score(counts[t])])) as Record<RuleType, TypeScore>;
  const strictBySplit = Object.fromEntries(
    Object.entries(splitCounts).map(([split, types]) => [split, Object.fromEntries(Object.entries(types).map(([t, c]) => [t, score(c)]))]),
  );
  return { conversations: fixtures.conversations.length, bySplit, perType, strictBySplit, decisionsCorrect, misses };
}

/** The strict rule types that miss their thresholds, with a sentence each. */
export function thresholdFailures(report: EvalReport): string[] {
  const failures: string[] = [];
  for (const type of STRICT_TYPES) {
    const s = report.perType[type];
    if (s.recall < MIN_RECALL) failures.push(`${type}: recall ${s.recall.toFixed(3)} < ${MIN_RECALL}`);
    if (s.precision < MIN_PRECISION) failures.push(`${type}: precision ${s.precision.toFixed(3)} < ${MIN_PRECISION}`);
  }
  return failures;
}
