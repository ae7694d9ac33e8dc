/**
 * Lossless JSON and the canonical form of protocol v1.
 *
 * The signature covers `canonical(payload)`, which must be byte-identical to what Python produces
 * with `json.dumps(obj, sort_keys=True, separators=(",", ":"))` (default `ensure_ascii=True`) for
 * the object that Python's `json.loads` would build from the same text:
 *
 * - objects: keys sorted by Unicode code point (Python compares `str` by code point; JavaScript's
 *   default sort compares UTF-16 code units, which differs above U+D7FF), no whitespace;
 * - strings: `"` and `\` escaped, `\n \r \t \b \f` as short escapes, every other code unit outside
 *   U+0020..U+007E as `\uXXXX` in lowercase hex (astral characters therefore as surrogate pairs);
 * - numbers as Python prints the value it parsed: a lexeme without `.`/`e`/`E` is an `int` of any
 *   size (`-0` prints as `0`); anything else is a `float` printed by `repr` (`3.0`, `1e-07`,
 *   `1e+16`, `-0.0`).
 *
 * `JSON.parse` cannot be used on the way in: it turns `3.0` into `3` and rounds big integers, so
 * numbers are kept as their source lexeme (`JsonNumber`) and converted only when printed. The
 * parser is strict where Python is lenient and where leniency would let two parties disagree about
 * what was signed: it refuses NaN/Infinity (and literals that overflow to them), duplicate keys,
 * lone surrogates, invalid UTF-8, a byte-order mark, and nesting deeper than `MAX_DEPTH`.
 */
import { HandoffError } from './errors.js';

/** Maximum nesting of arrays/objects accepted by the parser (Python's own limit is near 1000). */
export const MAX_DEPTH = 256;
/**
 * Longest integer, in digits, accepted or signed: Python (3.11 and later) refuses to convert a
 * longer one from text (`sys.int_info.default_max_str_digits`), so the reference's `json.loads`
 * fails on it; relaying such a payload would hand the reference one it cannot read.
 */
export const MAX_INT_DIGITS = 4300;

/** A JSON number kept as the exact lexeme it was received or built with. */
export class JsonNumber {
  constructor(readonly lexeme: string) {}

  /** The number as Python's `json.dumps` prints it. */
  toPython(): string {
    return pythonNumber(this.lexeme);
  }

  /** Lossy conversion, for schema checks only (never for signing). */
  toNumber(): number {
    return Number(this.lexeme);
  }
}

export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** Source offsets `[start, end)` of a value in the decoded text. */
export interface Span {
  start: number;
  end: number;
}

export interface JsonDocument {
  value: JsonValue;
  /** The decoded text that was parsed. */
  text: string;
  /** For a top-level object: where each member's value sits in `text`. */
  spans: Map<string, Span>;
}

const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function fail(message: string): never {
  throw new HandoffError('SCHEMA', `invalid JSON: ${message}`);
}

/** Decodes bytes as strict UTF-8 (or checks a string for lone surrogates). */
export function decodeText(input: Uint8Array | string): string {
  let text: string;
  if (typeof input === 'string') {
    text = input;
    if (!text.isWellFormed()) fail('lone surrogate in input');
  } else {
    try {
      text = UTF8.decode(input);
    } catch (cause) {
      throw new HandoffError('SCHEMA', 'invalid JSON: input is not valid UTF-8', { cause });
    }
  }
  if (text.charCodeAt(0) === 0xfeff) fail('byte-order mark is not allowed');
  return text;
}

class Parser {
  pos = 0;
  readonly spans = new Map<string, Span>();

  constructor(readonly text: string) {}

  parseDocument(): JsonValue {
    this.skipWs();
    const value = this.parseValue(0);
    this.skipWs();
    if (this.pos !== this.text.length) this.error('unexpected data after the value');
    return value;
  }

  error(what: string): never {
    fail(`${what} at offset ${this.pos}`);
  }

  skipWs(): void {
    const t = this.text;
    let p = this.pos;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) p++;
      else break;
    }
    this.pos = p;
  }

  parseValue(depth: number): JsonValue {
    const c = this.text.charCodeAt(this.pos);
    switch (c) {
      case 0x7b: // {
        return this.parseObject(depth + 1);
      case 0x5b: // [
        return this.parseArray(depth + 1);
      case 0x22: // "
        return this.parseString();
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
        if (Number.isNaN(c)) this.error('unexpected end of input');
        this.error(`unexpected character ${JSON.stringify(this.text[this.pos])}`);
    }
  }

  literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) this.error('invalid literal (NaN and Infinity are not JSON)');
    this.pos += word.length;
    return value;
  }

  parseNumber(): JsonNumber {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (!m) this.error('invalid number');
    const lexeme = m[0];
    if (isFloatLexeme(lexeme)) {
      if (!Number.isFinite(Number(lexeme))) this.error('number out of range (it would be Infinity)');
    } else if (lexeme.length - (lexeme.startsWith('-') ? 1 : 0) > MAX_INT_DIGITS) {
      this.error(`integer longer than ${MAX_INT_DIGITS} digits (Python refuses to read it)`);
    }
    this.pos += lexeme.length;
    return new JsonNumber(lexeme);
  }

  parseString(): string {
    const t = this.text;
    let p = this.pos + 1;
    let out = '';
    let runStart = p;
    for (;;) {
      const c = t.charCodeAt(p);
      if (c === 0x22) {
        out += t.slice(runStart, p);
        this.pos = p + 1;
        return out;
      }
      if (c === 0x5c) {
        out += t.slice(runStart, p);
        this.pos = p;
        out += this.parseEscape();
        p = this.pos;
        runStart = p;
        continue;
      }
      if (Number.isNaN(c)) {
        this.pos = p;
        this.error('unterminated string');
      }
      if (c < 0x20) {
        this.pos = p;
        this.error('control character in string');
      }
      p++;
    }
  }

  /** Parses one escape at `this.pos` (which points at the backslash), surrogate pairs included. */
  parseEscape(): string {
    const t = this.text;
    const e = t[this.pos + 1];
    this.pos += 2;
    switch (e) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const unit = this.hex4();
        if (unit >= 0xdc00 && unit <= 0xdfff) this.error('lone low surrogate escape');
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (t[this.pos] !== '\\' || t[this.pos + 1] !== 'u') this.error('lone high surrogate escape');
          this.pos += 2;
          const low = this.hex4();
          if (low < 0xdc00 || low > 0xdfff) this.error('lone high surrogate escape');
          return String.fromCharCode(unit, low);
        }
        return String.fromCharCode(unit);
      }
      default:
        this.pos -= 2;
        this.error('invalid escape');
    }
  }

  hex4(): number {
    const h = this.text.slice(this.pos, this.pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) this.error('invalid \\u escape');
    this.pos += 4;
    return parseInt(h, 16);
  }

  parseArray(depth: number): JsonValue[] {
    if (depth > MAX_DEPTH) this.error(`nesting deeper than ${MAX_DEPTH}`);
    this.pos++;
    const out: JsonValue[] = [];
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      out.push(this.parseValue(depth));
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x5d) return out;
      if (c !== 0x2c) {
        this.pos--;
        this.error("expected ',' or ']'");
      }
    }
  }

  parseObject(depth: number): JsonObject {
    if (depth > MAX_DEPTH) this.error(`nesting deeper than ${MAX_DEPTH}`);
    this.pos++;
    const out: JsonObject = Object.create(null);
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      if (this.text.charCodeAt(this.pos) !== 0x22) this.error('expected a string key');
      const key = this.parseString();
      if (Object.hasOwn(out, key)) this.error(`duplicate key ${JSON.stringify(key)}`);
      this.skipWs();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.error("expected ':'");
      this.pos++;
      this.skipWs();
      const start = this.pos;
      out[key] = this.parseValue(depth);
      if (depth === 1) this.spans.set(key, { start, end: this.pos });
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      this.pos++;
      if (c === 0x7d) return out;
      if (c !== 0x2c) {
        this.pos--;
        this.error("expected ',' or '}'");
      }
    }
  }
}

/**
 * Parses JSON text (bytes as strict UTF-8, or a string) without losing number lexemes.
 * @throws HandoffError SCHEMA on any syntax error, duplicate key, lone surrogate, NaN/Infinity.
 */
export function parseJson(input: Uint8Array | string): JsonValue {
  return new Parser(decodeText(input)).parseDocument();
}

/**
 * Like `parseJson`, but also returns the decoded text and the spans of a top-level object's member
 * values, so that an embedded payload can be cut out byte for byte.
 * @throws HandoffError SCHEMA as `parseJson`.
 */
export function parseJsonDocument(input: Uint8Array | string): JsonDocument {
  const parser = new Parser(decodeText(input));
  const value = parser.parseDocument();
  return { value, text: parser.text, spans: parser.spans };
}

function isFloatLexeme(lexeme: string): boolean {
  return /[.eE]/.test(lexeme);
}

/** Prints a valid JSON number lexeme the way Python's `json.dumps(json.loads(lexeme))` would. */
export function pythonNumber(lexeme: string): string {
  if (!isFloatLexeme(lexeme)) return BigInt(lexeme).toString();
  return pythonFloatRepr(Number(lexeme));
}

/**
 * Python's `repr(float)`: the shortest digits that round-trip (the same digits JavaScript
 * chooses), in positional notation when the decimal exponent is in [-4, 16), else scientific with
 * a signed, at least two-digit exponent.
 */
export function pythonFloatRepr(x: number): string {
  if (!Number.isFinite(x)) throw new HandoffError('SCHEMA', 'NaN and Infinity cannot be signed');
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, expText] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exp = Number(expText);
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const whole = digits.length > exp + 1 ? digits.slice(0, exp + 1) : digits.padEnd(exp + 1, '0');
    const frac = digits.length > exp + 1 ? digits.slice(exp + 1) : '0';
    return `${sign}${whole}.${frac}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = `${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return `${sign}${m}e${e}`;
}

/** Orders strings by Unicode code point, as Python sorts `str` keys. */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800..DFFF) encode code points above U+FFFF, so they must sort after
    // U+E000..FFFF; shifting both ranges restores code-point order between code units.
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

const SHORT_ESCAPES: Record<number, string> = {
  0x22: '\\"',
  0x5c: '\\\\',
  0x0a: '\\n',
  0x0d: '\\r',
  0x09: '\\t',
  0x08: '\\b',
  0x0c: '\\f',
};

/** A string as Python's `json.dumps(..., ensure_ascii=True)` writes it. */
export function pythonString(s: string): string {
  let out = '"';
  let runStart = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    out += s.slice(runStart, i);
    out += SHORT_ESCAPES[c] ?? `\\u${c.toString(16).padStart(4, '0')}`;
    runStart = i + 1;
  }
  return out + s.slice(runStart) + '"';
}

/**
 * The canonical text of a value: Python's `json.dumps(v, sort_keys=True, separators=(",", ":"))`.
 * @throws HandoffError SCHEMA for a value that is not JSON (e.g. a lone surrogate in a string).
 */
export function canonicalJson(value: JsonValue): string {
  const parts: string[] = [];
  writeCanonical(value, parts);
  return parts.join('');
}

function writeCanonical(value: JsonValue, out: string[]): void {
  if (value === null) out.push('null');
  else if (value === true) out.push('true');
  else if (value === false) out.push('false');
  else if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new HandoffError('SCHEMA', 'string contains a lone surrogate');
    out.push(pythonString(value));
  } else if (value instanceof JsonNumber) out.push(value.toPython());
  else if (Array.isArray(value)) {
    out.push('[');
    value.forEach((item, i) => {
      if (i > 0) out.push(',');
      writeCanonical(item, out);
    });
    out.push(']');
  } else {
    out.push('{');
    const keys = Object.keys(value).sort(compareCodePoints);
    keys.forEach((key, i) => {
      if (i > 0) out.push(',');
      if (!key.isWellFormed()) throw new HandoffError('SCHEMA', 'key contains a lone surrogate');
      out.push(pythonString(key), ':');
      writeCanonical(value[key] as JsonValue, out);
    });
    out.push('}');
  }
}

/**
 * Converts a plain JavaScript value into a lossless JSON value, choosing number lexemes as Python
 * would print the same value: integral numbers as `int` digits, others as `float` repr. Use
 * `new JsonNumber('3.0')` to sign a float that happens to be integral.
 * @throws HandoffError SCHEMA for undefined, functions, symbols, NaN/Infinity, lone surrogates.
 */
export function fromJs(value: unknown, depth = 0): JsonValue {
  if (depth > MAX_DEPTH) throw new HandoffError('SCHEMA', `nesting deeper than ${MAX_DEPTH}`);
  if (value === null || typeof value === 'boolean' || value instanceof JsonNumber) return value;
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new HandoffError('SCHEMA', 'string contains a lone surrogate');
    return value;
  }
  if (typeof value === 'bigint') {
    const digits = value.toString();
    if (digits.length - (value < 0n ? 1 : 0) > MAX_INT_DIGITS) throw new HandoffError('SCHEMA', `integer longer than ${MAX_INT_DIGITS} digits`);
    return new JsonNumber(digits);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new HandoffError('SCHEMA', 'NaN and Infinity are not JSON');
    if (Number.isInteger(value)) return new JsonNumber(BigInt(value).toString());
    return new JsonNumber(pythonFloatRepr(value));
  }
  if (Array.isArray(value)) return value.map((v) => fromJs(v, depth + 1));
  if (typeof value === 'object') {
    const out: JsonObject = Object.create(null);
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      out[k] = fromJs(v, depth + 1);
    }
    return out;
  }
  throw new HandoffError('SCHEMA', `cannot encode a ${typeof value} as JSON`);
}

/** Converts a lossless value to plain JavaScript (numbers become `number`: for checks, not signing). */
export function toJs(value: JsonValue): unknown {
  if (value instanceof JsonNumber) return value.toNumber();
  if (Array.isArray(value)) return value.map(toJs);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      Object.defineProperty(out, k, { value: toJs(v), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

/** True when `value` is a JSON object (not an array, not null). */
export function isJsonObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonNumber);
}
