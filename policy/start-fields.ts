/**
 * Turns a decision into the fields of `handoff start` (DESIGN.md §3.1): `to_agent`, `reason`
 * (the reason code), `priority`, `hop` (one more than so far) and a `resume_hint` that tells the
 * receiving agent, in one or two sentences, why the caller comes and how to open.
 */
import { HandoffError } from '../protocol/errors.js';
import type { Decision } from './engine.js';
import type { Evidence, MatchedRule } from './rules.js';
import type { CallPriority } from './schema.js';

/** The `handoff start` fields a decision implies. */
export interface StartFields {
  readonly to_agent: string;
  readonly reason: string;
  readonly priority: CallPriority;
  readonly hop: number;
  readonly resume_hint: string;
}

const MAX_QUOTE = 80;
const MAX_HINT = 600;

/** The first quoted clause of the evidence, unless an earlier part of the hint quoted it. */
function quote(evidence: readonly Evidence[], quoted: Set<string>): string {
  const text = evidence.find((e) => e.kind === 'text');
  if (text === undefined || text.kind !== 'text' || quoted.has(text.excerpt)) return '';
  quoted.add(text.excerpt);
  const words = text.excerpt.length <= MAX_QUOTE ? text.excerpt : `${text.excerpt.slice(0, MAX_QUOTE - 1).trimEnd()}…`;
  return ` ("${words}")`;
}

function signalValue(evidence: readonly Evidence[], signal: string): string {
  for (const e of evidence) if (e.kind === 'signal' && e.signal === signal) return String(e.value);
  return '';
}

function topicOf(m: MatchedRule): string {
  const text = m.evidence.find((e) => e.kind === 'text' && e.topic !== undefined);
  return text?.kind === 'text' && text.topic !== undefined ? text.topic.replace(/_/g, ' ') : 'this';
}

function describe(m: MatchedRule, fromAgent: string, quoted: Set<string>): string | undefined {
  switch (m.type) {
    case 'explicit_request':
      return m.reason_code === 'explicit_request_human' || m.action === 'escalate_human'
        ? `the caller asked for a person${quote(m.evidence, quoted)}`
        : `the caller asked for you${quote(m.evidence, quoted)}`;
    case 'regulated_topic':
      return `it concerns a ${topicOf(m)} matter${quote(m.evidence, quoted)}`;
    case 'urgency':
      return `it is urgent${quote(m.evidence, quoted)}`;
    case 'capability':
      return m.action === 'handoff' ? `it is about ${topicOf(m)}${quote(m.evidence, quoted)}` : undefined;
    case 'low_confidence':
      return `${fromAgent} was not sure it understood (confidence ${signalValue(m.evidence, 'confidence')})`;
    case 'negative_sentiment':
      return 'the caller is upset';
    case 'conversation_loop':
      return `${fromAgent} and the caller went round in circles`;
    case 'value_threshold':
      return `about ${signalValue(m.evidence, 'value') || 'a large amount'} is at stake${quote(m.evidence, quoted)}`;
    case 'ping_pong_guard':
      return m.reason_code === 'hop_limit'
        ? `the caller has already been handed over ${signalValue(m.evidence, 'hop')} times`
        : 'the caller was about to be sent back to the agent they came from';
  }
}

/** A suggested resume hint built from the decision's matched evidence, deciding rule first. */
export function resumeHint(decision: Decision, fromAgent: string): string {
  const seen = new Set<string>();
  const quoted = new Set<string>();
  const parts: string[] = [];
  for (const m of decision.matched) {
    if (seen.has(m.type)) continue;
    seen.add(m.type);
    const part = describe(m, fromAgent, quoted);
    if (part !== undefined) parts.push(part);
  }
  const why = parts.length === 0 ? '' : `: ${parts.join('; ')}`;
  const hint = `${fromAgent} handed this caller to you${why}. Say that ${fromAgent} passed you the context, and carry on from there instead of starting over.`;
  return hint.length <= MAX_HINT ? hint : `${hint.slice(0, MAX_HINT - 1).trimEnd()}…`;
}

/**
 * The `handoff start` fields for a decision. Throws USAGE for a `stay` decision (there is nothing
 * to start) and CONFIG for `escalate_human` when the policy names no `human.target` agent.
 */
export function toStartFields(decision: Decision, context: { fromAgent: string; hop?: number }): StartFields {
  if (decision.action === 'stay') throw new HandoffError('USAGE', 'the decision is to stay: there is no handoff to start');
  if (decision.target === undefined) {
    throw new HandoffError('CONFIG', 'escalate_human needs human.target in the policy to start a handoff');
  }
  return {
    to_agent: decision.target,
    reason: decision.reason_code,
    priority: decision.priority,
    hop: (context.hop ?? 0) + 1,
    resume_hint: resumeHint(decision, context.fromAgent),
  };
}
