/**
 * End to end in one process: a real hub on a port, bob's side signing and starting a handoff over
 * HTTP, alice's listener (hub mode and local mode) verifying, accepting, writing the bootstrap file
 * and dialing through the official twilio SDK against a local Twilio stub.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { bootstrapPath } from '../agent-listener/bootstrap.js';
import { followCallByPolling } from '../agent-listener/call-follow.js';
import { HubClient } from '../agent-listener/hub-client.js';
import { HubSource } from '../agent-listener/hub-source.js';
import { Listener, sleep, type WorkSource } from '../agent-listener/listener.js';
import { LocalSource } from '../agent-listener/local-source.js';
import { ListenerState } from '../agent-listener/state.js';
import { TwilioDialer } from '../agent-listener/twilio-dialer.js';
import { buildPayload, callerHash, keyRingFromSecrets } from '../protocol/index.js';
import { bucketOf, openSpool } from '../spool/index.js';
import { captureLogger, eventLog } from './helpers/fakes.js';
import { startTestHub, TEST_TOKENS } from './helpers/hub.js';
import { auditEvents } from './helpers/spool-inspect.js';
import { tmpDir } from './helpers/tmp.js';
import { startTwilioStub, type TwilioStub } from './helpers/twilio-stub.js';

const SECRET = 'bob-alice-pair-secret-0123456789abcdef';
const CALLER = '+15551234567';
const ALICE_NUMBER = '+15550001111';
const ACCOUNT = `AC${'0'.repeat(32)}`;
const STREAM = 'wss://alice.example.com/twilio';

function signed(now = Date.now()) {
  return buildPayload(
    {
      from: 'bob',
      to: 'alice',
      callerId: CALLER,
      reason: 'scheduling_capability',
      transcript: [{ role: 'user', text: 'Can Alice set up a standup with Patrik?' }],
      resumeHint: "Bob passed me context about Patrik's standup — what cadence did you have in mind?",
      ttlSec: 30,
    },
    SECRET,
    now,
  );
}

async function aliceListener(t: TestContext, source: WorkSource, stub: TwilioStub) {
  const dir = await tmpDir(t, 'alice-');
  const dialer = new TwilioDialer({ accountSid: ACCOUNT, authToken: 'test-auth-token', apiBaseUrl: stub.baseUrl, callsPerSecond: 1000 });
  const { events, onEvent } = eventLog();
  const logger = captureLogger();
  const listener = new Listener({
    agent: 'alice',
    keys: keyRingFromSecrets({ bob: [SECRET] }),
    source,
    dialer,
    state: await ListenerState.open(path.join(dir, 'state')),
    bootstrapDir: path.join(dir, 'voice', 'handoffs'),
    telephony: { from: ALICE_NUMBER, target: { kind: 'stream', url: STREAM }, leadIn: false, ringTimeoutSec: 20, machineDetection: true, fallbackSms: true, completeAfterSec: 0 },
    contacts: new Map([[callerHash(CALLER), CALLER]]),
    followCall: (sid, _id, signal) => followCallByPolling({ getCall: (s) => dialer.getCall(s), sid, intervalMs: 10, sleep, clock: Date.now, signal }),
    logger,
    onEvent,
  });
  t.after(() => listener.stop());
  return { listener, events, logger, bootstrapDir: path.join(dir, 'voice', 'handoffs') };
}

/** Scripts the stub: the call is created, then found `no-answer`; the SMS is accepted. */
function scriptNoAnswer(stub: TwilioStub): void {
  const sid = `CA${'e'.repeat(32)}`;
  stub.reply({ status: 201, body: { sid, status: 'queued' } }, { status: 200, body: { sid, status: 'no-answer' } });
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function assertOneCallThenOneSms(stub: TwilioStub, id: string): void {
  const calls = stub.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/Calls.json'));
  const sms = stub.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/Messages.json'));
  assert.equal(calls.length, 1, 'exactly one call');
  assert.equal(sms.length, 1, 'exactly one fallback SMS');
  const form = new Map(calls[0]?.form);
  assert.equal(form.get('To'), CALLER);
  assert.equal(form.get('From'), ALICE_NUMBER);
  assert.equal(form.get('MachineDetection'), 'Enable');
  const twiml = form.get('Twiml') ?? '';
  assert.match(twiml, new RegExp(`<Connect><Stream url="${STREAM}">`));
  assert.match(twiml, new RegExp(`<Parameter name="handoff_id" value="${id}"/>`));
  assert.match(twiml, /<Parameter name="from_number" value="\+15551234567"\/>/);
  const smsForm = new Map(sms[0]?.form);
  assert.equal(smsForm.get('To'), CALLER);
  assert.ok((smsForm.get('Body') ?? '').length <= 160, "(smsForm.get('Body') ?? '').length <= 160");
}

async function assertBootstrap(dir: string, id: string): Promise<void> {
  const boot = JSON.parse(await readFile(bootstrapPath(dir, id), 'utf8')) as Record<string, unknown>;
  assert.equal(boot.protocol_version, 1);
  assert.equal(boot.source, 'voice_handoff');
  assert.ok(Date.parse(String(boot.accepted_at)) > 0, 'Date.parse(String(boot.accepted_at)) > 0');
  assert.match(String(boot.resume_context), /Bob passed me context about Patrik's standup/);
}

test('hub mode: start → listener verifies, bootstraps, dials once → no-answer → one SMS → rejected no_answer', async (t) => {
  const hub = await startTestHub(t);
  const stub = await startTwilioStub(t);
  scriptNoAnswer(stub);
  const aliceClient = new HubClient({ url: hub.url, token: TEST_TOKENS.alice as string });
  const alice = await aliceListener(t, new HubSource({ client: aliceClient, agent: 'alice', waitSec: 5 }), stub);
  alice.listener.start();

  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  const p = signed();
  const id = p.payload.handoff_id;
  const started = await bob.start(p.text);
  assert.equal(started.status, 'pending');
  const outcome = await bob.get(id, { waitSec: 10, since: 'pending' });
  assert.notEqual(outcome.state, 'pending');
  await until('rejection', async () => (await bob.get(id)).state === 'rejected');
  await alice.listener.idle();

  await assertBootstrap(alice.bootstrapDir, id);
  assertOneCallThenOneSms(stub, id);
  const file = path.join(hub.spoolDir, 'rejected', bucketOf(id), `${id}.json`);
  const stored = JSON.parse(await readFile(file, 'utf8')) as { relay: { reason: string; state: string } };
  assert.equal(stored.relay.reason, 'no_answer');
  assert.equal(stored.relay.state, 'rejected');
  assert.deepEqual(alice.events.map((e) => e.event), ['accepted', 'bootstrap_written', 'dialed', 'call_ended', 'sms_sent', 'rejected']);
});

test('local mode: the same flow through a shared spool, claimed by rename', async (t) => {
  const dir = await tmpDir(t);
  const spoolDir = path.join(dir, 'spool');
  const stub = await startTwilioStub(t);
  scriptNoAnswer(stub);
  const spool = await openSpool({ root: spoolDir });
  t.after(() => spool.close());
  const alice = await aliceListener(t, new LocalSource({ spool, agent: 'alice', rescanMs: 200 }), stub);
  alice.listener.start();

  const bobSpool = await openSpool({ root: spoolDir });
  t.after(() => bobSpool.close());
  const p = signed();
  const id = p.payload.handoff_id;
  await bobSpool.put(p.text);
  await until('rejection', async () => (await bobSpool.get(id))?.state === 'rejected');
  // The file is in rejected/ before alice's reject has returned (and written its audit line).
  await alice.listener.idle();

  await assertBootstrap(alice.bootstrapDir, id);
  assertOneCallThenOneSms(stub, id);
  const record = await bobSpool.get(id);
  assert.equal(record?.relay.reason, 'no_answer');
  assert.equal(record?.payloadText, p.text, 'the signed payload is kept byte for byte');
  assert.deepEqual(auditOf(spoolDir, id), ['put', 'read by alice', 'claim by alice', 'reject by alice'], "alice's read is in the audit log, as through a hub");
});

/** The audit lines of `id` as "<event> by <by>" (a put names nobody: its from_agent says who). */
function auditOf(spoolDir: string, id: string): string[] {
  return auditEvents(spoolDir)
    .filter((e) => e.id === id)
    .map((e) => (e.by === undefined ? e.event : `${e.event} by ${e.by}`));
}

test('a tampered payload: no call, no bootstrap file, rejected with SIGNATURE', async (t) => {
  const hub = await startTestHub(t);
  const stub = await startTwilioStub(t);
  const aliceClient = new HubClient({ url: hub.url, token: TEST_TOKENS.alice as string });
  const alice = await aliceListener(t, new HubSource({ client: aliceClient, agent: 'alice', waitSec: 5 }), stub);
  alice.listener.start();
  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  const p = signed();
  const id = p.payload.handoff_id;
  await bob.start(p.text.replace('standup with Patrik', 'wire transfer now'));
  await until('rejection with SIGNATURE', async () => ((await bob.get(id)) as { reason?: string }).reason === 'SIGNATURE');
  assert.equal(stub.requests.length, 0, 'Twilio was never called');
  await assert.rejects(readdir(alice.bootstrapDir), { code: 'ENOENT' });
  assert.ok(alice.logger.lines.some((l) => l.includes('"security":true') && l.includes('SIGNATURE')), 'alice.logger.lines.some((l) => l.includes(\'"security":true\') && l.includes(\'SIGNATURE\'))');
});
