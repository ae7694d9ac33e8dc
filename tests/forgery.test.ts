/**
 * The forgery and replay checklist of issue 6, one test per item. The listener is alice; bob and
 * alice share the bob–alice secret, carol and alice the carol–alice secret.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { HubClient } from '../agent-listener/hub-client.js';
import { Listener } from '../agent-listener/listener.js';
import { ListenerState } from '../agent-listener/state.js';
import {
  buildPayload,
  callerHash,
  ERROR_CODES,
  HandoffError,
  keyFilePath,
  keyRingFromSecrets,
  loadKeyRing,
  parsePayload,
  verifyPayload,
  writeKeyFile,
  type BuildInput,
  type KeyRing,
} from '../protocol/index.js';
import { CLI_ENTRY, REPO_ROOT, runCli, TSX_LOADER } from './helpers/cli.js';
import { captureLogger, FakeDialer, FakeSource } from './helpers/fakes.js';
import { startTestHub, TEST_TOKENS, writeAliceListenerFiles } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';

const BOB_ALICE = 'bob-alice-pair-secret-0123456789abcdef';
const CAROL_ALICE = 'carol-alice-pair-secret-0123456789abcd';
const BOB_GORDON = 'bob-gordon-pair-secret-0123456789abcde';
const CALLER = '+15551234567';
const NOW = Date.parse('2026-11-22T10:00:00Z');
const TRANSCRIPT_TEXT = 'Can Alice set up a weekly standup with Patrik?';

function signed(secret: string, overrides: Partial<BuildInput> = {}, nowMs = NOW) {
  return buildPayload(
    { from: 'bob', to: 'alice', callerId: CALLER, reason: 'scheduling_capability', transcript: [{ role: 'user', text: TRANSCRIPT_TEXT }], resumeHint: 'What cadence?', ...overrides },
    secret,
    nowMs,
  );
}

const aliceKeys = (): KeyRing => keyRingFromSecrets({ bob: [BOB_ALICE], carol: [CAROL_ALICE] });
const verdictOf = (text: string | Uint8Array, keys = aliceKeys(), nowMs = NOW + 1000, agent = 'alice') => {
  const r = verifyPayload(text, { agent, keys, nowMs });
  return r.ok ? 'ok' : r.code;
};

/** Alice's listener over an in-memory source, with its journal in a temp dir. */
async function aliceListener(t: TestContext, opts: { keys?: KeyRing; clock?: () => number; stateDir?: string } = {}) {
  const dir = await tmpDir(t, 'forgery-');
  const source = new FakeSource();
  const dialer = new FakeDialer();
  const logger = captureLogger();
  const make = async (stateDir = opts.stateDir ?? path.join(dir, 'state')) =>
    new Listener({
      agent: 'alice',
      keys: opts.keys ?? aliceKeys(),
      source,
      dialer,
      state: await ListenerState.open(stateDir),
      bootstrapDir: path.join(dir, 'voice', 'handoffs'),
      telephony: { from: '+15550001111', target: { kind: 'stream', url: 'wss://alice.example.com/twilio' }, leadIn: false, ringTimeoutSec: 25, machineDetection: true, fallbackSms: false, completeAfterSec: 0 },
      contacts: new Map([[callerHash(CALLER), CALLER]]),
      followCall: (sid) => dialer.getCall(sid),
      clock: opts.clock ?? (() => NOW + 1000),
      logger,
    });
  /** Delivers `text` as the source would and returns how the handoff was settled. */
  const deliver = async (listener: Listener, text: string, id: string) => {
    source.add(id, text);
    await listener.handle({ id, text });
    return source.settled.get(id);
  };
  return { dir, source, dialer, logger, make, deliver };
}

test('one changed byte anywhere → refused; wherever the payload stays well-formed and addressed to alice, the code is SIGNATURE', async (t) => {
  const p = signed(BOB_ALICE);
  const bytes = Buffer.from(p.text);
  const codes = new Map<string, number>();
  // A replacement of the same kind keeps the JSON (and mostly the schema) intact, so that the
  // signature itself is what has to catch the change.
  const sameKind = (b: number): number => {
    if (b >= 0x30 && b <= 0x39) return b === 0x39 ? 0x30 : b + 1;
    if (b >= 0x61 && b <= 0x7a) return b === 0x7a ? 0x61 : b + 1;
    if (b >= 0x41 && b <= 0x5a) return b === 0x5a ? 0x41 : b + 1;
    return b === 0x20 ? 0x21 : 0x20;
  };
  for (let i = 0; i < bytes.length; i++) {
    const copy = Buffer.from(bytes);
    copy[i] = sameKind(bytes[i] as number);
    const code = verdictOf(copy);
    codes.set(code, (codes.get(code) ?? 0) + 1);
    assert.notEqual(code, 'ok', `byte ${i} changed and the payload still verifies`);
    // Still a valid payload from bob to alice: only the signature can tell.
    let addressed = false;
    try {
      const { payload } = parsePayload(copy);
      addressed = payload.from_agent === 'bob' && payload.to_agent === 'alice';
    } catch {
      addressed = false;
    }
    if (addressed) assert.equal(code, 'SIGNATURE', `byte ${i}`);
  }
  // Changes to keys and punctuation break the schema (SCHEMA) and changes to the names the
  // addressing (ADDRESSING); every change to a value is the signature's to catch.
  assert.ok((codes.get('SIGNATURE') ?? 0) > 150, `the signature check was reached: ${JSON.stringify([...codes])}`);

  // And end to end: the listener refuses a tampered delivery through its source, and does nothing else.
  const s = await aliceListener(t);
  const tampered = p.text.replace('weekly standup', 'weekly standuq');
  const settled = await s.deliver(await s.make(), tampered, p.payload.handoff_id);
  assert.deepEqual(settled, { how: 'reject', outcome: 'SIGNATURE', token: undefined });
  assert.equal(s.source.accepts, 0);
  assert.equal(s.dialer.dials.length, 0);
});

test('a payload signed with another pair key (bob–gordon instead of bob–alice) → SIGNATURE, not accepted', async (t) => {
  const p = signed(BOB_GORDON);
  assert.equal(verdictOf(p.text), 'SIGNATURE');
  const s = await aliceListener(t);
  assert.equal((await s.deliver(await s.make(), p.text, p.payload.handoff_id))?.outcome, 'SIGNATURE');
  assert.equal(s.source.accepts, 0);
  assert.equal(s.dialer.dials.length, 0);
});

test('carol signing with the carol–alice key but claiming to be bob → SIGNATURE (the key is chosen by from_agent)', async (t) => {
  const genuineCarol = signed(CAROL_ALICE, { from: 'carol' });
  assert.equal(verdictOf(genuineCarol.text), 'ok', 'carol speaking as carol is fine');
  const posingAsBob = signed(CAROL_ALICE, { from: 'bob' });
  assert.equal(verdictOf(posingAsBob.text), 'SIGNATURE');
  const s = await aliceListener(t);
  assert.equal((await s.deliver(await s.make(), posingAsBob.text, posingAsBob.payload.handoff_id))?.outcome, 'SIGNATURE');
  assert.equal(s.dialer.dials.length, 0);

  // At the hub, an agent's token cannot start a handoff in another agent's name either.
  const hub = await startTestHub(t);
  const gordon = new HubClient({ url: hub.url, token: TEST_TOKENS.gordon as string });
  t.after(() => gordon.close());
  await assert.rejects(gordon.start(posingAsBob.text), (err: unknown) => err instanceof HandoffError && err.code === 'FORBIDDEN');
});

test('reflection: bob’s own outgoing handoff delivered to bob’s listener → ADDRESSING; with from/to swapped → SIGNATURE', async () => {
  const outgoing = signed(BOB_ALICE);
  const bobKeys = keyRingFromSecrets({ alice: [BOB_ALICE] });
  assert.equal(verdictOf(outgoing.text, bobKeys, NOW + 1000, 'bob'), 'ADDRESSING');
  // The pair secret is the same in both directions, so the only way back is to swap the names,
  // which the signature covers.
  const swapped = outgoing.text.replace('"from_agent":"bob"', '"from_agent":"xxx"').replace('"to_agent":"alice"', '"to_agent":"bob"').replace('"from_agent":"xxx"', '"from_agent":"alice"');
  assert.match(swapped, /"from_agent":"alice".*"to_agent":"bob"/);
  assert.equal(verdictOf(swapped, bobKeys, NOW + 1000, 'bob'), 'SIGNATURE');
});

test('replay of an accepted id → REPLAY, also after a listener restart, and the caller is dialed once', async (t) => {
  const s = await aliceListener(t);
  const p = signed(BOB_ALICE);
  const id = p.payload.handoff_id;
  assert.equal((await s.deliver(await s.make(), p.text, id))?.outcome, 'connected');
  s.source.settled.clear();
  assert.equal((await s.deliver(await s.make(), p.text, id))?.outcome, 'REPLAY', 'a second listener on the same journal (a restart)');
  s.source.settled.clear();
  const same = await s.make();
  assert.equal((await s.deliver(same, p.text, id))?.outcome, 'REPLAY');
  // Re-signed by bob under the same id, with other content: still the same id from the same peer.
  const again = buildPayload({ from: 'bob', to: 'alice', callerId: CALLER, reason: 'again', transcript: [] }, BOB_ALICE, NOW);
  assert.equal(again.payload.handoff_id, id);
  s.source.settled.clear();
  assert.equal((await s.deliver(same, again.text, id))?.outcome, 'REPLAY');
  assert.equal(s.source.accepts, 1);
  assert.equal(s.dialer.dials.length, 1);
});

test('expiry at the boundary (injected clock): accepted at expires_at, EXPIRED one millisecond later', async (t) => {
  const p = signed(BOB_ALICE, { ttlSec: 15 });
  const deadline = Date.parse(p.payload.expires_at);
  let now = deadline;
  const s = await aliceListener(t, { clock: () => now });
  const other = signed(BOB_ALICE, { ttlSec: 15, callerId: '+15557654321' });
  now = deadline + 1;
  assert.equal((await s.deliver(await s.make(), other.text, other.payload.handoff_id))?.outcome, 'EXPIRED');
  assert.equal(s.source.accepts, 0);
  now = deadline;
  assert.equal((await s.deliver(await s.make(), p.text, p.payload.handoff_id))?.outcome, 'connected');
  assert.equal(s.source.accepts, 1);
});

test('key rotation: both secrets accepted while the file lists both, the old one refused once it is removed', async (t) => {
  const dir = await tmpDir(t, 'forgery-keys-');
  const file = keyFilePath(dir, 'bob');
  const NEW = 'bob-alice-rotated-secret-0123456789abcdef';
  await writeKeyFile(file, `${NEW}\n${BOB_ALICE}\n`);
  const during = await loadKeyRing(dir);
  const oldSigned = signed(BOB_ALICE);
  const newSigned = signed(NEW, { callerId: '+15550000001' });
  const r1 = verifyPayload(oldSigned.text, { agent: 'alice', keys: during, nowMs: NOW + 1000 });
  const r2 = verifyPayload(newSigned.text, { agent: 'alice', keys: during, nowMs: NOW + 1000 });
  assert.deepEqual([r1.ok && r1.keyIndex, r2.ok && r2.keyIndex], [1, 0], 'old on line 2, new (the signing one) on line 1');
  await writeFile(file, `${NEW}\n`, { mode: 0o600 });
  const after = await loadKeyRing(dir);
  assert.equal(verdictOf(oldSigned.text, after), 'SIGNATURE');
  assert.equal(verdictOf(newSigned.text, after), 'ok');
});

test('key files that others can read (0644), symlinks, empty or too short → refused at start: loadKeyRing and `handoff listen` exit with KEY_FILE', async (t) => {
  const base = await tmpDir(t, 'forgery-badkeys-');
  const good = path.join(base, 'good.key');
  await writeFile(good, `${BOB_ALICE}\n`, { mode: 0o600 });
  const cases: Array<[string, (file: string) => Promise<void>, RegExp]> = [
    ['mode 0644', async (f) => {
      await writeFile(f, `${BOB_ALICE}\n`, { mode: 0o644 });
      await chmod(f, 0o644);
    }, /mode 0644/],
    ['symlink', (f) => symlink(good, f), /symlink/],
    ['empty', (f) => writeFile(f, '', { mode: 0o600 }), /empty/],
    ['too short', (f) => writeFile(f, 'short-secret\n', { mode: 0o600 }), /at least 16/],
  ];
  const runs = await Promise.all(
    cases.map(async ([name, make, message]) => {
      const dir = path.join(base, name.replace(/\W/g, '-'));
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await make(keyFilePath(dir, 'bob'));
      await assert.rejects(loadKeyRing(dir), (err: unknown) => err instanceof HandoffError && err.code === 'KEY_FILE' && message.test(err.message), name);
      const cli = await runCli(['listen', '--agent', 'alice', '--keys', dir, '--hub', 'http://127.0.0.1:9', '--dialer', 'dry-run', '--json'], {
        cwd: base,
        env: { HOME: base, HANDOFF_TOKEN: 'unused-token-0123456789' },
      });
      return { name, cli };
    }),
  );
  for (const { name, cli } of runs) {
    assert.equal(cli.code, 16, `${name}: handoff listen exits with KEY_FILE's code: ${cli.stderr}`);
    assert.equal(JSON.parse(cli.stderr.trim().split('\n').at(-1) as string).error.code, 'KEY_FILE', name);
  }
});

test('handoff listen with a voice-server URL that cannot be dialed exits with CONFIG before it takes any handoff', async (t) => {
  const hub = await startTestHub(t);
  const base = await tmpDir(t, 'forgery-target-');
  await writeFile(keyFilePath(base, 'bob'), `${BOB_ALICE}\n`, { mode: 0o600 });
  const pending = signed(BOB_ALICE, { ttlSec: 60 }, Date.now());
  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  await bob.start(pending.text);
  for (const [kind, url] of [['stream', 'https://voice.example.com/twilio'], ['stream', 'not a url'], ['twiml-url', 'wss://voice.example.com/twiml']]) {
    const cli = await runCli(['listen', '--agent', 'alice', '--keys', base, '--hub', hub.url, '--dialer', 'dry-run', '--target-url', url as string, '--state-dir', path.join(base, 'state'), '--json'], {
      cwd: base,
      env: { HOME: base, HANDOFF_TOKEN: TEST_TOKENS.alice as string, HANDOFF_TARGET_KIND: kind as string },
    });
    assert.equal(cli.code, ERROR_CODES.CONFIG.exit, `${kind} ${url}: ${cli.stderr}`);
  }
  assert.equal((await bob.get(pending.payload.handoff_id)).state, 'pending', 'the handoff was left for a listener that can dial');
});

test('a hub token for bob used with from_agent=alice → 403 FORBIDDEN (and bob cannot poll or accept as alice)', async (t) => {
  const hub = await startTestHub(t);
  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  const fromAlice = buildPayload({ from: 'alice', to: 'gordon', callerId: CALLER, reason: 'r', transcript: [], ttlSec: 60 }, 'alice-gordon-secret-0123456789abcdef', Date.now());
  await assert.rejects(bob.start(fromAlice.text), (err: unknown) => err instanceof HandoffError && err.code === 'FORBIDDEN');
  const forAlice = signed(BOB_ALICE, { ttlSec: 60 }, Date.now());
  await bob.start(forAlice.text);
  await assert.rejects(bob.poll('alice', 0), (err: unknown) => err instanceof HandoffError && err.code === 'FORBIDDEN');
  await assert.rejects(bob.accept(forAlice.payload.handoff_id), (err: unknown) => err instanceof HandoffError && err.code === 'FORBIDDEN');
  assert.equal((await bob.get(forAlice.payload.handoff_id)).state, 'pending', 'nothing happened to it');
});

test('tokens never appear in the logs: the hub’s captured log and a real `handoff listen` process’s output', async (t) => {
  const hub = await startTestHub(t);
  const dir = await tmpDir(t, 'forgery-logs-');
  const config = await writeAliceListenerFiles(dir, hub.url, BOB_ALICE, { dialer: 'dry-run', contacts: [CALLER], poll_wait_sec: 1 });
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, 'listen', '--config', config, '--json'], {
    cwd: REPO_ROOT,
    env: { ...process.env, HOME: dir, HANDOFF_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  const good = signed(BOB_ALICE, { ttlSec: 60 }, Date.now());
  const forged = signed(BOB_GORDON, { ttlSec: 60, callerId: '+15559990000' }, Date.now());
  await bob.start(good.text);
  await bob.start(forged.text);
  // Someone guessing: an unknown token, and a known one sent where it does not belong.
  const guessed = 'guessed-token-ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ';
  for (const token of [guessed, TEST_TOKENS.gordon as string]) {
    const res = await fetch(`${hub.url}/api/v1/handoffs/poll?agent=alice&access_token=${token}`, { headers: { authorization: `Bearer ${token}` } });
    await res.text();
  }
  const until = Date.now() + 20_000;
  for (;;) {
    const states = await Promise.all([good, forged].map(async (p) => (await bob.get(p.payload.handoff_id)).state));
    if (states.every((s) => s === 'archived' || s === 'rejected')) break;
    assert.ok(Date.now() < until, `not settled: ${states.join(', ')}\n${output.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await bob.get(forged.payload.handoff_id)).reason, 'SIGNATURE', 'the forged one was refused (and that was logged)');
  child.kill('SIGTERM');
  await once(child, 'exit');

  const claimTokens: string[] = [];
  for (const name of await readdir(path.join(dir, 'state', 'handoffs'))) {
    claimTokens.push((JSON.parse(await readFile(path.join(dir, 'state', 'handoffs', name), 'utf8')) as { claim_token: string }).claim_token);
  }
  assert.ok(claimTokens.length >= 1, 'the listener journaled the claim token it used');
  const hubLog = hub.logs.join('\n');
  assert.match(hubLog, /"status":401/, 'the refused guesses are in the hub log');
  assert.match(output, /"msg":"handoff refused"/, 'the listener logged the refusal');
  const secrets: Record<string, string> = { ...TEST_TOKENS, guessed, pair_secret: BOB_ALICE, other_secret: BOB_GORDON };
  claimTokens.forEach((token, i) => (secrets[`claim token ${i}`] = token));
  for (const [what, value] of Object.entries(secrets)) {
    assert.ok(!hubLog.includes(value), `the hub log contains ${what}`);
    assert.ok(!output.includes(value), `the listener's output contains ${what}`);
  }
  for (const privateText of [CALLER, TRANSCRIPT_TEXT]) {
    assert.ok(!hubLog.includes(privateText) && !output.includes(privateText), `a log contains ${privateText}`);
  }
});
