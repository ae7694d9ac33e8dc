/**
 * TwiML for the redialled call, written by hand rather than with the SDK's `VoiceResponse`.
 *
 * Why by hand: the document is four fixed elements, and building it here keeps the twilio
 * import in `twilio-dialer.ts` alone, lets the dry-run dialer and the unit tests produce the very
 * same string without the SDK, and lets us measure the 4,000-character limit on the exact text
 * that is sent. The output has the same shape as `VoiceResponse.toString()` (XML declaration,
 * no whitespace between elements).
 *
 * Stream target (gptme-voice reads both parameters from `start.customParameters`):
 *   <Response>[<Say>lead-in</Say>]<Connect><Stream url="wss://…">
 *     <Parameter name="handoff_id" value="…"/><Parameter name="from_number" value="…"/>
 *   </Stream></Connect></Response>
 * Twilio drops a query string on a stream URL, so one is refused rather than silently lost.
 */
import { HandoffError } from '../protocol/index.js';
import type { DialTarget } from './dialer.js';

/** Twilio's limit on the `Twiml` parameter of a call, in characters. */
export const TWIML_MAX_CHARS = 4000;

const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';
const ELLIPSIS = '…';

// Characters XML 1.0 cannot carry even escaped: C0 controls other than tab/LF/CR, lone
// surrogates, U+FFFE/U+FFFF. Dropping them keeps the document well-formed whatever the
// lead-in text contains.
const XML_INVALID_RE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

const XML_ESCAPES: Readonly<Record<string, string>> = Object.freeze({
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
});

/** Escapes text for XML element content or a double-quoted attribute; drops invalid characters. */
export function xmlEscape(text: string): string {
  return text.replace(XML_INVALID_RE, '').replace(/[&<>"']/g, (c) => XML_ESCAPES[c] ?? c);
}

/** Throws CONFIG unless `url` is an absolute wss:// URL without query string or fragment. */
export function assertStreamUrl(url: string): void {
  const parsed = parseUrl(url, 'stream URL');
  if (parsed.protocol !== 'wss:') throw new HandoffError('CONFIG', 'stream URL must use wss://');
  if (url.includes('?') || url.includes('#')) {
    throw new HandoffError('CONFIG', 'stream URL must not have a query string or fragment (Twilio drops them); use <Parameter>s');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new HandoffError('CONFIG', 'stream URL must not carry credentials');
  }
}

export interface StreamTwimlInput {
  streamUrl: string;
  handoffId: string;
  /** The number of the person on the call (the callback number), for the voice server. */
  fromNumber: string;
  leadIn?: string;
}

/**
 * The TwiML of a stream target, at most `TWIML_MAX_CHARS` long: the lead-in is shortened (at a
 * word boundary, with an ellipsis) or dropped to fit; the structure never is. Throws CONFIG on a
 * bad stream URL or when the structure alone exceeds the limit.
 */
export function streamTwiml(input: StreamTwimlInput): string {
  assertStreamUrl(input.streamUrl);
  const connect =
    `<Connect><Stream url="${xmlEscape(input.streamUrl)}">` +
    `<Parameter name="handoff_id" value="${xmlEscape(input.handoffId)}"/>` +
    `<Parameter name="from_number" value="${xmlEscape(input.fromNumber)}"/>` +
    `</Stream></Connect>`;
  const head = `${XML_DECLARATION}<Response>`;
  const tail = `${connect}</Response>`;
  const budget = TWIML_MAX_CHARS - head.length - tail.length;
  if (budget < 0) throw new HandoffError('CONFIG', `TwiML structure exceeds ${TWIML_MAX_CHARS} characters`);
  return head + sayElement(input.leadIn ?? '', budget) + tail;
}

/** `<Say>` with as much of `text` as fits in `budget` characters, or '' when nothing useful fits. */
function sayElement(text: string, budget: number): string {
  const clean = text.replace(/\s+/g, ' ').trim();
  if (clean === '') return '';
  const open = '<Say>';
  const close = '</Say>';
  const whole = xmlEscape(clean);
  if (open.length + whole.length + close.length <= budget) return open + whole + close;

  const room = budget - open.length - close.length - ELLIPSIS.length;
  let kept = '';
  let keptEscapedLength = 0;
  // Walk by code point so a surrogate pair is never split.
  for (const ch of clean) {
    const escaped = xmlEscape(ch).length;
    if (keptEscapedLength + escaped > room) break;
    kept += ch;
    keptEscapedLength += escaped;
  }
  const lastSpace = kept.lastIndexOf(' ');
  if (lastSpace > 0) kept = kept.slice(0, lastSpace);
  kept = kept.trimEnd();
  if (kept === '') return '';
  return open + xmlEscape(kept) + ELLIPSIS + close;
}

/**
 * The webhook URL of a twiml-url target with `handoff_id` set in its query (replacing any
 * existing one). Throws CONFIG unless `url` is an absolute https:// URL.
 */
export function twimlUrlWithHandoff(url: string, handoffId: string): string {
  const parsed = parseTwimlUrl(url);
  parsed.searchParams.set('handoff_id', handoffId);
  return parsed.href;
}

/**
 * Throws CONFIG unless `target` can be dialed: checked when a listener is made, so that a wrong
 * URL stops it at start instead of failing each handoff after it was accepted (with the caller
 * waiting for a call that cannot come).
 */
export function assertDialTarget(target: DialTarget): void {
  if (target.kind === 'stream') assertStreamUrl(target.url);
  else parseTwimlUrl(target.url);
}

function parseTwimlUrl(url: string): URL {
  const parsed = parseUrl(url, 'TwiML URL');
  if (parsed.protocol !== 'https:') throw new HandoffError('CONFIG', 'TwiML URL must use https://');
  return parsed;
}

function parseUrl(url: string, what: string): URL {
  try {
    return new URL(url);
  } catch (err) {
    throw new HandoffError('CONFIG', `${what} is not an absolute URL`, { cause: err });
  }
}
