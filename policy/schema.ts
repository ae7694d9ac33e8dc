/**
 * The policy file, the transcript and the signals, as zod schemas.
 *
 * A policy lists the agents a caller may ask for, what "a person" means for this set-up, the
 * ping-pong limits, and the rules. Every rule has an `id`, a `type` and an explicit integer
 * `priority`: when several rules match, the highest priority decides, and no two rules may share
 * a priority, so the order never depends on where a rule sits in the file.
 */
import * as z from 'zod';
import { HandoffError } from '../protocol/errors.js';
import type { ErrorCode } from '../protocol/errors.js';
import { BUILTIN_PACKS } from './lexicon.js';

/** How urgent a handoff is, lowest first; the decision's `priority` is one of these. */
export const CALL_PRIORITIES = Object.freeze(['low', 'normal', 'high', 'urgent'] as const);
export type CallPriority = (typeof CALL_PRIORITIES)[number];

/** What the decision tells the initiating agent to do. */
export const ACTIONS = Object.freeze(['stay', 'handoff', 'escalate_human'] as const);
export type Action = (typeof ACTIONS)[number];

/** The rule types of issue 8. */
export const RULE_TYPES = Object.freeze([
  'explicit_request',
  'low_confidence',
  'negative_sentiment',
  'conversation_loop',
  'regulated_topic',
  'value_threshold',
  'urgency',
  'capability',
] as const);
export type RuleType = (typeof RULE_TYPES)[number];

const AgentNameSchema = z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, {
  error: 'an agent name is a lower-case letter followed by up to 31 of [a-z0-9_-]',
});
const CodeSchema = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, { error: 'use snake_case: [a-z][a-z0-9_]{0,63}' });
const RuleIdSchema = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, { error: 'a rule id is [a-z][a-z0-9_-]{0,63}' });
const TermSchema = z
  .string()
  .trim()
  .regex(/^[\p{L}\p{N}' -]*[\p{L}\p{N}]\*?$/u, {
    error: 'a term is words separated by spaces (letters, digits, apostrophes, hyphens), optionally ending in *',
  });
const PhraseSchema = z
  .string()
  .trim()
  .regex(/^[\p{L}\p{N}' -]*[\p{L}\p{N}]$/u, { error: 'an alias is words separated by spaces (letters, digits, apostrophes, hyphens)' });
const CallPrioritySchema = z.enum(CALL_PRIORITIES, { error: `priority levels are ${CALL_PRIORITIES.join(', ')}` });
const PrioritySchema = z.int({ error: 'priority must be an integer (higher wins)' }).min(0).max(100_000);
const WindowSchema = z.int().min(0);

const LexiconSchema = z
  .strictObject({
    name: CodeSchema,
    builtin: z.boolean().default(true),
    terms: z.array(TermSchema).default([]),
    combos: z.array(z.strictObject({ any: z.array(TermSchema).min(1), with: z.array(TermSchema).min(1) })).default([]),
    exclude: z.array(TermSchema).default([]),
  })
  .superRefine((lex, ctx) => {
    const hasPack = lex.builtin && Object.hasOwn(BUILTIN_PACKS, lex.name);
    if (!hasPack && lex.terms.length === 0 && lex.combos.length === 0) {
      ctx.addIssue({
        code: 'custom',
        message: `topic '${lex.name}' has no terms and no built-in pack (built-in: ${Object.keys(BUILTIN_PACKS).join(', ')})`,
      });
    }
  });
export type LexiconSpec = z.infer<typeof LexiconSchema>;

const base = {
  id: RuleIdSchema,
  priority: PrioritySchema,
  reason_code: CodeSchema.optional(),
  call_priority: CallPrioritySchema.optional(),
};
const actionFields = {
  action: z.enum(ACTIONS, { error: `action is one of ${ACTIONS.join(', ')}` }).default('escalate_human'),
  target: AgentNameSchema.optional(),
};

const ExplicitRequestSchema = z.strictObject({
  ...base,
  type: z.literal('explicit_request'),
  humans: z.boolean().default(true),
  agents: z.boolean().default(true),
  human_terms: z.array(TermSchema).default([]),
  window: WindowSchema.default(3),
});
const LowConfidenceSchema = z.strictObject({
  ...base,
  type: z.literal('low_confidence'),
  threshold: z.number().min(0).max(1),
  floor: z.number().min(0).max(1).optional(),
  floor_priority: PrioritySchema.optional(),
  ...actionFields,
});
const NegativeSentimentSchema = z.strictObject({
  ...base,
  type: z.literal('negative_sentiment'),
  threshold: z.number().min(-1).max(1),
  ...actionFields,
});
const ConversationLoopSchema = z.strictObject({
  ...base,
  type: z.literal('conversation_loop'),
  window: z.int().min(2).default(8),
  repeat_count: z.int().min(2).default(3),
  similarity: z.number().gt(0).max(1).default(0.8),
  failure_count: z.int().min(1).default(3),
  ...actionFields,
});
const RegulatedTopicSchema = z.strictObject({
  ...base,
  type: z.literal('regulated_topic'),
  topics: z.array(LexiconSchema).min(1),
  window: WindowSchema.default(0),
});
const ValueThresholdSchema = z.strictObject({
  ...base,
  type: z.literal('value_threshold'),
  min_value: z.number().positive(),
  from_transcript: z.boolean().default(false),
  window: WindowSchema.default(0),
  ...actionFields,
});
const UrgencySchema = z.strictObject({
  ...base,
  type: z.literal('urgency'),
  topics: z.array(LexiconSchema).min(1),
  window: WindowSchema.default(0),
  action: z.enum(ACTIONS, { error: `action is one of ${ACTIONS.join(', ')}` }).optional(),
  target: AgentNameSchema.optional(),
});
const CapabilitySchema = z.strictObject({
  ...base,
  type: z.literal('capability'),
  routes: z.array(z.strictObject({ target: AgentNameSchema, topics: z.array(LexiconSchema).min(1) })).min(1),
  window: WindowSchema.default(2),
  min_hits: z.int().min(1).default(1),
});

const RuleSchema = z.discriminatedUnion(
  'type',
  [
    ExplicitRequestSchema,
    LowConfidenceSchema,
    NegativeSentimentSchema,
    ConversationLoopSchema,
    RegulatedTopicSchema,
    ValueThresholdSchema,
    UrgencySchema,
    CapabilitySchema,
  ],
  { error: `rule type is one of ${RULE_TYPES.join(', ')}` },
);
export type Rule = z.infer<typeof RuleSchema>;

const PingPongSchema = z.strictObject({
  max_hops: z.int().min(1).default(3),
  on_bounce: z.enum(['stay', 'escalate_human']).default('stay'),
  on_hop_limit: z.enum(['stay', 'escalate_human']).default('escalate_human'),
  allow_explicit_return: z.boolean().default(false),
});

/** The policy file (version 1). */
export const PolicySchema = z
  .strictObject({
    version: z.literal(1, { error: 'version must be 1' }),
    description: z.string().optional(),
    agent: AgentNameSchema.optional(),
    agents: z.record(AgentNameSchema, z.strictObject({
      description: z.string().optional(),
      aliases: z.array(PhraseSchema).default([]),
    })),
    human: z.strictObject({ target: AgentNameSchema.optional(), label: z.string().min(1).default('a person') }).prefault({}),
    default_priority: CallPrioritySchema.default('normal'),
    ping_pong: PingPongSchema.prefault({}),
    rules: z.array(RuleSchema).min(1, { error: 'a policy needs at least one rule' }),
  })
  .superRefine((policy, ctx) => {
    const agents = Object.keys(policy.agents);
    if (agents.length === 0) ctx.addIssue({ code: 'custom', path: ['agents'], message: 'name at least one agent' });
    if (policy.agent !== undefined && !agents.includes(policy.agent)) {
      ctx.addIssue({ code: 'custom', path: ['agent'], message: `agent '${policy.agent}' is not listed in agents` });
    }
    const ids = new Map<string, number>();
    const priorities = new Map<number, string>();
    const claimPriority = (priority: number, owner: string, path: (string | number)[]): void => {
      const other = priorities.get(priority);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path,
          message: `${owner} and ${other} share priority ${priority}; give each its own so that the order is explicit`,
        });
      } else {
        priorities.set(priority, owner);
      }
    };
    const checkTarget = (target: string | undefined, path: (string | number)[]): void => {
      if (target !== undefined && !agents.includes(target)) {
        ctx.addIssue({ code: 'custom', path, message: `target '${target}' is not listed in agents` });
      }
    };
    policy.rules.forEach((rule, i) => {
      const previous = ids.get(rule.id);
      if (previous !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['rules', i, 'id'], message: `rule id '${rule.id}' is also used by rules[${previous}]` });
      }
      ids.set(rule.id, i);
      claimPriority(rule.priority, `rule '${rule.id}'`, ['rules', i, 'priority']);
      if (rule.type === 'capability') {
        rule.routes.forEach((route, r) => checkTarget(route.target, ['rules', i, 'routes', r, 'target']));
        return;
      }
      if (rule.type === 'low_confidence') {
        if (rule.floor !== undefined && rule.floor >= rule.threshold) {
          ctx.addIssue({ code: 'custom', path: ['rules', i, 'floor'], message: 'floor must be below threshold' });
        }
        if (rule.floor_priority !== undefined) {
          if (rule.floor === undefined) {
            ctx.addIssue({ code: 'custom', path: ['rules', i, 'floor_priority'], message: 'floor_priority needs a floor' });
          }
          claimPriority(rule.floor_priority, `the floor of rule '${rule.id}'`, ['rules', i, 'floor_priority']);
        }
      }
      if ('action' in rule && rule.action !== undefined) {
        if (rule.action === 'handoff' && rule.target === undefined) {
          ctx.addIssue({ code: 'custom', path: ['rules', i, 'target'], message: 'a handoff action needs a target' });
        }
        if (rule.action !== 'handoff' && rule.target !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['rules', i, 'target'], message: `target only applies to action 'handoff'` });
        }
        checkTarget(rule.target, ['rules', i, 'target']);
      } else if ('target' in rule && rule.target !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['rules', i, 'target'], message: 'target needs an action' });
      }
    });
  });
export type Policy = z.infer<typeof PolicySchema>;

/** One transcript turn, as in the payload (DESIGN.md §3.1); other fields are ignored. */
export const TurnSchema = z.object({
  role: z.enum(['user', 'assistant', 'system'], { error: 'role is user, assistant or system' }),
  text: z.string(),
  ts: z.string().optional(),
});
export type Turn = z.infer<typeof TurnSchema>;

/** The conversation so far. */
export const TranscriptSchema = z.array(TurnSchema);

/** Facts the initiating agent knows besides the words. */
export const SignalsSchema = z.strictObject({
  /** The agent's confidence that it understood the caller, 0..1. */
  confidence: z.number().min(0).max(1).optional(),
  /** The caller's sentiment, -1 (very negative) .. 1 (very positive). */
  sentiment: z.number().min(-1).max(1).optional(),
  /** The value at stake (for sales), in the policy's currency. */
  value: z.number().min(0).optional(),
  /** The agent that handed this caller to the current one, if any. */
  from_agent: AgentNameSchema.optional(),
  /** Handoffs so far in this conversation. */
  hop: z.int().min(0).optional(),
  /** The agent evaluating the policy; defaults to the policy's `agent`. */
  current_agent: AgentNameSchema.optional(),
});
export type Signals = z.infer<typeof SignalsSchema>;

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
      return path === '' ? issue.message : `${path}: ${issue.message}`;
    })
    .join('; ');
}

/** Parses `value` with `schema`, or throws `HandoffError(code)` naming every problem and where it is. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, code: ErrorCode, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new HandoffError(code, `invalid ${what}: ${describeIssues(result.error)}`, { cause: result.error });
  return result.data;
}
