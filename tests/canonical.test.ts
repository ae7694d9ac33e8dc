import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  canonicalJson,
  compareCodePoints,
  fromJs,
  HandoffError,
  JsonNumber,
  parseJson,
  parseJsonDocument,
  pythonFloatRepr,
  pythonNumber,
} from '../protocol/index.js';
import { HAS_PYTHON, pythonCanonical, pythonFloatReprs } from './helpers/python.js';

const canon = (text: string | Uint8Array) => canonicalJson(parseJson(text));

function assertSchemaError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof HandoffError && err.code === 'SCHEMA' && pattern.test(err.message));
}

test('number lexemes survive as Python prints them', () => {
  const cases: Array<[string, string]> = [
    ['3.0', '3.0'],
    ['1e-07', '1e-07'],
    ['1E-7', '1e-07'],
    ['-0.0', '-0.0'],
    ['-0', '0'],
    ['0', '0'],
    ['12345678901234567890123', '12345678901234567890123'],
    ['-98765432109876543210', '-98765432109876543210'],
    ['1e16', '1e+16'],
    ['1e15', '1000000000000000.0'],
    ['0.0001', '0.0001'],
    ['0.00001', '1e-05'],
    ['1.5e300', '1.5e+300'],
    ['0.1', '0.1'],
    ['100', '100'],
    ['2.50', '2.5'],
    ['1e400', ''],
  ];
  for (const [lexeme, expected] of cases) {
    if (expected === '') assertSchemaError(() => parseJson(lexeme), /Infinity/);
    else assert.equal(canon(`[${lexeme}]`), `[${expected}]`, lexeme);
  }
});

test('strings are escaped exactly like ensure_ascii', () => {
  assert.equal(canonicalJson('a"b\\c/d'), '"a\\"b\\\\c/d"');
  assert.equal(canonicalJson('\n\r\t\b\f\u0000\u001f'), '"\\n\\r\\t\\b\\f\\u0000\\u001f"');
  assert.equal(canonicalJson('\u007f\u00e9\u2028\u2014'), '"\\u007f\\u00e9\\u2028\\u2014"');
  assert.equal(canonicalJson('👋'), '"\\ud83d\\udc4b"');
  assert.equal(canonicalJson(' ~'), '" ~"');
});

test('keys are sorted by code point at every depth, not by UTF-16 unit', () => {
  // U+FF21 sorts before U+1F600 by code point, although its UTF-16 unit 0xFF21 > 0xD83D.
  const text = '{"😀":1,"Ａ":2,"b":{"z":1,"a":[{"y":0,"x":0}]},"B":3}';
  assert.equal(canon(text), '{"B":3,"b":{"a":[{"x":0,"y":0}],"z":1},"\\uff21":2,"\\ud83d\\ude00":1}');
  assert.ok(compareCodePoints('\uff21', '\u{1F600}') < 0);
  assert.ok('\uff21' > '\u{1F600}', 'JavaScript default order differs, which is why the comparator exists');
});

test('the parser refuses what Python and JavaScript could read differently', () => {
  assertSchemaError(() => parseJson('{"a":1,"a":2}'), /duplicate key/);
  assertSchemaError(() => parseJson('[NaN]'), /unexpected character "N"/);
  assertSchemaError(() => parseJson('[Infinity]'), /unexpected character/);
  assertSchemaError(() => parseJson('["\\ud800"]'), /lone high surrogate/);
  assertSchemaError(() => parseJson('["\\udc00x"]'), /lone low surrogate/);
  assertSchemaError(() => parseJson('["\ud800"]'), /lone surrogate/);
  assertSchemaError(() => parseJson(Uint8Array.from([0x22, 0xc3, 0x28, 0x22])), /UTF-8/);
  assertSchemaError(() => parseJson(Uint8Array.from([0xef, 0xbb, 0xbf, 0x31])), /byte-order mark/);
  assertSchemaError(() => parseJson('[01]'), /unexpected data|expected/);
  assertSchemaError(() => parseJson('["a\u0001"]'), /control character/);
  assertSchemaError(() => parseJson('{"a":1,}'), /string key/);
  assertSchemaError(() => parseJson('[1] x'), /after the value/);
  assertSchemaError(() => parseJson('['.repeat(300) + ']'.repeat(300)), /nesting deeper/);
  assertSchemaError(() => parseJson(''), /end of input/);
});

test('integers longer than Python reads (4300 digits) are refused, when parsed and when signed', () => {
  const longest = `[${'9'.repeat(4300)},-${'9'.repeat(4300)}]`;
  assert.equal(canon(longest), longest);
  assertSchemaError(() => parseJson(`[${'9'.repeat(4301)}]`), /longer than 4300 digits/);
  assertSchemaError(() => parseJson(`[-${'9'.repeat(4301)}]`), /longer than 4300 digits/);
  assert.equal(canon(`[0.${'1'.repeat(5000)}]`), '[0.1111111111111111]', 'a float is limited by its range, not its digits');
  assertSchemaError(() => fromJs([10n ** 4300n]), /longer than 4300 digits/);
  assert.equal(canonicalJson(fromJs([10n ** 4299n])).length, 4302);
});

test('Python refuses the same integers', { skip: !HAS_PYTHON && 'python3 not installed' }, () => {
  const [ok, refused] = pythonCanonical([`[${'9'.repeat(4300)}]`, `[${'9'.repeat(4301)}]`]);
  assert.equal(ok, `[${'9'.repeat(4300)}]`);
  assert.equal(refused, null);
});

test('a __proto__ key is data, not a prototype change', () => {
  const value = parseJson('{"__proto__":{"polluted":true},"a":1}');
  assert.equal(canonicalJson(value), '{"__proto__":{"polluted":true},"a":1}');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('spans cut a member value out of the text byte for byte', () => {
  const text = '{"relay":{"state":"claimed"},"payload":  {"b":1.50, "a":"x"}  }';
  const doc = parseJsonDocument(text);
  const span = doc.spans.get('payload');
  assert.ok(span, 'span');
  assert.equal(doc.text.slice(span.start, span.end), '{"b":1.50, "a":"x"}');
});

test('fromJs writes numbers the way Python prints the same value', () => {
  assert.equal(canonicalJson(fromJs({ n: 3, f: 0.62, big: 2 ** 70, tiny: 1e-7, neg: -1.5, z: -0 })),
    '{"big":1180591620717411303424,"f":0.62,"n":3,"neg":-1.5,"tiny":1e-07,"z":0}');
  assert.equal(canonicalJson(fromJs({ f: new JsonNumber('3.0'), b: 10n ** 25n })), '{"b":10000000000000000000000000,"f":3.0}');
  assert.throws(() => fromJs({ x: Number.NaN }), HandoffError);
  assert.throws(() => fromJs({ x: '\ud800' }), HandoffError);
});

test('pythonFloatRepr switches notation where Python does', () => {
  assert.equal(pythonFloatRepr(1234567890123456), '1234567890123456.0');
  assert.equal(pythonFloatRepr(12345678901234567), '1.2345678901234568e+16');
  assert.equal(pythonFloatRepr(5e-324), '5e-324');
  assert.equal(pythonFloatRepr(1.7976931348623157e308), '1.7976931348623157e+308');
  assert.equal(pythonNumber('-0'), '0');
});

// ---- Property tests against real Python, the independent formulation ----

const numberLexeme = fc.oneof(
  fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }).map((n) => n.toString()),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? '-0.0' : String(x))),
  fc
    .tuple(fc.integer({ min: -999, max: 999 }), fc.nat({ max: 99999 }), fc.integer({ min: -320, max: 300 }), fc.boolean())
    .map(([i, frac, exp, upper]) => `${i}.${frac}${upper ? 'E' : 'e'}${exp}`),
  fc.constantFrom('3.0', '-0.0', '-0', '1e-07', '1E+16', '0.0001', '1e22', '123.456000'),
);

const anyString = fc.string({ unit: fc.oneof(fc.constantFrom('"', '\\', '/', '\n', '\u2028', '\u007f', '\u0000', 'é'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 12 });

function ws(): fc.Arbitrary<string> {
  return fc.constantFrom('', ' ', '\n  ', '\t');
}

/** JSON text built from lexemes, with varied whitespace and escapes, never with duplicate keys. */
const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberLexeme,
    anyString.map((s) => JSON.stringify(s)),
    anyString.map((s) => JSON.stringify(s).replace(/[^\x20-\x7e]/gu, (c) => c.split('').map((u) => `\\u${u.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''))),
    fc.constantFrom('true', 'false', 'null'),
    fc.array(tie('value'), { maxLength: 4 }).chain((items) => ws().map((w) => `[${w}${items.join(`,${w}`)}${w}]`)),
    fc
      .uniqueArray(fc.tuple(anyString, tie('value')), { maxLength: 4, selector: ([k]) => k })
      .chain((members) => ws().map((w) => `{${w}${members.map(([k, v]) => `${JSON.stringify(k)}${w}:${w}${v}`).join(`,${w}`)}${w}}`)),
  ),
})).value;

test('canonical form equals Python json.dumps(sort_keys, compact) on random documents', { skip: !HAS_PYTHON && 'python3 not installed' }, () => {
  const texts = fc.sample(jsonText, { numRuns: 3000, seed: 20261122 });
  const expected = pythonCanonical(texts);
  let compared = 0;
  texts.forEach((text, i) => {
    const py = expected[i];
    if (py === null || py === undefined || /Infinity|NaN/.test(py)) {
      assert.throws(() => canon(text), HandoffError, `we must refuse what Python cannot print finitely: ${text}`);
      return;
    }
    assert.equal(canon(text), py, text);
    assert.equal(canon(Buffer.from(text, 'utf8')), py, 'bytes and string input agree');
    compared++;
  });
  assert.ok(compared > 2500, `compared ${compared} documents`);
});

test('float repr equals Python repr for random doubles', { skip: !HAS_PYTHON && 'python3 not installed' }, () => {
  const doubles = fc.sample(fc.double({ noNaN: true, noDefaultInfinity: true }), { numRuns: 5000, seed: 7 });
  const expected = pythonFloatReprs(doubles.map((x) => (Object.is(x, -0) ? '-0.0' : String(x))));
  doubles.forEach((x, i) => assert.equal(pythonFloatRepr(x), expected[i], String(x)));
});
