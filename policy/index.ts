/**
 * The decision policy engine (issue 8): on the initiating agent's side, decides from the
 * conversation so far and a few signals whether to stay, hand off to another agent, or escalate
 * to a person, and explains why. The hub never routes; this is where the choice is made.
 */

/** Evaluates a validated policy against a transcript and signals (throws CONFIG / SCHEMA). */
export { PolicyEngine } from './engine.js';
/** The decision returned by `PolicyEngine.decide`. */
export type { Decision } from './engine.js';
/** A matched rule with its action, reason code and evidence. */
export type { MatchedRule, Evidence, TextEvidence, SignalEvidence } from './rules.js';
/** The `handoff start` fields and resume hint for a decision (throws USAGE for stay, CONFIG without a human target). */
export { toStartFields, resumeHint } from './start-fields.js';
/** The `handoff start` fields a decision implies. */
export type { StartFields } from './start-fields.js';
/** Schemas of the policy file, transcript and signals, and the closed value sets they use. */
export {
  ACTIONS,
  CALL_PRIORITIES,
  PolicySchema,
  RULE_TYPES,
  SignalsSchema,
  TranscriptSchema,
} from './schema.js';
/** Types of the policy file, transcript turns and signals. */
export type { Action, CallPriority, Policy, Rule, RuleType, Signals, Turn } from './schema.js';
/** The names of the built-in topic packs a policy may use. */
export { BUILTIN_PACKS } from './lexicon.js';
