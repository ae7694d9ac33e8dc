/**
 * The fallback SMS sent when the redial does not reach the person (no answer, busy, failed,
 * canceled, a machine).
 *
 * It must arrive as ONE segment on any handset, so it is GSM-7 only and at most 160 septets
 * (a single non-GSM character would switch the whole message to UCS-2 and cut the limit to 70).
 * Characters outside GSM-7 are replaced deterministically (typographic quotes and dashes by their
 * ASCII forms, accented letters by their base letter) or dropped; characters of the GSM-7
 * extension table (`^{}\[~]|€` and form feed) cost two septets.
 *
 * It says who tried to reach the person and why, built only from the agent names and the
 * handoff's `reason`: never transcript text, summaries or resume hints, which may be private and
 * which an SMS (visible on a lock screen) must not carry.
 */

/** The maximum length of a single-segment GSM-7 SMS, in septets. */
export const SMS_MAX_SEPTETS = 160;

// GSM 03.38 default alphabet (the escape code 0x1B excluded).
const GSM7_BASIC = new Set(
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
    '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà',
);
// Extension table: each is sent as ESC + character, two septets.
const GSM7_EXTENSION = new Set('\f^{}\\[~]|€');

const REPLACEMENTS: ReadonlyMap<string, string> = new Map([
  ...[...'‘’‚‛′`´'].map((c): [string, string] => [c, "'"]),
  ...[...'“”„‟″«»'].map((c): [string, string] => [c, '"']),
  ...[...'‐‑‒–—―−•·'].map((c): [string, string] => [c, '-']),
  ['…', '...'],
  ['\t', ' '],
  ...[...'\u00A0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A\u202F\u205F\u3000'].map(
    (c): [string, string] => [c, ' '],
  ),
  // Letters without a canonical decomposition, so NFD below would drop them.
  ['Ł', 'L'],
  ['ł', 'l'],
  ['Đ', 'D'],
  ['đ', 'd'],
  ['ı', 'i'],
  ['Œ', 'OE'],
  ['œ', 'oe'],
  ['©', '(c)'],
  ['®', '(R)'],
  ['™', 'TM'],
]);

/** True when every character of `text` is in the GSM-7 alphabet or its extension table. */
export function isGsm7(text: string): boolean {
  for (const ch of text) if (!GSM7_BASIC.has(ch) && !GSM7_EXTENSION.has(ch)) return false;
  return true;
}

/** Length of `text` in septets (extension characters count 2); NaN if it is not GSM-7. */
export function gsm7Septets(text: string): number {
  let septets = 0;
  for (const ch of text) {
    if (GSM7_BASIC.has(ch)) septets += 1;
    else if (GSM7_EXTENSION.has(ch)) septets += 2;
    else return Number.NaN;
  }
  return septets;
}

/**
 * `text` in GSM-7: known look-alikes replaced, accents stripped where the letter is not in the
 * alphabet, anything else dropped, whitespace runs collapsed to one space. Deterministic.
 */
export function toGsm7(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFC')) {
    if (GSM7_BASIC.has(ch) || GSM7_EXTENSION.has(ch)) {
      out += ch;
      continue;
    }
    const replacement = REPLACEMENTS.get(ch);
    if (replacement !== undefined) {
      out += replacement;
      continue;
    }
    // Canonical decomposition splits "á" into "a" + accent: the base letter stays. Symbols,
    // emoji and other scripts have no GSM-7 base and vanish.
    for (const part of ch.normalize('NFD')) if (GSM7_BASIC.has(part)) out += part;
  }
  return out.replace(/[\s]+/g, ' ').trim();
}

export interface FallbackSmsInput {
  /** The agent that tried to call back, e.g. `alice` or "Alice". */
  agentName: string;
  /** The handoff's `reason` (a code such as `scheduling_capability`, or a short phrase). */
  reason: string;
  /** The agent that handed the caller over, e.g. `bob`. */
  handedOverBy?: string;
}

// Words that name the mechanism rather than the subject ("scheduling_capability" → "scheduling").
const REASON_NOISE_WORDS = new Set(['capability', 'capabilities', 'request', 'requested', 'handoff', 'transfer', 'needed']);
const MAX_NAME_SEPTETS = 24;
const TRUNCATION_MARK = '...';

/** The human topic of a handoff reason: `scheduling_capability` → `scheduling`. */
export function reasonTopic(reason: string): string {
  const words = toGsm7(reason.replace(/[_-]+/g, ' '))
    .split(' ')
    .filter((w) => w !== '' && !REASON_NOISE_WORDS.has(w.toLowerCase()));
  const topic = words.join(' ');
  return topic === '' ? 'your request' : topic;
}

/**
 * The fallback SMS: GSM-7 only, at most 160 septets, e.g. "Alice tried to call you back about
 * scheduling (Bob passed your call on). Reply to this message or call this number to continue."
 * Shortens itself (drops the hand-over note, then a shorter closing, then truncates the topic)
 * rather than ever exceeding one segment.
 */
export function composeFallbackSms(input: FallbackSmsInput): string {
  const agent = displayName(input.agentName) || 'Your assistant';
  const by = input.handedOverBy === undefined ? '' : displayName(input.handedOverBy);
  const topic = reasonTopic(input.reason);
  const note = by === '' ? '' : ` (${by} passed your call on)`;
  const closings = ['Reply to this message or call this number to continue.', 'Reply or call back to continue.'];

  const candidates = [
    ...closings.map((closing) => `${agent} tried to call you back about ${topic}${note}. ${closing}`),
    ...closings.map((closing) => `${agent} tried to call you back about ${topic}. ${closing}`),
  ];
  for (const text of candidates) if (gsm7Septets(text) <= SMS_MAX_SEPTETS) return text;

  const shortest = closings[closings.length - 1] ?? '';
  const frame = (t: string): string => `${agent} tried to call you back about ${t}. ${shortest}`;
  const room = SMS_MAX_SEPTETS - gsm7Septets(frame('')) - TRUNCATION_MARK.length;
  return frame(truncateSeptets(topic, room) + TRUNCATION_MARK);
}

/** "alice" → "Alice", GSM-7, at most `MAX_NAME_SEPTETS` long. */
function displayName(name: string): string {
  const clean = truncateSeptets(toGsm7(name), MAX_NAME_SEPTETS).trim();
  // Upper-casing can leave the alphabet ("à" → "À"), so the capital goes through toGsm7 again.
  return toGsm7(clean.charAt(0).toUpperCase()) + clean.slice(1);
}

/** The longest prefix of GSM-7 `text` within `max` septets, cut back to a word boundary if any. */
function truncateSeptets(text: string, max: number): string {
  if (gsm7Septets(text) <= max) return text;
  let kept = '';
  let used = 0;
  for (const ch of text) {
    const cost = GSM7_EXTENSION.has(ch) ? 2 : 1;
    if (used + cost > max) break;
    kept += ch;
    used += cost;
  }
  const lastSpace = kept.lastIndexOf(' ');
  return (lastSpace > 0 ? kept.slice(0, lastSpace) : kept).trimEnd();
}
