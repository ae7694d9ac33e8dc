/**
 * Text preparation for the rules: every turn is lower-cased, its quoted passages are blanked out,
 * fillers are removed, and it is cut into sentences and clauses. Every step keeps the string's
 * length, so an offset in the prepared text is also an offset in the original, and evidence can
 * quote the caller's own words.
 *
 * Why clauses: negation and conditionals scope over a clause ("I don't need a human, I want
 * alice" is a request for alice), so each hit is judged only against the words before it in its
 * own clause.
 */

export type Role = 'user' | 'assistant' | 'system';

export interface Span {
  readonly start: number;
  readonly end: number;
}

export interface Sentence extends Span {
  /** The sentence ended with a question mark. */
  readonly question: boolean;
  readonly clauses: readonly Span[];
}

export interface PreparedTurn {
  readonly index: number;
  readonly role: Role;
  readonly original: string;
  /** Same length as `original`: lower-cased, quotes blanked, fillers removed. */
  readonly text: string;
  readonly sentences: readonly Sentence[];
}

/** A place in a turn where a rule found its words. */
export interface TextHit extends Span {
  readonly turn: number;
  readonly role: Role;
  /** The caller's words that triggered the hit, as spoken. */
  readonly words: string;
  /** The clause around the hit, as spoken. */
  readonly excerpt: string;
}

const blank = (s: string): string => ' '.repeat(s.length);

function lowerSameLength(original: string): string {
  let out = '';
  for (const ch of original) {
    const lower = ch.toLowerCase();
    // A few characters lower-case to a different length (İ → i̇); keeping them preserves offsets.
    out += lower.length === ch.length ? lower : ch;
  }
  return out;
}

/** Lower-cases and cleans a text without changing its length (see the header comment). */
export function normalise(original: string): string {
  let t = lowerSameLength(original);
  t = t.replace(/[\u2018\u2019\u201b`\u00b4]/g, "'").replace(/[\u201c\u201d\u201e\u00ab\u00bb]/g, '"');
  // Quoted words are reported speech or a mention ("what does 'chargeback' mean"), not the
  // caller's own request, so no rule may see them.
  t = t.replace(/"[^"]*"/g, blank).replace(/"/g, ' ');
  t = t.replace(/(^|[\s([])('(?:[^'\n]|'(?=\p{L}))+?')(?!\p{L})/gu, (_m, lead: string, quoted: string) => lead + blank(quoted));
  // Dashes between clauses become clause breaks; hyphens inside words become spaces so that
  // "double-charged" and "double charged" read alike.
  t = t.replace(/(?<=[\p{L}\p{N}])[-\u2010\u2011](?=[\p{L}\p{N}])/gu, ' ');
  t = t.replace(/\s[-\u2013\u2014]+\s|[\u2013\u2014]/g, (m) => m.replace(/[-\u2013\u2014]/g, ';'));
  // Abbreviation dots are not sentence ends ("Dr. Lind").
  t = t.replace(/\b(dr|mr|mrs|ms|prof|st|jr|sr|etc)\./g, '$1 ');
  // Spoken fillers, with the commas around them, would otherwise cut a request in two.
  t = t.replace(/,?\s*\b(?:u+m+|u+h+m*|e+r+m+|h+m+|mm+)\b\s*,?/g, blank);
  t = t.replace(/,\s*like\s*,|\blike,/g, blank);
  return t;
}

const SENTENCE_END = /[.!?;:\n]+(?=\s|$)|\n/g;
const CLAUSE_BREAK = /,\s|\s(?:but|however|although|though|whereas|except)\b/g;

function trimSpan(text: string, start: number, end: number): Span | undefined {
  while (start < end && /\s/.test(text.charAt(start))) start++;
  while (end > start && /\s/.test(text.charAt(end - 1))) end--;
  return end > start ? { start, end } : undefined;
}

function splitClauses(text: string, sentence: Span): Span[] {
  const body = text.slice(sentence.start, sentence.end);
  const clauses: Span[] = [];
  let from = 0;
  for (const m of body.matchAll(CLAUSE_BREAK)) {
    const span = trimSpan(text, sentence.start + from, sentence.start + m.index);
    if (span) clauses.push(span);
    from = m.index + m[0].length;
  }
  const last = trimSpan(text, sentence.start + from, sentence.end);
  if (last) clauses.push(last);
  return clauses;
}

/** Prepares one transcript turn for matching. */
export function prepareTurn(index: number, role: Role, original: string): PreparedTurn {
  const text = normalise(original);
  const sentences: Sentence[] = [];
  let from = 0;
  const pushSentence = (end: number, terminator: string): void => {
    const span = trimSpan(text, from, end);
    if (span) sentences.push({ ...span, question: terminator.includes('?'), clauses: splitClauses(text, span) });
  };
  for (const m of text.matchAll(SENTENCE_END)) {
    pushSentence(m.index, original.slice(m.index, m.index + m[0].length));
    from = m.index + m[0].length;
  }
  pushSentence(text.length, '');
  return { index, role, original, text, sentences };
}

/** The sentence and clause that contain `offset`, if any. */
export function locate(turn: PreparedTurn, offset: number): { sentence: Sentence; clause: Span } | undefined {
  for (const sentence of turn.sentences) {
    if (offset < sentence.start || offset >= sentence.end) continue;
    for (const clause of sentence.clauses) {
      if (offset >= clause.start && offset < clause.end) return { sentence, clause };
    }
  }
  return undefined;
}

/** Builds the hit record for `[start, end)` of a turn. */
export function hitAt(turn: PreparedTurn, start: number, end: number, clause: Span): TextHit {
  return {
    turn: turn.index,
    role: turn.role,
    start,
    end,
    words: turn.original.slice(start, end).trim(),
    excerpt: turn.original.slice(clause.start, clause.end).trim(),
  };
}

/** Splits text into word tokens (letters, digits and apostrophes). */
export function tokens(text: string): string[] {
  return text.split(/[^\p{L}\p{N}']+/u).filter((t) => t.length > 0);
}

const SCOPE_BREAKERS = new Set(['and', 'so', 'because', 'cause', 'since', 'then', 'or']);
const SUBJECTS = new Set(['i', "i'm", "i'd", "i'll", "i've", 'we', "we're", 'you', 'they', 'he', 'she', 'it', "it's"]);
const PRONOUNS = new Set(['you', 'there', 'it', 'i', 'we', 'they', 'he', 'she']);
const NOT_NEGATING_CONTRACTIONS = new Set(["can't", 'cant', 'cannot', "couldn't", 'couldnt']);
const NEGATORS = new Set(['not', 'never', 'nor', 'neither', 'without', 'nothing', 'nobody', 'instead']);
const NO_FOLLOWERS = new Set(['need', 'longer', 'reason', 'point', 'interest', 'more', 'way']);

function isContractionNegator(token: string): boolean {
  if (NOT_NEGATING_CONTRACTIONS.has(token)) return false;
  return token.endsWith("n't") || /^(?:dont|doesnt|didnt|wont|wouldnt|isnt|arent|wasnt|werent|havent|hasnt|shouldnt|aint|neednt)$/.test(token);
}

/**
 * True when the words before a hit in its clause negate it. "can't" does not negate ("why can't I
 * talk to a person" asks for one), a contraction followed by a pronoun is a question ("isn't
 * there a person", "don't you have"), "don't mind" accepts, and "no" negates only what follows it
 * directly ("no human", "no need") because it is otherwise an interjection ("no I want alice").
 */
export function negatedBefore(prefix: string): boolean {
  const all = tokens(prefix);
  // A new subject clause ends the scope: "renewed without my permission and I want it reversed".
  let from = 0;
  for (let i = 0; i + 1 < all.length; i++) {
    if (SCOPE_BREAKERS.has(all[i] ?? '') && SUBJECTS.has(all[i + 1] ?? '')) from = i + 1;
  }
  const toks = all.slice(from);
  for (let i = 0; i < toks.length; i++) {
    const tok = toks[i] ?? '';
    const next = toks[i + 1];
    const prev = toks[i - 1];
    if (tok === 'no' || tok === 'nah' || tok === 'nope') {
      if (tok === 'no' && (next === undefined || NO_FOLLOWERS.has(next))) return true;
      continue;
    }
    if (isContractionNegator(tok)) {
      if (next !== undefined && (PRONOUNS.has(next) || next === 'mind')) continue;
      return true;
    }
    if (NEGATORS.has(tok)) {
      if (tok === 'not' && (prev === 'why' || next === 'only' || next === 'just')) continue;
      if (tok === 'never' && next === 'mind') continue;
      return true;
    }
    if (tok === 'than' && (prev === 'rather' || prev === 'other')) return true;
  }
  return false;
}

const POLITE_IF = /\bif\s+you\s+(?:could|can|would|will|please|don't mind|wouldn't mind|do not mind|would not mind)\b/g;
const CONDITIONAL = /\b(?:if|whether|unless|in case|what if|(?:do|would|will|should|must)\s+(?:i|we)\s+(?:have|need)\s+to|(?:do|would|will)\s+(?:i|we)\s+need)\b/;

/** True when the words before a hit make it hypothetical ("if I need a human later"). */
export function conditionalBefore(prefix: string): boolean {
  // "if you could", "if you don't mind" are politeness, not a hypothetical.
  return CONDITIONAL.test(prefix.replace(POLITE_IF, ' '));
}

const QUESTION_OPENERS = new Set([
  'will', 'would', 'does', 'do', 'is', 'are', 'can', 'could', 'should', 'did', 'was', 'were', 'has', 'have',
  'how', 'what', 'why', 'when', 'which',
]);
const FIRST_PERSON = new Set(["i", "i'm", "i've", "i'd", "i'll", 'im', 'ive', 'my', 'me', 'mine', 'myself', 'we', 'our', 'us']);

/**
 * True for a general question that is not about the caller ("Will the filling hurt?", "Do you
 * treat emergencies?"): a question that opens with an auxiliary or question word and never
 * mentions the caller.
 */
export function isGeneralQuestion(turn: PreparedTurn, sentence: Sentence): boolean {
  if (!sentence.question) return false;
  const toks = tokens(turn.text.slice(sentence.start, sentence.end));
  const first = toks[0];
  if (first === undefined || !QUESTION_OPENERS.has(first)) return false;
  return !toks.some((t) => FIRST_PERSON.has(t));
}

/**
 * Word-set similarity of two texts, 0..1: the Jaccard index, or, when the shorter text has at
 * least four words, the share of it found in the longer one, so that a question re-asked behind
 * an apology ("Sorry, I didn't get that. What day would you like?") still counts as a repeat.
 */
export function similarity(a: string, b: string): number {
  const sa = new Set(tokens(normalise(a)));
  const sb = new Set(tokens(normalise(b)));
  if (sa.size === 0 || sb.size === 0) return 0;
  let common = 0;
  for (const t of sa) if (sb.has(t)) common++;
  const jaccard = common / (sa.size + sb.size - common);
  const shorter = Math.min(sa.size, sb.size);
  return shorter >= 4 ? Math.max(jaccard, common / shorter) : jaccard;
}

/**
 * Compiles a policy term into a regular-expression source. Terms are plain phrases: words
 * separated by spaces match any run of whitespace, hyphens match like spaces, and a trailing `*`
 * accepts any word ending ("refund*" matches "refunds", "refunded").
 */
export function termSource(term: string): string {
  const clean = normalise(term).trim();
  const prefix = clean.endsWith('*');
  const words = (prefix ? clean.slice(0, -1) : clean).trim().split(/\s+/);
  const body = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\s+');
  return prefix ? `${body}[\\p{L}\\p{N}']*` : body;
}

/** Wraps regular-expression sources into one global, Unicode, whole-word matcher. */
export function wordRegex(sources: readonly string[]): RegExp {
  // Longest first, so that "real person" wins over "person" at the same place.
  const sorted = [...sources].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${sorted.join('|')})(?![\\p{L}\\p{N}])`, 'gu');
}
