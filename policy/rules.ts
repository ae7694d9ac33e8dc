/**
 * One evaluator per rule type. `compileRule` turns a validated rule into a function from the
 * prepared conversation to the rule's matches; all regular expressions are built once, there.
 * Evaluators are pure: the same conversation and signals always give the same matches.
 *
 * Which words count (all rule types that read words):
 * - only the caller's (`user`) turns, the last `window` of them (0 = all);
 * - quoted passages never count (text.ts blanks them);
 * - a hit negated by the words before it in its clause does not count ("I don't need a human");
 * - a request made hypothetical ("if I need a person later") does not count;
 * - a later retraction ("actually, never mind") cancels earlier requests, and a later resolution
 *   ("it's gone now", "they already refunded it") cancels earlier urgency and regulated hits.
 */
import type { Action, CallPriority, LexiconSpec, Policy, Rule, RuleType, Signals } from './schema.js';
import {
  AFFIRMATIVE,
  BUILTIN_PACKS,
  DECLINE,
  FAILURE_PHRASES,
  FRUSTRATION_PHRASES,
  HUMAN_ADJECTIVES,
  HUMAN_NOUNS_STRONG,
  HUMAN_NOUNS_WEAK,
  RESOLUTION,
  RETRACTION,
} from './lexicon.js';
import {
  conditionalBefore,
  hitAt,
  isGeneralQuestion,
  locate,
  negatedBefore,
  normalise,
  similarity,
  termSource,
  wordRegex,
} from './text.js';
import type { PreparedTurn, Role, Span, TextHit } from './text.js';

/** Words in the transcript that made a rule match. */
export interface TextEvidence {
  readonly kind: 'text';
  readonly turn: number;
  readonly role: Role;
  readonly words: string;
  readonly excerpt: string;
  readonly topic?: string;
}

/** A signal value that made a rule match, with the limit it crossed. */
export interface SignalEvidence {
  readonly kind: 'signal';
  readonly signal: 'confidence' | 'sentiment' | 'value' | 'hop' | 'from_agent';
  readonly value: number | string;
  readonly threshold?: number;
}

export type Evidence = TextEvidence | SignalEvidence;

/** One rule that matched, with what it would do and why. */
export interface MatchedRule {
  readonly rule: string;
  readonly type: RuleType | 'ping_pong_guard';
  /** The rule's priority; absent for the ping-pong guard, which overrides every rule. */
  readonly rule_priority?: number;
  /** `none` for a rule that only raises the call priority (an urgency rule without an action). */
  readonly action: Action | 'none';
  readonly target?: string;
  readonly reason_code: string;
  readonly call_priority?: CallPriority;
  /** How strong the evidence is, 0..1: fixed per kind of text evidence, growing with the distance past the limit for signals. */
  readonly confidence: number;
  readonly evidence: readonly Evidence[];
}

/** What every evaluator reads. */
export interface EvalContext {
  readonly turns: readonly PreparedTurn[];
  readonly signals: Signals;
  readonly currentAgent: string;
  readonly humanTarget: string | undefined;
}

export type Evaluator = (ctx: EvalContext) => MatchedRule[];

const round = (n: number): number => Math.round(n * 1000) / 1000;
const clamp01 = (n: number): number => Math.min(1, Math.max(0, n));

function lastUserTurns(ctx: EvalContext, window: number): PreparedTurn[] {
  const users = ctx.turns.filter((t) => t.role === 'user');
  return window === 0 ? users : users.slice(-window);
}

function textEvidence(hit: TextHit, topic?: string): TextEvidence {
  return { kind: 'text', turn: hit.turn, role: hit.role, words: hit.words, excerpt: hit.excerpt, ...(topic === undefined ? {} : { topic }) };
}

/** The rule's action, or nothing when it would hand the caller to the agent already talking. */
function resolveAction(
  ctx: EvalContext,
  action: Action,
  target: string | undefined,
): { action: Action; target?: string } | undefined {
  if (action === 'handoff') return target === undefined || target === ctx.currentAgent ? undefined : { action, target };
  if (action === 'escalate_human') return ctx.humanTarget === undefined ? { action } : { action, target: ctx.humanTarget };
  return { action };
}

interface Outcome {
  readonly action: Action | 'none';
  readonly target?: string;
}

/**
 * The match of `rule` as a list of one, or an empty list when there is no outcome (a handoff to
 * the agent already talking). The policy's `reason_code` and `call_priority` win over the
 * evaluator's defaults.
 */
function matchOf(
  rule: Rule,
  outcome: Outcome | undefined,
  found: { reason: string; confidence: number; evidence: readonly Evidence[]; rulePriority?: number; callPriority?: CallPriority },
): MatchedRule[] {
  if (outcome === undefined) return [];
  const callPriority = rule.call_priority ?? found.callPriority;
  return [
    {
      rule: rule.id,
      type: rule.type,
      rule_priority: found.rulePriority ?? rule.priority,
      ...outcome,
      reason_code: rule.reason_code ?? found.reason,
      ...(callPriority === undefined ? {} : { call_priority: callPriority }),
      confidence: round(found.confidence),
      evidence: found.evidence,
    },
  ];
}

function offsetsOf(regex: RegExp, text: string): Span[] {
  return [...text.matchAll(regex)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
}

// ---------------------------------------------------------------------------------------------
// Topic word lists (regulated topics, urgency, capability)

interface CompiledLexicon {
  readonly name: string;
  readonly terms: RegExp | undefined;
  readonly combos: readonly { readonly any: RegExp; readonly with: RegExp }[];
  readonly exclude: RegExp | undefined;
}

function compileLexicon(spec: LexiconSpec): CompiledLexicon {
  const pack = spec.builtin ? BUILTIN_PACKS[spec.name] : undefined;
  const terms = [...(pack?.terms ?? []), ...spec.terms.map(termSource)];
  const exclude = [...(pack?.exclude ?? []), ...spec.exclude.map(termSource)];
  const combos = [
    ...(pack?.combos ?? []).map((c) => ({ any: wordRegex(c.any), with: wordRegex(c.with) })),
    ...spec.combos.map((c) => ({ any: wordRegex(c.any.map(termSource)), with: wordRegex(c.with.map(termSource)) })),
  ];
  return {
    name: spec.name,
    terms: terms.length > 0 ? wordRegex(terms) : undefined,
    combos,
    exclude: exclude.length > 0 ? wordRegex(exclude) : undefined,
  };
}

interface LexiconOptions {
  /** Skip general questions that are not about the caller ("Will the filling hurt?"). */
  readonly skipGeneralQuestions: boolean;
  /** Drop hits followed by a resolution in the same turn ("…but it's gone now"). */
  readonly resolvable: boolean;
}

const RESOLUTION_REGEX = wordRegex(RESOLUTION);

function lexiconHits(lex: CompiledLexicon, turn: PreparedTurn, options: LexiconOptions): TextHit[] {
  const excluded = lex.exclude === undefined ? [] : offsetsOf(lex.exclude, turn.text);
  const accept = (start: number, end: number): TextHit | undefined => {
    if (excluded.some((x) => x.start < end && start < x.end)) return undefined;
    const where = locate(turn, start);
    if (where === undefined) return undefined;
    if (negatedBefore(turn.text.slice(where.clause.start, start))) return undefined;
    if (options.skipGeneralQuestions && isGeneralQuestion(turn, where.sentence)) return undefined;
    return hitAt(turn, start, end, where.clause);
  };
  const hits: TextHit[] = [];
  if (lex.terms !== undefined) {
    for (const span of offsetsOf(lex.terms, turn.text)) {
      const hit = accept(span.start, span.end);
      if (hit !== undefined) hits.push(hit);
    }
  }
  for (const combo of lex.combos) {
    // A combination counts within a sentence or two neighbouring ones, which is as far as "it"
    // usually reaches back: "About the bill? I think there's a mistake on it."
    for (let i = 0; i < turn.sentences.length; i++) {
      const head = turn.sentences[i];
      if (head === undefined) continue;
      const sentence = { start: head.start, end: (turn.sentences[i + 1] ?? head).end };
      const body = turn.text.slice(sentence.start, sentence.end);
      const accepted = (regex: RegExp): TextHit[] =>
        offsetsOf(regex, body).flatMap((span) => accept(sentence.start + span.start, sentence.start + span.end) ?? []);
      // Two different words: "refund" is both a money thing and a complaint, but alone it is
      // not a dispute ("what is your refund policy").
      const bs = accepted(combo.with);
      let pair: [TextHit, TextHit] | undefined;
      for (const a of accepted(combo.any)) {
        const b = bs.find((h) => h.end <= a.start || a.end <= h.start);
        if (b !== undefined) {
          pair = a.start <= b.start ? [a, b] : [b, a];
          break;
        }
      }
      if (pair === undefined) continue;
      const [x, y] = pair;
      if (hits.some((h) => h.start < y.end && x.start < h.end)) continue;
      hits.push({
        turn: turn.index,
        role: turn.role,
        start: x.start,
        end: y.end,
        words: x.end >= y.start ? turn.original.slice(x.start, y.end).trim() : `${x.words} … ${y.words}`,
        excerpt: turn.original.slice(sentence.start, sentence.end).trim(),
      });
    }
  }
  if (options.resolvable) {
    const resolvedAt = offsetsOf(RESOLUTION_REGEX, turn.text).map((s) => s.start);
    const lastResolution = Math.max(-1, ...resolvedAt);
    return hits.filter((h) => h.end > lastResolution).sort((p, q) => p.start - q.start);
  }
  return hits.sort((p, q) => p.start - q.start);
}

interface TopicScore {
  readonly topic: string;
  readonly hits: TextHit[];
}

/** Hits per topic over the window, in topic order. */
function topicHits(
  lexicons: readonly CompiledLexicon[],
  turns: readonly PreparedTurn[],
  options: LexiconOptions,
): TopicScore[] {
  return lexicons.map((lex) => ({ topic: lex.name, hits: turns.flatMap((t) => lexiconHits(lex, t, options)) }));
}

/** The topic with the most hits (the first listed on a tie), if any topic has a hit. */
function strongestTopic(scores: readonly TopicScore[]): TopicScore | undefined {
  let best: TopicScore | undefined;
  for (const s of scores) if (s.hits.length > 0 && (best === undefined || s.hits.length > best.hits.length)) best = s;
  return best;
}

// ---------------------------------------------------------------------------------------------
// explicit_request

type RequestTarget = { kind: 'human' } | { kind: 'agent'; agent: string };

interface Request {
  readonly target: RequestTarget;
  readonly hit: TextHit;
  readonly strength: number;
}

const DETERMINERS = '(?:a|an|the|some|any|your|our|another|one of (?:your|the|our))';
// One free word before a human noun ("the office manager", "a billing person"), but not a
// possessive: "let me talk to my manager first" is not a request for one of ours.
const FREE_MODIFIER = "(?:(?!(?:my|his|her|their|its|me|him|them|this|that|it|to|for|with|and|or)\\s)[\\p{L}][\\p{L}']*\\s+)";
// Someone else does the talking or wanting: "did you talk to gordon", "she wants a person".
const OTHER_SUBJECT = /(?:^|\s)(?:you|he|she|they|it|did i|have i)(?:\s+(?:already|also|just|ever|all|both|really|should|could|can|will|would|might|must|to|not))*\s*$/;
// In causative frames ("could you get gordon on the line", "can you have alice call me") the
// caller asks *us* to bring someone in, so only a third person is someone else.
const THIRD_PERSON_SUBJECT = /(?:^|\s)(?:he|she|they|it)(?:\s+(?:already|also|just|ever|really|should|could|can|will|would|might|must|to|not))*\s*$/;
const COMPOUND_HEADS = '(?:appointments?|visits?|bills?|fees?|notes?|numbers?|offices?|chairs?|teams?|referrals?|recommendations?|schedules?|hours|rates?)';
const ADVERBS = '(?:just|really|much|rather|actually|simply|honestly|very much|sooner|prefer to)';
// What someone brought in is asked to do ("have alice call me", "can a human look at this").
// A closed list, because the word after "have a human …" may just as well be a noun ("have a
// human accountant").
const REQUEST_VERBS = '(?:to|on|for me|call|ring|phone|help|handle|take|look|check|do|book|set|sort|deal|fix|contact|join|come|pick|review|add|move|schedule|send|answer|talk|speak|explain|walk|text|message|email|reach|follow|go|see|make|find|change|cancel|update|arrange|confirm|tell|give|jump|hop|step|get|sign|approve|organi[sz]e|plan)';

function alternation(items: readonly string[]): string {
  return `(?:${[...items].sort((a, b) => b.length - a.length).join('|')})`;
}

function compileExplicitRequest(
  rule: Extract<Rule, { type: 'explicit_request' }>,
  policy: Policy,
): Evaluator {
  const aliasToAgent = new Map<string, string>();
  for (const [name, agent] of Object.entries(policy.agents)) {
    aliasToAgent.set(name, name);
    for (const alias of agent.aliases) aliasToAgent.set(normalise(alias).trim().replace(/\s+/g, ' '), name);
  }
  const agentNouns = rule.agents ? [...aliasToAgent.keys()].map(termSource) : [];
  const strong = rule.humans ? [...HUMAN_NOUNS_STRONG, ...rule.human_terms.map(termSource)] : [];
  const weak = rule.humans ? HUMAN_NOUNS_WEAK : [];
  const adjectives = `(?:${alternation(HUMAN_ADJECTIVES)}\\s+)*`;
  // Not a possessive ("gordon's spreadsheet") and not the first half of a compound noun
  // ("a dentist appointment", "the hygienist visit").
  const tail = `(?!\\s*'s)(?![\\p{L}\\p{N}'])(?!\\s+${COMPOUND_HEADS}(?![\\p{L}]))`;
  const never = '(?!)';
  const group = (name: string, nouns: readonly string[], modifier: string): string =>
    nouns.length === 0 ? never : `${modifier}(?<${name}>${alternation(nouns)})${tail}`;
  // The target phrase: determiner, adjectives, then an agent name, a human noun, or (only in
  // talk/transfer frames) a weak noun such as "someone".
  const target = (withWeak: boolean): string =>
    `(?:${DETERMINERS}\\s+)?${adjectives}(?:${group('agent', agentNouns, '')}|${group('strong', strong, `${FREE_MODIFIER}?`)}${withWeak ? `|${group('weak', weak, '')}` : ''})`;
  // A frame starts at a word boundary, or at the "'d" of "I'd like", which follows a letter.
  const frame = (source: string): RegExp => new RegExp(`(?:(?<![\\p{L}\\p{N}'])|(?='d\\s))${source}`, 'gu');
  const T = target(true);
  const S = target(false);
  const frames: { regex: RegExp; subjectGuard: RegExp | undefined }[] = [
    // "let me talk to alice", "can I speak with a person", "I'd rather deal with gordon"
    {
      regex: frame(`(?:talk|speak|chat|deal|work|get through|be put through|be connected|be transferred|get transferred|get connected|get put through|get in touch|be in touch|have a (?:quick |brief )?(?:word|chat|talk))\\s+(?:(?:back|directly|right now|now|again|instead|personally|just)\\s+)*(?:to|with)\\s+${T}`),
      subjectGuard: OTHER_SUBJECT,
    },
    // "transfer me to an agent", "put me through to gordon", "hand me back to alice"
    {
      regex: frame(`(?:transfer|connect|put|patch|send|switch|forward|pass|hand|route|direct|redirect|bounce|take|get|move|hook)\\s+(?:me|us)\\s+(?:(?:over|through|back|across|along|on|up|straight|directly|right|in touch)\\s+)*(?:to|with|onto)\\s+${T}`),
      subjectGuard: undefined,
    },
    // "I want a human", "get me a real person", "can I get alice"
    {
      regex: frame(`(?:want|need|(?:would|'d)\\s+(?:${ADVERBS}\\s+)*(?:like|prefer|love)|prefer|demand|request(?:ing)?|ask(?:ed|ing)?\\s+for|looking\\s+for|insist(?:ing)?\\s+on|rather\\s+have|wanna|give\\s+me|get\\s+me|bring\\s+me|find\\s+me|gimme|(?:can|could|may)\\s+(?:i|we)\\s+(?:get|have))\\s+(?:to\\s+(?:have|get)\\s+)?${S}`),
      subjectGuard: OTHER_SUBJECT,
    },
    // "switch to alice", "escalate this to a human", "go back to bob"
    {
      regex: frame(`(?:(?:go|get|come|switch)\\s+(?:back|over)\\s+to|(?:switch|escalate|transfer|hand|pass|send|kick|bump|put)\\s+(?:(?:this|it|that|the\\s+call|my\\s+call)\\s+)?(?:(?:back|over|up|on|along|across|through)\\s+)*to)\\s+${S}`),
      subjectGuard: THIRD_PERSON_SUBJECT,
    },
    // "can alice set up a standup", "have alice call me back", "can a human call me"
    {
      regex: frame(`(?:can|could|would|will|may|should|might|please|let|have|ask|get|put)\\s+${S}\\s+(?:(?:please|just|also|quickly|maybe|then)\\s+)*${REQUEST_VERBS}(?![\\p{L}])`),
      subjectGuard: THIRD_PERSON_SUBJECT,
    },
    // "is there a person I can talk to", "is sven around"
    // A weak noun needs more than existence: "is there someone I can talk to" asks for a person,
    // "are there people working there" asks about the set-up.
    { regex: frame(`(?:is|isn't|are|aren't)\\s+there\\s+(?:(?:no|not|even|really|actually)\\s+)*${S}`), subjectGuard: undefined },
    {
      regex: frame(`(?:is|isn't|are|aren't)\\s+there\\s+(?:(?:no|not|even|really|actually)\\s+)*${T}\\s+(?:(?:i|we)\\s+(?:can|could)\\s+(?:\\p{L}+\\s+)?(?:talk|speak|chat|call|reach)|available|to (?:talk|speak)|who (?:can|could) help)(?![\\p{L}])`),
      subjectGuard: undefined,
    },
    {
      regex: frame(`(?:is|are)\\s+${S}\\s+(?:available|around|there|in|free|here|on the line|about|awake|reachable)(?![\\p{L}])`),
      subjectGuard: undefined,
    },
  ];
  // A sentence that is nothing but the target: "Operator.", "Human please!", "Gordon, please."
  const shortForm = new RegExp(
    `^(?:(?:please|just|ok|okay|yes|yeah|hello|hi|hey|so)\\s+)*(?<lead>(?:to|with)\\s+)?${S}(?<trail>(?:\\s+(?:please|now|right now|immediately|thanks|thank you))*)$`,
    'u',
  );
  const offer = new RegExp(
    `(?:(?:transfer|connect|put|pass|hand|send|switch|get)\\s+you\\s+(?:(?:over|through|back|across)\\s+)*(?:to|with)|(?:talk|speak|chat)\\s+(?:to|with)|(?:get|bring|fetch|grab|call in|loop in)(?:\\s+you)?)\\s+${S}`,
    'u',
  );
  const askedWho = /\bwho\b[^?]*\b(?:speak|talk|transfer|connect|put you through|like to reach)/;
  const retraction = wordRegex(RETRACTION);

  const resolve = (groups: Record<string, string | undefined> | undefined): RequestTarget | undefined => {
    if (groups?.['agent'] !== undefined) {
      const agent = aliasToAgent.get(groups['agent'].replace(/\s+/g, ' '));
      return agent === undefined ? undefined : { kind: 'agent', agent };
    }
    if (groups?.['strong'] !== undefined || groups?.['weak'] !== undefined) return { kind: 'human' };
    return undefined;
  };

  const requestsIn = (turn: PreparedTurn, previous: PreparedTurn | undefined): Request[] => {
    const found: Request[] = [];
    for (const { regex, subjectGuard } of frames) {
      for (const m of turn.text.matchAll(regex)) {
        const where = locate(turn, m.index);
        const target = resolve(m.groups);
        if (where === undefined || target === undefined) continue;
        const end = m.index + m[0].length;
        if (end > where.clause.end) continue;
        const prefix = turn.text.slice(where.clause.start, m.index);
        if (negatedBefore(prefix) || conditionalBefore(prefix)) continue;
        if (subjectGuard?.test(prefix) === true) continue;
        found.push({ target, hit: hitAt(turn, m.index, end, where.clause), strength: 0.95 });
      }
    }
    const whoAsked = previous?.role === 'assistant' && askedWho.test(previous.text);
    for (const sentence of turn.sentences) {
      const bare = turn.text.slice(sentence.start, sentence.end).replace(/[,!]/g, ' ').replace(/\s+/g, ' ').trim();
      const m = shortForm.exec(bare);
      const target = resolve(m?.groups);
      if (m === null || target === undefined) continue;
      // A bare name is only a request when it is clearly one: "Gordon, please", "to alice", or
      // the answer to "who would you like to speak to?".
      const clear = target.kind === 'human' || whoAsked || m.groups?.['lead'] !== undefined || (m.groups?.['trail'] ?? '') !== '';
      if (!clear) continue;
      found.push({ target, hit: hitAt(turn, sentence.start, sentence.end, sentence), strength: 0.9 });
    }
    if (previous?.role === 'assistant') {
      const offered = offer.exec(previous.text);
      const target = resolve(offered?.groups);
      const reply = turn.text.trim();
      if (offered !== null && target !== undefined && AFFIRMATIVE.test(reply) && !DECLINE.test(reply)) {
        const first = turn.sentences[0];
        if (first !== undefined) {
          found.push({ target, hit: hitAt(turn, first.start, first.end, first), strength: 0.9 });
        }
      }
    }
    return found.sort((a, b) => a.hit.start - b.hit.start);
  };

  return (ctx) => {
    const window = lastUserTurns(ctx, rule.window);
    let requests: Request[] = [];
    for (const turn of window) {
      const previous = ctx.turns[turn.index - 1];
      requests.push(...requestsIn(turn, previous));
      for (const r of offsetsOf(retraction, turn.text)) {
        // A retraction cancels every earlier request, in this turn and before it.
        requests = requests.filter((q) => q.hit.turn === turn.index && q.hit.end > r.start);
      }
    }
    const usable = requests.filter((q) => q.target.kind === 'human' || q.target.agent !== ctx.currentAgent);
    const latest = usable.at(-1);
    if (latest === undefined) return [];
    const human = latest.target.kind === 'human';
    const outcome = human
      ? resolveAction(ctx, 'escalate_human', undefined)
      : resolveAction(ctx, 'handoff', latest.target.kind === 'agent' ? latest.target.agent : undefined);
    return matchOf(rule, outcome, {
      reason: human ? 'explicit_request_human' : 'explicit_request_agent',
      confidence: latest.strength,
      evidence: [textEvidence(latest.hit)],
    });
  };
}

// ---------------------------------------------------------------------------------------------
// Signal rules

function compileLowConfidence(rule: Extract<Rule, { type: 'low_confidence' }>): Evaluator {
  return (ctx) => {
    const confidence = ctx.signals.confidence;
    if (confidence === undefined || confidence >= rule.threshold) return [];
    const belowFloor = rule.floor !== undefined && confidence < rule.floor;
    const limit = belowFloor && rule.floor !== undefined ? rule.floor : rule.threshold;
    const outcome = belowFloor ? resolveAction(ctx, 'escalate_human', undefined) : resolveAction(ctx, rule.action, rule.target);
    return matchOf(rule, outcome, {
      reason: belowFloor ? 'confidence_floor' : 'low_confidence',
      ...(belowFloor && rule.floor_priority !== undefined ? { rulePriority: rule.floor_priority } : {}),
      // Strength grows with the distance below the limit: 0.5 just under it, 1 at zero.
      confidence: 0.5 + (0.5 * (limit - confidence)) / limit,
      evidence: [{ kind: 'signal', signal: 'confidence', value: confidence, threshold: limit }],
    });
  };
}

function compileNegativeSentiment(rule: Extract<Rule, { type: 'negative_sentiment' }>): Evaluator {
  return (ctx) => {
    const sentiment = ctx.signals.sentiment;
    if (sentiment === undefined || sentiment > rule.threshold) return [];
    return matchOf(rule, resolveAction(ctx, rule.action, rule.target), {
      reason: 'negative_sentiment',
      confidence: 0.5 + (0.5 * (rule.threshold - sentiment)) / (rule.threshold + 1 || 1),
      evidence: [{ kind: 'signal', signal: 'sentiment', value: sentiment, threshold: rule.threshold }],
    });
  };
}

// ---------------------------------------------------------------------------------------------
// value_threshold

const CURRENCY_WORD = '(?:dollars?|euros?|pounds?|bucks|usd|eur|gbp|sek|kronor|kr)';
const SCALE: Readonly<Record<string, number>> = { k: 1_000, thousand: 1_000, grand: 1_000, m: 1_000_000, million: 1_000_000 };
const NUMBER_WORDS: Readonly<Record<string, number>> = {
  a: 1, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, eleven: 11,
  twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18, nineteen: 19,
  twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90, hundred: 100,
};
const DIGIT_AMOUNT = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:(?<sym>[$€£])\\s?(?<n1>\\d[\\d,]*(?:\\.\\d+)?)(?:\\s?(?<s1>k|m|thousand|million|grand)(?![\\p{L}]))?|(?<n2>\\d[\\d,]*(?:\\.\\d+)?)\\s?(?:(?<s2>k|m|thousand|million|grand)\\s?)?${CURRENCY_WORD}(?![\\p{L}])|(?<n3>\\d[\\d,]*(?:\\.\\d+)?)\\s?(?<s3>k|grand)(?![\\p{L}]))`,
  'gu',
);
const WORD_AMOUNT = new RegExp(
  `(?<![\\p{L}])(?<words>(?:(?:${Object.keys(NUMBER_WORDS).join('|')})\\s+)+)(?<scale>thousand|grand|million)(?:\\s+${CURRENCY_WORD})?(?![\\p{L}])`,
  'gu',
);

function amountsIn(turn: PreparedTurn): { value: number; hit: TextHit }[] {
  const found: { value: number; hit: TextHit }[] = [];
  const push = (value: number, start: number, end: number): void => {
    const where = locate(turn, start);
    if (where !== undefined && Number.isFinite(value)) found.push({ value, hit: hitAt(turn, start, end, where.clause) });
  };
  for (const m of turn.text.matchAll(DIGIT_AMOUNT)) {
    const g = m.groups ?? {};
    const digits = g['n1'] ?? g['n2'] ?? g['n3'] ?? '';
    const scale = SCALE[g['s1'] ?? g['s2'] ?? g['s3'] ?? ''] ?? 1;
    push(Number(digits.replace(/,/g, '')) * scale, m.index, m.index + m[0].length);
  }
  for (const m of turn.text.matchAll(WORD_AMOUNT)) {
    const words = (m.groups?.['words'] ?? '').trim().split(/\s+/);
    let n = 0;
    for (const w of words) n = w === 'hundred' ? Math.max(n, 1) * 100 : n + (NUMBER_WORDS[w] ?? 0);
    push(n * (SCALE[m.groups?.['scale'] ?? ''] ?? 1), m.index, m.index + m[0].length);
  }
  return found;
}

function compileValueThreshold(rule: Extract<Rule, { type: 'value_threshold' }>): Evaluator {
  return (ctx) => {
    const evidence: Evidence[] = [];
    let value = -Infinity;
    if (ctx.signals.value !== undefined && ctx.signals.value >= rule.min_value) {
      value = ctx.signals.value;
      evidence.push({ kind: 'signal', signal: 'value', value: ctx.signals.value, threshold: rule.min_value });
    }
    if (rule.from_transcript) {
      for (const turn of lastUserTurns(ctx, rule.window)) {
        for (const amount of amountsIn(turn)) {
          if (amount.value < rule.min_value) continue;
          value = Math.max(value, amount.value);
          evidence.push(textEvidence(amount.hit));
        }
      }
    }
    if (evidence.length === 0) return [];
    return matchOf(rule, resolveAction(ctx, rule.action, rule.target), {
      reason: 'high_value',
      // Twice the threshold or more is as strong as the rule gets.
      confidence: 0.5 + 0.5 * clamp01((value - rule.min_value) / rule.min_value),
      evidence,
    });
  };
}

// ---------------------------------------------------------------------------------------------
// conversation_loop

function compileConversationLoop(rule: Extract<Rule, { type: 'conversation_loop' }>): Evaluator {
  const failure = wordRegex(FAILURE_PHRASES);
  const frustration = wordRegex(FRUSTRATION_PHRASES);
  const has = (regex: RegExp, turn: PreparedTurn): boolean => offsetsOf(regex, turn.text).length > 0;

  /** Trailing run of turns of `role` that resemble the last one of them. */
  const repeats = (turns: readonly PreparedTurn[], role: Role): PreparedTurn[] => {
    const own = turns.filter((t) => t.role === role && t.original.trim() !== '');
    const last = own.at(-1);
    if (last === undefined) return [];
    const run = [last];
    for (let i = own.length - 2; i >= 0; i--) {
      const turn = own[i];
      if (turn === undefined || similarity(turn.original, last.original) < rule.similarity) break;
      run.unshift(turn);
    }
    return run;
  };

  return (ctx) => {
    const recent = ctx.turns.filter((t) => t.role !== 'system').slice(-rule.window);
    // Each exchange is an assistant turn and the caller's reply to it. Counting from the end,
    // every "sorry, I didn't catch that" and every "you're not listening" adds one, until an
    // exchange with neither.
    const failed: PreparedTurn[] = [];
    let failures = 0;
    for (let i = recent.length - 1; i >= 0; i--) {
      const turn = recent[i];
      if (turn === undefined || turn.role !== 'assistant') continue;
      const reply = recent.slice(i + 1).find((t) => t.role === 'user');
      const own = has(failure, turn) ? 1 : 0;
      const theirs = reply !== undefined && has(frustration, reply) ? 1 : 0;
      if (own + theirs === 0) break;
      failures += own + theirs;
      if (own > 0) failed.unshift(turn);
      if (theirs > 0 && reply !== undefined) failed.push(reply);
    }
    const assistantRun = repeats(recent, 'assistant');
    const userRun = repeats(recent, 'user');
    let evidenceTurns: PreparedTurn[] = [];
    let count = 0;
    let limit = 0;
    if (failures >= rule.failure_count) [evidenceTurns, count, limit] = [failed, failures, rule.failure_count];
    else if (assistantRun.length >= rule.repeat_count) [evidenceTurns, count, limit] = [assistantRun, assistantRun.length, rule.repeat_count];
    else if (userRun.length >= rule.repeat_count) [evidenceTurns, count, limit] = [userRun, userRun.length, rule.repeat_count];
    else return [];
    return matchOf(rule, resolveAction(ctx, rule.action, rule.target), {
      reason: 'conversation_loop',
      confidence: Math.min(0.95, 0.7 + 0.1 * (count - limit)),
      evidence: evidenceTurns.map((t) => ({ kind: 'text', turn: t.index, role: t.role, words: t.original.trim(), excerpt: t.original.trim() })),
    });
  };
}

// ---------------------------------------------------------------------------------------------
// regulated_topic, urgency, capability

function compileRegulatedTopic(rule: Extract<Rule, { type: 'regulated_topic' }>): Evaluator {
  const lexicons = rule.topics.map(compileLexicon);
  return (ctx) => {
    const best = strongestTopic(topicHits(lexicons, lastUserTurns(ctx, rule.window), { skipGeneralQuestions: false, resolvable: true }));
    if (best === undefined) return [];
    return matchOf(rule, resolveAction(ctx, 'escalate_human', undefined), {
      reason: `regulated_${best.topic}`,
      confidence: Math.min(0.95, 0.8 + 0.05 * best.hits.length),
      evidence: best.hits.slice(0, 3).map((h) => textEvidence(h, best.topic)),
    });
  };
}

function compileUrgency(rule: Extract<Rule, { type: 'urgency' }>): Evaluator {
  const lexicons = rule.topics.map(compileLexicon);
  return (ctx) => {
    const best = strongestTopic(topicHits(lexicons, lastUserTurns(ctx, rule.window), { skipGeneralQuestions: true, resolvable: true }));
    if (best === undefined) return [];
    const outcome = rule.action === undefined ? { action: 'none' as const } : resolveAction(ctx, rule.action, rule.target);
    return matchOf(rule, outcome, {
      reason: `urgent_${best.topic}`,
      callPriority: rule.call_priority ?? 'urgent',
      confidence: Math.min(0.95, 0.8 + 0.05 * best.hits.length),
      evidence: best.hits.slice(0, 3).map((h) => textEvidence(h, best.topic)),
    });
  };
}

function compileCapability(rule: Extract<Rule, { type: 'capability' }>): Evaluator {
  const routes = rule.routes.map((r) => ({ target: r.target, lexicons: r.topics.map(compileLexicon) }));
  const options = { skipGeneralQuestions: false, resolvable: false };
  return (ctx) => {
    const turns = lastUserTurns(ctx, rule.window);
    const latest = turns.at(-1)?.index;
    // The caller's latest turn counts double, so that the topic follows the conversation.
    const scored = routes.map((route) => {
      const best = strongestTopic(topicHits(route.lexicons, turns, options));
      const hits = best?.hits ?? [];
      const score = hits.reduce((sum, h) => sum + (h.turn === latest ? 2 : 1), 0);
      return { target: route.target, topic: best?.topic, hits, score };
    });
    const eligible = scored.filter((s) => s.hits.length >= rule.min_hits);
    const top = Math.max(0, ...eligible.map((s) => s.score));
    const tied = eligible.filter((s) => s.score === top);
    // On a tie the current agent keeps the caller; otherwise the first route listed wins.
    const winner = tied.find((s) => s.target === ctx.currentAgent) ?? tied[0];
    if (winner === undefined || winner.topic === undefined) return [];
    const topic = winner.topic;
    // A stay names the owner, so the explanation says who owns the topic.
    const outcome = winner.target === ctx.currentAgent ? { action: 'stay' as const, target: winner.target } : resolveAction(ctx, 'handoff', winner.target);
    return matchOf(rule, outcome, {
      reason: `${topic}_capability`,
      confidence: Math.min(0.9, 0.5 + 0.1 * winner.hits.length),
      evidence: winner.hits.slice(0, 3).map((h) => textEvidence(h, topic)),
    });
  };
}

/** Builds the evaluator of one validated rule. */
export function compileRule(rule: Rule, policy: Policy): Evaluator {
  switch (rule.type) {
    case 'explicit_request':
      return compileExplicitRequest(rule, policy);
    case 'low_confidence':
      return compileLowConfidence(rule);
    case 'negative_sentiment':
      return compileNegativeSentiment(rule);
    case 'conversation_loop':
      return compileConversationLoop(rule);
    case 'regulated_topic':
      return compileRegulatedTopic(rule);
    case 'value_threshold':
      return compileValueThreshold(rule);
    case 'urgency':
      return compileUrgency(rule);
    case 'capability':
      return compileCapability(rule);
  }
}
