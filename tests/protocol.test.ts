import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, readFile, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  buildPayload,
  callerHash,
  canonicalJson,
  computeHmac,
  generateSecret,
  HandoffError,
  keyFilePath,
  keyRingFromSecrets,
  loadKeyRing,
  parseIsoTime,
  parseJson,
  parsePayload,
  readKeyFile,
  signPayload,
  verifyPayload,
  writeKeyFile,
  type JsonObject,
} from '../protocol/index.js';
import { HAS_PYTHON, pythonCanonical } from './helpers/python.js';
import { tmpDir } from './helpers/tmp.js';
import { loadVectors } from './helpers/vectors.js';

const vectors = loadVectors();
const SECRET = 'bob-alice-pair-secret-0123456789abcdef';
const NOW = Date.parse('2026-11-22T10:00:05Z');
const TRANSCRIPT = [
  { role: 'user' as const, text: 'Can Alice set up a standup with Patrik?' },
  { role: 'assistant' as const, text: "Sure, I'll hand you to Alice." },
];

for (const v of vectors) {
  test(`reference vector ${v.name} → ${v.expect_reason_class}`, () => {
    const keys = keyRingFromSecrets({ bob: [Buffer.from(v.secret_b64, 'base64')] });
    const r = verifyPayload(v.file_text, { agent: v.listener_agent, keys, nowMs: Date.parse(v.validate_at) });
    if (v.expect_valid) assert.equal(r.ok, true, r.ok ? '' : `${r.code}: ${r.message}`);
    else {
      assert.equal(r.ok, false);
      assert.equal(r.ok ? 'ok' : r.code.toLowerCase(), v.expect_reason_class);
    }
  });
}

test('the vectors cover every reason class the reference produces', () => {
  assert.deepEqual(new Set(vectors.map((v) => v.expect_reason_class)), new Set(['ok', 'signature', 'expired', 'schema', 'version']));
});

test('callerHash is the first 16 hex digits of SHA-256 of the id', () => {
  assert.match(callerHash('+15551234567'), /^[0-9a-f]{16}$/);
  assert.equal(callerHash('abc'), 'ba7816bf8f01cfea');
});

test('a payload we build verifies, and its canonical bytes equal what Python produces', { skip: !HAS_PYTHON && 'python3 not installed' }, () => {
  const signed = buildPayload(
    {
      from: 'bob',
      to: 'alice',
      callerId: '+15551234567',
      reason: 'scheduling_capability',
      transcript: TRANSCRIPT,
      resumeHint: 'Bob passed me context — what cadence? 👋',
      pendingActions: [{ kind: 'schedule_meeting', with: 'Patrik', weight: 0.5, count: 3 }],
      extra: { confidence: 0.62, big: 12345678901234567890n },
    },
    SECRET,
    NOW,
  );
  const keys = keyRingFromSecrets({ bob: [SECRET] });
  const r = verifyPayload(signed.text, { agent: 'alice', keys, nowMs: NOW });
  assert.equal(r.ok, true);
  const [py] = pythonCanonical([signed.text]);
  assert.equal(py, signed.text, 'our file text is already the canonical form Python would print');
  const withoutHmac = parseJson(signed.text) as JsonObject;
  delete withoutHmac.hmac;
  const [pyUnsigned] = pythonCanonical([canonicalJson(withoutHmac)]);
  assert.equal(computeHmac(parseJson(pyUnsigned ?? '') as JsonObject, Buffer.from(SECRET)), signed.payload.hmac);
  assert.equal(signed.payload.expires_at, '2026-11-22T10:00:20Z', 'default TTL is 15 s');
  assert.equal(signed.payload.handoff_id, `${Math.floor(NOW / 1000)}-bob-alice-${callerHash('+15551234567')}`);
  assert.equal(signed.payload.callback_number, undefined, 'the number is not sent unless asked');
});

test('verification order: schema before addressing, signature before expiry', () => {
  const keys = keyRingFromSecrets({ bob: [SECRET] });
  const late = Date.parse('2026-11-22T11:00:00Z');
  const forged = buildPayload({ from: 'bob', to: 'alice', callerId: 'x', reason: 'r', transcript: [] }, 'some-other-secret-0123456789', NOW);
  const r = verifyPayload(forged.text, { agent: 'alice', keys, nowMs: late });
  assert.equal(r.ok ? 'ok' : r.code, 'SIGNATURE', 'a forged and late payload is reported as forged');
  const mine = buildPayload({ from: 'bob', to: 'alice', callerId: 'x', reason: 'r', transcript: [] }, SECRET, NOW);
  const notMine = verifyPayload(mine.text, { agent: 'carol', keys, nowMs: NOW });
  assert.equal(notMine.ok ? 'ok' : notMine.code, 'ADDRESSING');
  const unknownPeer = verifyPayload(mine.text, { agent: 'alice', keys: keyRingFromSecrets({ carol: [SECRET] }), nowMs: NOW });
  assert.equal(unknownPeer.ok ? 'ok' : unknownPeer.code, 'ADDRESSING');
  const replay = verifyPayload(mine.text, { agent: 'alice', keys, nowMs: NOW, seen: (f, id) => f === 'bob' && id === mine.payload.handoff_id });
  assert.equal(replay.ok ? 'ok' : replay.code, 'REPLAY');
});

test('expiry is judged at the injected time: valid at expires_at, expired one millisecond later', () => {
  const keys = keyRingFromSecrets({ bob: [SECRET] });
  const p = buildPayload({ from: 'bob', to: 'alice', callerId: 'x', reason: 'r', transcript: [], ttlSec: 15 }, SECRET, NOW);
  const deadline = Date.parse(p.payload.expires_at);
  assert.equal(verifyPayload(p.text, { agent: 'alice', keys, nowMs: deadline }).ok, true);
  const after = verifyPayload(p.text, { agent: 'alice', keys, nowMs: deadline + 1 });
  assert.equal(after.ok ? 'ok' : after.code, 'EXPIRED');
});

test('every single changed byte of a signed payload is caught', () => {
  const keys = keyRingFromSecrets({ bob: [SECRET] });
  const p = buildPayload({ from: 'bob', to: 'alice', callerId: 'x', reason: 'scheduling', transcript: TRANSCRIPT }, SECRET, NOW);
  const bytes = Buffer.from(p.text);
  let caught = 0;
  for (let i = 0; i < bytes.length; i++) {
    const copy = Buffer.from(bytes);
    copy[i] = copy[i] === 0x41 ? 0x42 : 0x41;
    const r = verifyPayload(copy, { agent: 'alice', keys, nowMs: NOW });
    assert.equal(r.ok, false, `byte ${i} changed and still valid`);
    caught++;
  }
  assert.equal(caught, bytes.length);
});

test('schema rules of §3.1 are enforced with clear messages', () => {
  const base = buildPayload({ from: 'bob', to: 'alice', callerId: 'x', reason: 'r', transcript: [] }, SECRET, NOW).payload as Record<string, unknown>;
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ handoff_id: '../etc/passwd' }, /handoff_id must match/],
    [{ from_agent: 'Bob' }, /from_agent must match/],
    [{ expires_at: base.initiated_at }, /expires_at must be after initiated_at/],
    [{ initiated_at: '2026-11-22T10:00:00' }, /^initiated_at must be an ISO 8601 timestamp with a time zone$/],
    [{ transcript: [{ role: 'user', text: 'hi', ts: 'yesterday' }] }, /^transcript\[0\]\.ts must be an ISO 8601 timestamp/],
    [{ transcript: 'hi' }, /transcript must be a list/],
    [{ callback_number: '555-1234' }, /E.164/],
    [{ consent: { granted: 'yes', method: 'verbal', at: '2026-11-22T10:00:00Z' } }, /consent.granted/],
    [{ hop: -1 }, /hop/],
  ];
  for (const [change, pattern] of bad) {
    assert.throws(
      () => signPayload({ ...base, ...change }, SECRET),
      (err: unknown) => err instanceof HandoffError && err.code === 'SCHEMA' && pattern.test(err.message),
      JSON.stringify(change),
    );
  }
  const withUnknown = signPayload({ ...base, x_custom: { nested: [1.5, 'é'] } }, SECRET);
  assert.deepEqual(parsePayload(withUnknown.text).payload.x_custom, { nested: [1.5, 'é'] }, 'unknown fields are kept and signed');
});

test('timestamps are read as Python datetime.fromisoformat reads them, years 1 to 99 included', () => {
  // Expected values from CPython 3.11: int(round(datetime.fromisoformat(s).timestamp() * 1000)).
  const cases: Array<[string, number | undefined]> = [
    ['0050-06-01T00:00:00Z', -60576249600000],
    ['0001-01-01T00:00:00+00:00', -62135596800000],
    ['0099-12-31T23:59:59.5Z', -59011459200500],
    ['2024-02-29T12:30:45.123456+05:30', 1709190045123],
    ['1999-12-31T23:59:59-08:00', 946713599000],
    ['0000-01-01T00:00:00Z', undefined],
    ['2026-02-29T00:00:00Z', undefined],
    ['2026-04-31T00:00:00Z', undefined],
    ['2026-11-22T10:00:00', undefined],
  ];
  for (const [text, expected] of cases) {
    const ms = parseIsoTime(text);
    assert.equal(ms === undefined ? undefined : Math.round(ms), expected, text);
  }
});

test('protocol_version must be the integer 1', () => {
  const text = buildPayload({ from: 'bob', to: 'alice', callerId: 'x', reason: 'r', transcript: [] }, SECRET, NOW).text;
  for (const v of ['2', '1.0', '"1"', 'true']) {
    assert.throws(() => parsePayload(text.replace('"protocol_version":1', `"protocol_version":${v}`)), (e: unknown) => e instanceof HandoffError && e.code === 'VERSION');
  }
});

test('key files: rotation, first line signs, bad files refused', async (t) => {
  const dir = await tmpDir(t);
  const file = keyFilePath(dir, 'bob');
  await writeKeyFile(file, `${SECRET}-new\n${SECRET}\n`);
  const ring = await loadKeyRing(dir, ['bob']);
  assert.equal(ring.secretsFor('bob')?.length, 2);
  assert.equal(ring.secretsFor('bob')?.[0]?.toString(), `${SECRET}-new`);
  const old = buildPayload({ from: 'bob', to: 'alice', callerId: 'x', reason: 'r', transcript: [] }, SECRET, NOW);
  const r = verifyPayload(old.text, { agent: 'alice', keys: ring, nowMs: NOW });
  assert.equal(r.ok && r.keyIndex, 1, 'the old secret is still accepted during rotation');
  await assert.rejects(writeKeyFile(file, generateSecret()), (e: unknown) => e instanceof HandoffError && e.code === 'KEY_FILE');
  assert.equal((await readFile(file, 'utf8')).split('\n')[0], `${SECRET}-new`, 'refusing to overwrite left the file alone');

  const loose = path.join(dir, 'voice-handoff-carol.key');
  await writeFile(loose, `${SECRET}\n`, { mode: 0o644 });
  await chmod(loose, 0o644);
  await assert.rejects(readKeyFile(loose), /mode 0644/);
  await symlink(file, path.join(dir, 'voice-handoff-dave.key'));
  await assert.rejects(readKeyFile(path.join(dir, 'voice-handoff-dave.key')), /symlink/);
  const empty = path.join(dir, 'voice-handoff-erin.key');
  await writeFile(empty, '\n', { mode: 0o600 });
  await assert.rejects(readKeyFile(empty), /empty/);
  const short = path.join(dir, 'voice-handoff-frank.key');
  await writeFile(short, 'tooshort\n', { mode: 0o600 });
  await assert.rejects(readKeyFile(short), /at least 16/);
  const medium = path.join(dir, 'voice-handoff-gina.key');
  await writeFile(medium, 'twenty-bytes-secret!\n', { mode: 0o600 });
  assert.match((await readKeyFile(medium)).warnings[0] ?? '', /32 or more recommended/);
  await assert.rejects(loadKeyRing(dir), (e: unknown) => e instanceof HandoffError && e.code === 'KEY_FILE', 'loading the whole dir stops at the first bad file');
});

test('key files the reference could not share byte for byte are refused: not UTF-8, CR; a FIFO does not hang', async (t) => {
  const dir = await tmpDir(t);
  const isKeyFile = (e: unknown): boolean => e instanceof HandoffError && e.code === 'KEY_FILE';
  // Two different binary keys would both decode to the same run of U+FFFD, i.e. the same secret.
  for (const [name, bytes] of [
    ['a', Buffer.from([...Array(40).keys()].map((i) => 0x80 + i))],
    ['b', Buffer.concat([Buffer.from('valid-prefix-0123456789'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')])],
  ] as const) {
    const file = path.join(dir, `voice-handoff-${name}.key`);
    await writeFile(file, bytes, { mode: 0o600 });
    await assert.rejects(readKeyFile(file), (e: unknown) => isKeyFile(e) && /not UTF-8/.test((e as Error).message), name);
  }
  const crlf = path.join(dir, 'voice-handoff-c.key');
  await writeFile(crlf, `${SECRET}\r\n`, { mode: 0o600 });
  await assert.rejects(readKeyFile(crlf), (e: unknown) => isKeyFile(e) && /carriage return/.test((e as Error).message));
  const utf8 = path.join(dir, 'voice-handoff-d.key');
  await writeFile(utf8, `${SECRET}-é-✓\n`, { mode: 0o600 });
  assert.deepEqual((await readKeyFile(utf8)).secrets, [Buffer.from(`${SECRET}-é-✓`, 'utf8')], 'UTF-8 text stays the secret');
  const fifo = path.join(dir, 'voice-handoff-e.key');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  await assert.rejects(readKeyFile(fifo), (e: unknown) => isKeyFile(e) && /not a regular file/.test((e as Error).message));
});
