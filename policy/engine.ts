/**
 * The decision: every rule is evaluated, the matches are ordered by rule priority (highest
 * first), and the first match that carries an action decides. Rules without an action (an
 * urgency rule used only to raise the priority) never decide, but every match may raise the
 * call priority: the decision's priority is the highest of the policy default and all matches.
 *
 * Then the ping-pong guard: a handoff back to the agent that just handed this caller over
 * (`signals.from_agent`), or a handoff when `signals.hop` has reached `ping_pong.max_hops`,
 * becomes `ping_pong.on_bounce` / `on_hop_limit` (stay or escalate_human) with reason code
 * `ping_pong` / `hop_limit`. Escalating to a person is never blocked: it is the way out.
 */
import { HandoffError } from '../protocol/errors.js';
import { compileRule } from './rules.js';
import type { Evaluator, MatchedRule } from './rules.js';
import { CALL_PRIORITIES, PolicySchema, SignalsSchema, TranscriptSchema, parseOrThrow } from './schema.js';
import type { Action, CallPriority, Policy, Signals, Turn } from './schema.js';
import { prepareTurn } from './text.js';

/** The engine's answer (issue 8). */
export interface Decision {
  readonly action: Action;
  /** The agent to hand to; for `escalate_human`, the policy's `human.target` when it has one. */
  readonly target?: string;
  readonly reason_code: string;
  readonly priority: CallPriority;
  /** The strength of the evidence behind the deciding rule, 0..1; 1 when no rule matched. */
  readonly confidence: number;
  /** Every rule that matched, the deciding one first (after the guard, when it intervened). */
  readonly matched: readonly MatchedRule[];
}

const rank = (p: CallPriority): number => CALL_PRIORITIES.indexOf(p);

export class PolicyEngine {
  readonly policy: Policy;
  private readonly evaluators: readonly Evaluator[];

  /** Validates the policy (parsed JSON) and compiles its rules; throws CONFIG when it is invalid. */
  constructor(policy: unknown) {
    this.policy = parseOrThrow(PolicySchema, policy, 'CONFIG', 'policy');
    const compiled = this.policy;
    this.evaluators = compiled.rules.map((rule) => compileRule(rule, compiled));
  }

  /** The agent the policy is evaluated for: `signals.current_agent`, else the policy's `agent`. */
  currentAgent(signals: Signals): string {
    const agent = signals.current_agent ?? this.policy.agent;
    if (agent === undefined) {
      throw new HandoffError('SCHEMA', 'signals.current_agent is required: the policy names no agent');
    }
    return agent;
  }

  /** Decides for the conversation so far; throws SCHEMA when the transcript or signals are invalid. */
  decide(transcript: unknown, signals: unknown = {}): Decision {
    const turns: Turn[] = parseOrThrow(TranscriptSchema, transcript, 'SCHEMA', 'transcript');
    const sig: Signals = parseOrThrow(SignalsSchema, signals, 'SCHEMA', 'signals');
    const currentAgent = this.currentAgent(sig);
    const ctx = {
      turns: turns.map((t, i) => prepareTurn(i, t.role, t.text)),
      signals: sig,
      currentAgent,
      humanTarget: this.policy.human.target,
    };
    const matches = this.evaluators
      .flatMap((evaluate) => evaluate(ctx))
      .sort((a, b) => (b.rule_priority ?? 0) - (a.rule_priority ?? 0));
    let priority = this.policy.default_priority;
    for (const m of matches) if (m.call_priority !== undefined && rank(m.call_priority) > rank(priority)) priority = m.call_priority;

    const winner = matches.find((m) => m.action !== 'none');
    if (winner === undefined || winner.action === 'none') {
      return { action: 'stay', reason_code: 'no_rule_matched', priority, confidence: 1, matched: matches };
    }
    const guard = this.pingPong(winner, sig);
    if (guard !== undefined) {
      return {
        action: guard.action === 'none' ? 'stay' : guard.action,
        ...(guard.target === undefined ? {} : { target: guard.target }),
        reason_code: guard.reason_code,
        priority,
        confidence: guard.confidence,
        matched: [guard, ...matches],
      };
    }
    return {
      action: winner.action,
      ...(winner.action !== 'stay' && winner.target !== undefined ? { target: winner.target } : {}),
      reason_code: winner.reason_code,
      priority,
      confidence: winner.confidence,
      matched: matches,
    };
  }

  private pingPong(winner: MatchedRule, signals: Signals): MatchedRule | undefined {
    if (winner.action !== 'handoff') return undefined;
    const pp = this.policy.ping_pong;
    const returning = signals.from_agent !== undefined && winner.target === signals.from_agent;
    const bounce = returning && !(pp.allow_explicit_return && winner.type === 'explicit_request');
    const hop = signals.hop ?? 0;
    if (!bounce && hop < pp.max_hops) return undefined;
    const outcome = bounce ? pp.on_bounce : pp.on_hop_limit;
    const human = this.policy.human.target;
    return {
      rule: bounce ? 'ping_pong' : 'hop_limit',
      type: 'ping_pong_guard',
      action: outcome,
      ...(outcome === 'escalate_human' && human !== undefined ? { target: human } : {}),
      reason_code: bounce ? 'ping_pong' : 'hop_limit',
      confidence: 1,
      evidence: bounce
        ? [{ kind: 'signal', signal: 'from_agent', value: signals.from_agent ?? '' }]
        : [{ kind: 'signal', signal: 'hop', value: hop, threshold: pp.max_hops }],
    };
  }
}
