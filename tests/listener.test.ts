import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { bootstrapPath, readBootstrap } from '../agent-listener/bootstrap.js';
import { followCallByPolling } from '../agent-listener/call-follow.js';
import type { CallInfo } from '../agent-listener/dialer.js';
import { Listener, type ListenerOptions } from '../agent-listener/listener.js';
import { createListenerMetrics, type ListenerMetrics } from '../agent-listener/metrics.js';
import { ListenerState, type DeliveryPhase } from '../agent-listener/state.js';
import { buildPayload, callerHash, HandoffError, keyRingFromSecrets, type BuildInput } from '../protocol/index.js';
import { captureLogger, eventLog, FakeDialer, FakeSource } from './helpers/fakes.js';
import { metricValue } from './helpers/metrics.js';
import { tmpDir } from './helpers/tmp.js';

const SECRET = 'bob-alice-pair-secret-0123456789abcdef';
const CALLER = '+15551234567';
const NOW = Date.parse('2026-11-22T10:00:00Z');

function payload(overrides: Partial<BuildInput> = {}) {
  return buildPayload(
    {
      from: 'bob',
      to: 'alice',
      callerId: CALLER,
      reason: 'scheduling_capability',
      transcript: [
        { role: 'user', text: 'Can Alice set up a weekly standup with Patrik?' },
        { role: 'assistant', text: "Sure, I'll hand you to Alice." },
      ],
      resumeHint: "Bob passed me context about Patrik's standup — what cadence did you have in mind?",
      summary: 'Caller wants a weekly standup with Patrik.',
      pendingActions: [{ kind: 'schedule_meeting', with: 'Patrik' }],
      ...overrides,
    },
    SECRET,
    NOW,
  );
}

async function setup(t: TestContext, extra: Partial<ListenerOptions> = {}) {
  const dir = await tmpDir(t);
  const source = new FakeSource();
  const dialer = new FakeDialer();
  const logger = captureLogger();
  const { events, onEvent } = eventLog();
  const stateDir = path.join(dir, 'state');
  const bootstrapDir = path.join(dir, 'voice-state', 'handoffs');
  let clock = NOW + 1000;
  const make = async (over: Partial<ListenerOptions> = {}) =>
    new Listener({
      agent: 'alice',
      keys: keyRingFromSecrets({ bob: [SECRET] }),
      source,
      dialer,
      state: await ListenerState.open(stateDir),
      bootstrapDir,
      telephony: {
        from: '+15550001111',
        target: { kind: 'stream', url: 'wss://alice.example.com/twilio' },
        leadIn: false,
        ringTimeoutSec: 25,
        machineDetection: true,
        fallbackSms: true,
        completeAfterSec: 0,
      },
      contacts: new Map([[callerHash(CALLER), CALLER]]),
      followCall: (sid) => dialer.getCall(sid),
      clock: () => clock,
      logger,
      onEvent,
      ...extra,
      ...over,
    });
  return { dir, source, dialer, logger, events, stateDir, bootstrapDir, make, advance: (ms: number) => (clock += ms) };
}

test('a valid handoff is accepted, bootstrapped, dialed once and completed when connected', async (t) => {
  const s = await setup(t);
  const p = payload();
  s.source.add(p.payload.handoff_id, p.text);
  const listener = await s.make();
  await listener.handle({ id: p.payload.handoff_id, text: p.text });
  assert.equal(s.dialer.dials.length, 1);
  const dial = s.dialer.dials[0];
  assert.ok(dial, 'dial');
  assert.equal(dial.to, CALLER, 'the number comes from the contact list by caller hash');
  assert.equal(dial.from, '+15550001111');
  assert.deepEqual(dial.target, { kind: 'stream', url: 'wss://alice.example.com/twilio' });
  const settled = s.source.settled.get(p.payload.handoff_id);
  assert.equal(settled?.how, 'complete');
  assert.equal(settled?.outcome, 'connected');
  assert.match(settled?.token ?? '', /^[A-Za-z0-9_-]{43}$/, 'settled with the token the listener proposed');
  assert.deepEqual(s.events.map((e) => e.event), ['accepted', 'bootstrap_written', 'dialed', 'call_ended', 'completed']);

  const file = bootstrapPath(s.bootstrapDir, p.payload.handoff_id);
  const boot = await readBootstrap(file, { nowMs: NOW + 2000 });
  assert.ok(boot, 'gptme-voice would use this file');
  assert.equal(boot.protocol_version, 1);
  assert.equal(boot.source, 'voice_handoff');
  assert.equal(boot.handoff_id, p.payload.handoff_id);
  assert.match(boot.resume_context, /Start with this sentence.*"Bob passed me context about Patrik's standup/);
  assert.match(boot.resume_context, /Do not ask the caller to repeat/);
  assert.match(boot.resume_context, /Caller: Can Alice set up a weekly standup with Patrik\?/);
  assert.match(boot.resume_context, /schedule meeting \(with: Patrik\)/);
  assert.deepEqual(boot.transcript, p.payload.transcript, 'the full context is there for other voice servers');
  assert.equal(await readBootstrap(file, { nowMs: NOW + 1000 + 301_000 }), undefined, 'stale after the 300 s resume window');
});

test('a tampered payload is refused with SIGNATURE: no bootstrap, no call, logged without content', async (t) => {
  const s = await setup(t);
  const p = payload();
  const tampered = p.text.replace('weekly standup', 'wire transfer!');
  s.source.add(p.payload.handoff_id, tampered);
  const listener = await s.make();
  await listener.handle({ id: p.payload.handoff_id, text: tampered });
  assert.deepEqual(s.source.settled.get(p.payload.handoff_id), { how: 'reject', outcome: 'SIGNATURE', token: undefined });
  assert.equal(s.dialer.dials.length, 0);
  await assert.rejects(readdir(s.bootstrapDir), { code: 'ENOENT' });
  const line = s.logger.lines.find((l) => l.includes('handoff refused'));
  assert.ok(line && line.includes('"security":true') && line.includes('SIGNATURE'), 'line && line.includes(\'"security":true\') && line.includes(\'SIGNATURE\')');
  assert.ok(!s.logger.lines.join('\n').includes('wire transfer'), 'no transcript text in logs');
  assert.ok(!s.logger.lines.join('\n').includes(CALLER), 'no phone number in logs');
});

test('no answer → one fallback SMS → rejected with no_answer', async (t) => {
  const s = await setup(t);
  s.dialer.outcome = { status: 'no-answer' };
  const p = payload();
  await offerAndHandle(s, p);
  assert.equal(s.dialer.messages.length, 1);
  const sms = s.dialer.messages[0];
  assert.ok(sms, 'sms');
  assert.equal(sms.to, CALLER);
  assert.ok(sms.body.length <= 160, 'sms.body.length <= 160');
  assert.match(sms.body, /Alice/);
  assert.deepEqual(s.source.settled.get(p.payload.handoff_id)?.outcome, 'no_answer');
});

test('an answering machine counts as not reached: SMS, then rejected with machine', async (t) => {
  const s = await setup(t);
  s.dialer.outcome = { status: 'completed', answeredBy: 'machine_end_beep' };
  const p = payload();
  await offerAndHandle(s, p);
  assert.equal(s.dialer.messages.length, 1);
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'machine');
});

test('a replayed id is refused with REPLAY, also after a listener restart', async (t) => {
  const s = await setup(t);
  const p = payload();
  await offerAndHandle(s, p);
  s.source.settled.clear();
  s.source.add(p.payload.handoff_id, p.text);
  const restarted = await s.make();
  await restarted.handle({ id: p.payload.handoff_id, text: p.text });
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'REPLAY');
  assert.equal(s.dialer.dials.length, 1, 'still exactly one call');
});

test('a crash after the dial intent was journaled never leads to a second call', async (t) => {
  const s = await setup(t);
  const p = payload();
  s.source.add(p.payload.handoff_id, p.text);
  // The first listener "crashes" inside dial(): the intent is journaled, the call may exist.
  s.dialer.dialError = new HandoffError('INTERNAL', 'process killed');
  const crashing = await s.make();
  const crashed = new Promise<void>((resolve) => {
    s.dialer.dial = async (req) => {
      s.dialer.dials.push(req);
      resolve();
      return new Promise(() => undefined); // never returns: the process died here
    };
  });
  void crashing.handle({ id: p.payload.handoff_id, text: p.text });
  await crashed;
  const restarted = await s.make();
  restarted.start();
  await new Promise((r) => setTimeout(r, 50));
  await restarted.idle();
  await restarted.stop();
  assert.equal(s.dialer.dials.length, 1, 'the restarted listener did not dial again');
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'dial_interrupted');
});

test('no callback number and an unknown caller → rejected with no_number, nothing dialed', async (t) => {
  const s = await setup(t, { contacts: new Map() });
  const p = payload();
  await offerAndHandle(s, p);
  assert.equal(s.dialer.dials.length, 0);
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'no_number');
});

test('callback_number in the payload is used when the caller is not a contact', async (t) => {
  const s = await setup(t, { contacts: new Map() });
  const p = payload({ sendCallbackNumber: true });
  await offerAndHandle(s, p);
  assert.equal(s.dialer.dials[0]?.to, CALLER);
});

test('opted out (21610) is final and remembered across restarts', async (t) => {
  const s = await setup(t);
  s.dialer.dialError = new HandoffError('OPTED_OUT', 'Twilio 21610');
  const first = payload();
  await offerAndHandle(s, first);
  assert.equal(s.source.settled.get(first.payload.handoff_id)?.outcome, 'opted_out');
  assert.equal(s.dialer.messages.length, 0, 'no SMS to an opted-out number');
  s.dialer.dialError = undefined;
  const second = buildPayload({ from: 'bob', to: 'alice', callerId: CALLER, reason: 'again', transcript: [] }, SECRET, NOW + 5000);
  await offerAndHandle(s, second);
  assert.equal(s.dialer.dials.length, 1, 'the second handoff for that caller is not dialed');
  assert.equal(s.source.settled.get(second.payload.handoff_id)?.outcome, 'opted_out');
});

test('an sms channel handoff continues by message with the resume hint first', async (t) => {
  const s = await setup(t);
  const p = payload({ channel: 'whatsapp' });
  await offerAndHandle(s, p);
  assert.equal(s.dialer.dials.length, 0);
  assert.equal(s.dialer.messages[0]?.channel, 'whatsapp');
  assert.equal(s.dialer.messages[0]?.body, p.payload.resume_hint);
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'messaged');
});

test('the loop fetches, backs off on fetch errors without spinning, and stop() is idempotent', async (t) => {
  const s = await setup(t, { backoffMs: { initial: 20, max: 40 } });
  let calls = 0;
  s.source.next = async () => {
    calls++;
    throw new HandoffError('UNAVAILABLE', 'hub down');
  };
  const listener = await s.make();
  listener.start();
  await new Promise((r) => setTimeout(r, 200));
  await Promise.all([listener.stop(), listener.stop()]);
  assert.ok(calls >= 2, 'it retried');
  assert.ok(calls <= 12, `it backed off instead of spinning (${calls} attempts in 200 ms)`);
  assert.equal(s.source.closed, true);
});

test('the journal of a delivered handoff records its phases durably', async (t) => {
  const s = await setup(t);
  const p = payload();
  await offerAndHandle(s, p);
  const journal = JSON.parse(await readFile(path.join(s.stateDir, 'handoffs', `${p.payload.handoff_id}.json`), 'utf8')) as Record<string, unknown>;
  assert.equal(journal.phase, 'done');
  assert.equal(journal.outcome, 'connected');
  assert.match(String(journal.call_sid), /^CA/);
});

test('a delivery step that fails (hub briefly unavailable) is retried after a pause and settles', async (t) => {
  const s = await setup(t);
  const p = payload();
  s.source.add(p.payload.handoff_id, p.text);
  completeFailsOnce(s.source);
  const listener = await s.make();
  listener.start();
  t.after(() => listener.stop());
  await until(() => s.events.some((e) => e.event === 'error'));
  assert.equal(s.source.settled.size, 0, 'the first attempt failed');
  s.advance(5000); // past the retry pause
  await until(() => s.source.settled.has(p.payload.handoff_id));
  assert.deepEqual(s.source.settled.get(p.payload.handoff_id)?.outcome, 'connected');
  assert.equal(s.dialer.dials.length, 1, 'the retry resumed from the journal: still one call');
});

test('a crash between the claim and its answer is resumed by repeating the claim with the journaled token', async (t) => {
  const s = await setup(t);
  const p = payload();
  s.source.add(p.payload.handoff_id, p.text);
  const realAccept = s.source.accept.bind(s.source);
  const claimedButDied = new Promise<void>((resolve) => {
    s.source.accept = async (id, token) => {
      await realAccept(id, token); // the hub claimed it ...
      resolve();
      return new Promise(() => undefined); // ... but the listener died before hearing the answer
    };
  });
  void (await s.make()).handle({ id: p.payload.handoff_id, text: p.text });
  await claimedButDied;
  s.source.accept = realAccept;
  const restarted = await s.make();
  restarted.start();
  for (let i = 0; i < 400 && !s.source.settled.has(p.payload.handoff_id); i++) await new Promise((r) => setTimeout(r, 5));
  await restarted.stop();
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'connected', 'the restarted listener finished the delivery');
  assert.equal(s.source.accepts, 1, 'one claim at the source');
  assert.equal(s.dialer.dials.length, 1, 'one call');
});

test('a handoff whose claim was lost can be taken again later; a delivered one cannot', async (t) => {
  const s = await setup(t);
  const p = payload();
  const id = p.payload.handoff_id;
  const realAccept = s.source.accept.bind(s.source);
  s.source.accept = async () => {
    throw new HandoffError('NOT_FOUND', 'briefly not visible');
  };
  const listener = await s.make();
  await listener.handle({ id, text: p.text });
  assert.equal(s.dialer.dials.length, 0);
  s.source.accept = realAccept;
  s.source.add(id, p.text);
  await listener.handle({ id, text: p.text });
  assert.equal(s.dialer.dials.length, 1, 'the second attempt claimed and dialed');
  s.source.settled.clear();
  s.source.add(id, p.text);
  await listener.handle({ id, text: p.text });
  assert.equal(s.source.settled.get(id)?.outcome, 'REPLAY');
  assert.equal(s.dialer.dials.length, 1);
});

/** Offers `p` at the source and has a fresh listener handle it to the end. */
async function offerAndHandle(s: Awaited<ReturnType<typeof setup>>, p: ReturnType<typeof payload>): Promise<void> {
  s.source.add(p.payload.handoff_id, p.text);
  await (await s.make()).handle({ id: p.payload.handoff_id, text: p.text });
}

/** The source's complete fails once (the hub restarting), then works. */
function completeFailsOnce(source: FakeSource): void {
  const realComplete = source.complete.bind(source);
  let failures = 0;
  source.complete = async (...args) => {
    if (failures++ === 0) throw new HandoffError('UNAVAILABLE', 'hub restarting');
    return realComplete(...args);
  };
}

/** Waits (real time) until `check` holds, at most about 2 s. */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
}

test('a failed delivery is retried after the pause even while the next poll is parked', async (t) => {
  const s = await setup(t, { retryMs: 30 });
  const p = payload();
  const id = p.payload.handoff_id;
  s.source.add(id, p.text);
  // Like the hub: once the handoff is claimed, a poll parks (here: until the listener stops).
  const parkedNext = s.source.next.bind(s.source);
  s.source.next = async (signal) => {
    if (s.source.pending.size > 0) return parkedNext(signal);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    return [];
  };
  completeFailsOnce(s.source);
  const listener = await s.make();
  listener.start();
  t.after(() => listener.stop());
  await until(() => s.source.settled.has(id));
  assert.equal(s.source.settled.get(id)?.outcome, 'connected', 'retried while the poll stayed parked');
  assert.equal(s.dialer.dials.length, 1);
});

test('a message whose completion failed after it was sent is completed as messaged when resumed', async (t) => {
  const s = await setup(t);
  const p = payload({ channel: 'sms' });
  const id = p.payload.handoff_id;
  s.source.add(id, p.text);
  const realComplete = s.source.complete.bind(s.source);
  s.source.complete = async () => {
    throw new HandoffError('UNAVAILABLE', 'hub restarting');
  };
  await (await s.make()).handle({ id, text: p.text }).catch(() => undefined);
  assert.equal(s.dialer.messages.length, 1);
  s.source.complete = realComplete;
  const restarted = await s.make();
  restarted.start();
  await until(() => s.source.settled.has(id));
  await restarted.stop();
  assert.equal(s.source.settled.get(id)?.outcome, 'messaged', 'the message went out: not message_interrupted');
  assert.equal(s.dialer.messages.length, 1, 'and it is not sent twice');
});

test('an SMS opt-out (21610 on the fallback SMS) does not stop later voice calls to that caller', async (t) => {
  const s = await setup(t);
  s.dialer.outcome = { status: 'no-answer' };
  s.dialer.messageError = new HandoffError('OPTED_OUT', 'Twilio 21610');
  const first = payload();
  await offerAndHandle(s, first);
  assert.equal(s.source.settled.get(first.payload.handoff_id)?.outcome, 'no_answer');
  s.dialer.messageError = undefined;
  const second = buildPayload({ from: 'bob', to: 'alice', callerId: CALLER, reason: 'again', transcript: [] }, SECRET, NOW + 5000);
  await offerAndHandle(s, second);
  assert.equal(s.dialer.dials.length, 2, 'the second handoff is dialed');
  assert.equal(s.source.settled.get(second.payload.handoff_id)?.outcome, 'no_answer');
  assert.equal(s.dialer.messages.length, 1, 'but gets no SMS: the caller opted out of those');
});

/**
 * A journal left before the call by a listener that stopped long ago, its claim at the source:
 * `accepted` is where this version stops before `dial_intent`; `bootstrapped` is where earlier
 * versions did, and such journals must resume the same way.
 */
async function interruptedBeforeCall(s: Awaited<ReturnType<typeof setup>>, p: ReturnType<typeof payload>, phase: 'accepted' | 'bootstrapped' = 'accepted'): Promise<void> {
  const id = p.payload.handoff_id;
  const token = 't'.repeat(43);
  s.source.claimed.set(id, token);
  const state = await ListenerState.open(s.stateDir);
  const longAgo = new Date(NOW - 3600_000).toISOString();
  await state.save({ handoff_id: id, from_agent: 'bob', payload_text: p.text, claim_token: token, lease_until: longAgo, accepted_at: longAgo, phase, updated_at: longAgo });
}

/** Resumes `interruptedBeforeCall` with a listener whose renew is fenced; returns once it skipped. */
async function resumeWithClaimLost(s: Awaited<ReturnType<typeof setup>>): Promise<ReturnType<typeof payload>> {
  const p = payload();
  await interruptedBeforeCall(s, p);
  s.source.renew = async () => {
    throw new HandoffError('FENCED', 'the claim lease expired');
  };
  const listener = await s.make();
  listener.start();
  await until(() => s.events.some((e) => e.event === 'skipped'));
  await listener.stop();
  return p;
}

test('a delivery resumed after its claim was lost (lease expired while the listener was down) does not dial', async (t) => {
  const s = await setup(t);
  const p = await resumeWithClaimLost(s);
  assert.equal(s.dialer.dials.length, 0, 'nobody is tracking this handoff any more: no call');
  const journal = JSON.parse(await readFile(path.join(s.stateDir, 'handoffs', `${p.payload.handoff_id}.json`), 'utf8')) as { phase: string; outcome: string };
  assert.deepEqual([journal.phase, journal.outcome], ['done', 'claim_lost:FENCED']);
});

for (const phase of ['accepted', 'bootstrapped'] as const) {
  test(`a delivery resumed at ${phase} with its claim still held renews it and rewrites the bootstrap file fresh before it dials`, async (t) => {
    const s = await setup(t);
    const p = payload();
    await interruptedBeforeCall(s, p, phase);
    const listener = await s.make();
    listener.start();
    await until(() => s.source.settled.has(p.payload.handoff_id));
    await listener.stop();
    assert.equal(s.source.renewals, 1, 'the claim was renewed before the call');
    assert.equal(s.dialer.dials.length, 1);
    const file = bootstrapPath(s.bootstrapDir, p.payload.handoff_id);
    const boot = JSON.parse(await readFile(file, 'utf8')) as { accepted_at: string };
    assert.equal(boot.accepted_at, new Date(NOW + 1000).toISOString(), 'stamped at the resume, not an hour ago');
    assert.ok(await readBootstrap(file, { nowMs: NOW + 1000 }), 'a voice server would use it');
  });
}

test('before the call, a delivery writes three journal steps and the bootstrap file, which is on disk when the call is placed', async (t) => {
  const s = await setup(t);
  const p = payload();
  const id = p.payload.handoff_id;
  s.source.add(id, p.text);
  const state = await ListenerState.open(s.stateDir);
  const realSave = state.save.bind(state);
  const phases: string[] = [];
  state.save = async (journal) => {
    phases.push(journal.phase);
    return realSave(journal);
  };
  const file = bootstrapPath(s.bootstrapDir, id);
  let bootstrapAtDial: unknown;
  const realDial = s.dialer.dial.bind(s.dialer);
  s.dialer.dial = async (target) => {
    bootstrapAtDial = await readBootstrap(file, { nowMs: NOW });
    return realDial(target);
  };
  const listener = await s.make({ state });
  listener.start();
  await until(() => s.source.settled.has(id));
  await listener.stop();
  assert.deepEqual(phases.slice(0, phases.indexOf('dial_intent') + 1), ['accepting', 'accepted', 'dial_intent']);
  assert.ok(bootstrapAtDial, 'the voice server has the context when the call reaches it');
  assert.equal(s.dialer.dials.length, 1);
});

/** The listener state of `s` with `before` run ahead of the first advance to `phase` (its throw fails that advance). */
async function stateWithFirstAdvance(s: Awaited<ReturnType<typeof setup>>, phase: DeliveryPhase, before: () => Promise<unknown>): Promise<ListenerState> {
  const state = await ListenerState.open(s.stateDir);
  const realAdvance = state.advance.bind(state);
  let done = false;
  state.advance = async (...args) => {
    if (args[1] === phase && !done) {
      done = true;
      await before();
    }
    return realAdvance(...args);
  };
  return state;
}

test('when the bootstrap file fails beside a slow `accepted` step, the retry waits for that step and starts from it: one call, `accepted` reported once', async (t) => {
  const s = await setup(t);
  const p = payload();
  const id = p.payload.handoff_id;
  s.source.add(id, p.text);
  // A regular file where the bootstrap directory belongs: the first bootstrap write fails at once.
  await mkdir(path.dirname(s.bootstrapDir), { recursive: true });
  await writeFile(s.bootstrapDir, 'in the way');
  const state = await stateWithFirstAdvance(s, 'accepted', () => delay(400));
  const listener = await s.make({ state, retryMs: 20 });
  listener.start();
  await delay(100);
  await rm(s.bootstrapDir);
  await until(() => s.source.settled.has(id));
  await delay(500);
  await listener.stop();
  assert.equal(s.dialer.dials.length, 1);
  // A retry that ran while the step was in flight would have found `accepting` and claimed again,
  // with that step still free to land behind its later ones.
  assert.equal(s.source.renewals, 1, 'the retry found the journal at accepted and renewed the claim');
  const journal = JSON.parse(await readFile(path.join(s.stateDir, 'handoffs', `${id}.json`), 'utf8')) as { phase: string };
  assert.equal(journal.phase, 'done');
  const events = s.events.filter((e) => e.handoff_id === id).map((e) => e.event);
  assert.deepEqual(events.slice(0, 4), ['accepted', 'error', 'bootstrap_written', 'dialed'], 'accepted is reported once, when it became durable');
});

test('once Twilio created the call, a failed journal write never leads to an SMS or a "failed" outcome', async (t) => {
  const s = await setup(t);
  const p = payload();
  const id = p.payload.handoff_id;
  s.source.add(id, p.text);
  const state = await stateWithFirstAdvance(s, 'dialed', async () => {
    throw new HandoffError('IO', 'disk full');
  });
  const listener = await s.make({ state, retryMs: 20 });
  listener.start();
  await until(() => s.source.settled.has(id));
  await listener.stop();
  assert.equal(s.dialer.dials.length, 1);
  assert.equal(s.dialer.messages.length, 0, 'no fallback SMS while the call may be ringing');
  assert.equal(s.source.settled.get(id)?.outcome, 'dial_interrupted');
});

test('finished journals past their retention are deleted when the listener starts; unfinished and recent ones stay', async (t) => {
  const s = await setup(t);
  const state = await ListenerState.open(s.stateDir);
  const old = new Date(NOW - 8 * 24 * 3600_000).toISOString();
  const base = { from_agent: 'bob', payload_text: '{}', claim_token: 't'.repeat(43), lease_until: old, accepted_at: old, updated_at: old };
  await state.save({ ...base, handoff_id: 'old-done', phase: 'done', outcome: 'connected', finished_at: old });
  await state.save({ ...base, handoff_id: 'recent-done', phase: 'done', outcome: 'connected', finished_at: new Date(NOW).toISOString() });
  await state.save({ ...base, handoff_id: 'old-open', phase: 'dial_intent' });
  s.source.renew = async () => {
    throw new HandoffError('FENCED', 'gone');
  };
  const listener = await s.make();
  listener.start();
  await until(() => s.logger.lines.some((l) => l.includes('old journals deleted')));
  await listener.stop();
  const left = (await readdir(path.join(s.stateDir, 'handoffs'))).sort();
  assert.deepEqual(left, ['old-open.json', 'recent-done.json']);
});

/** The listener's latency samples and delivery counts, read from its registry. */
async function measured(metrics: ListenerMetrics) {
  const r = metrics.registry;
  const delivered = (how: string, outcome: string) => metricValue(r, 'handoff_listener_deliveries_total', undefined, { how, outcome });
  return {
    acceptToDial: {
      count: await metricValue(r, 'handoff_listener_accept_to_dial_seconds', 'handoff_listener_accept_to_dial_seconds_count'),
      sum: await metricValue(r, 'handoff_listener_accept_to_dial_seconds', 'handoff_listener_accept_to_dial_seconds_sum'),
    },
    dialToAnswer: {
      count: await metricValue(r, 'handoff_listener_dial_to_answer_seconds', 'handoff_listener_dial_to_answer_seconds_count'),
      sum: await metricValue(r, 'handoff_listener_dial_to_answer_seconds', 'handoff_listener_dial_to_answer_seconds_sum'),
    },
    delivered,
    errors: (code: string) => metricValue(r, 'handoff_listener_delivery_errors_total', undefined, { code }),
  };
}

/**
 * Offers one handoff and handles it, the call followed by polls one second apart on the test clock
 * that find `calls` in turn (the last one repeats); the delivery must end connected.
 */
async function handleFollowing(s: Awaited<ReturnType<typeof setup>>, calls: ReadonlyArray<Omit<CallInfo, 'sid'>>): Promise<void> {
  let polls = 0;
  const followCall: ListenerOptions['followCall'] = (sid, _id, signal) =>
    followCallByPolling({
      getCall: async () => ({ ...(calls[Math.min(polls++, calls.length - 1)] as Omit<CallInfo, 'sid'>), sid }),
      sid,
      intervalMs: 1000,
      clock: () => s.advance(0),
      sleep: async (ms) => void s.advance(ms),
      signal,
    });
  const p = payload();
  s.source.add(p.payload.handoff_id, p.text);
  await (await s.make({ followCall })).handle({ id: p.payload.handoff_id, text: p.text });
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'connected');
}

test('an answered call gives one accept → dial and one dial → answer sample, timed on the listener clock', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  // Twilio takes 1.5 s to acknowledge the create; the call rings for two polls, then is answered.
  const realDial = s.dialer.dial.bind(s.dialer);
  s.dialer.dial = async (req) => {
    s.advance(1500);
    return realDial(req);
  };
  const calls = (['ringing', 'ringing', 'in-progress', 'completed'] as const).map((status) => ({ status, answeredBy: 'human' as const }));
  await handleFollowing(s, calls);
  const m = await measured(metrics);
  assert.deepEqual(m.acceptToDial, { count: 1, sum: 1.5 }, 'from the claim to the acknowledged create');
  assert.deepEqual(m.dialToAnswer, { count: 1, sum: 2 }, 'from the acknowledgment to the poll that saw in-progress');
  assert.equal(await m.delivered('completed', 'connected'), 1);
});

test('a short call seen only ringing and then completed is dated back from its duration for dial → answer', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  // Polls at +0 and +1 s see it ringing; the one at +2 s finds it completed after 1 s of talk
  // (Twilio counts whole seconds): answered at about +1 s, just after that poll.
  await handleFollowing(s, [{ status: 'ringing' }, { status: 'ringing' }, { status: 'completed', durationSec: 1 }]);
  const m = await measured(metrics);
  assert.deepEqual(m.dialToAnswer, { count: 1, sum: 1 }, 'the end (+2 s) less the 1 s the call lasted');
});

test('a call whose end is learnt of long after it came gives no dial → answer sample', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  // Reported finished after 42 s of talk on the very first look, as a dry-run dialer does.
  s.dialer.outcome = { status: 'completed', answeredBy: 'human', durationSec: 42 };
  await offerAndHandle(s, payload());
  const m = await measured(metrics);
  assert.equal(await m.delivered('completed', 'connected'), 1);
  assert.equal(m.acceptToDial.count, 1);
  assert.equal(m.dialToAnswer.count, 0, 'an answer dated 42 s before the dial is not a sample');
});

test('a call followed again after a failed follow gives no dial → answer sample', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  let follows = 0;
  // The first follow fails a minute in; the retry finds the call completed after 3 s of talk.
  const followCall: ListenerOptions['followCall'] = async (sid) => {
    if (follows++ === 0) {
      s.advance(60_000);
      throw new HandoffError('INTERNAL', 'call lookup failed');
    }
    return { sid, status: 'completed', answeredBy: 'human', durationSec: 3 };
  };
  const p = payload();
  s.source.add(p.payload.handoff_id, p.text);
  const listener = await s.make({ followCall });
  listener.start();
  t.after(() => listener.stop());
  await until(() => s.events.some((e) => e.event === 'error'));
  s.advance(5000); // past the retry pause
  await until(() => s.source.settled.has(p.payload.handoff_id));
  assert.equal(s.source.settled.get(p.payload.handoff_id)?.outcome, 'connected');
  assert.equal(follows, 2);
  const m = await measured(metrics);
  assert.equal(m.dialToAnswer.count, 0, 'the retry learnt of the end a minute late');
});

test('a call that was never answered gives an accept → dial sample but no dial → answer one', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  s.dialer.outcome = { status: 'no-answer' };
  await offerAndHandle(s, payload());
  const m = await measured(metrics);
  assert.equal(m.acceptToDial.count, 1);
  assert.ok(m.acceptToDial.sum >= 0, 'm.acceptToDial.sum >= 0');
  assert.equal(m.dialToAnswer.count, 0);
  assert.equal(await m.delivered('rejected', 'no_answer'), 1);
});

test('a refused payload and a no_number delivery are counted by how and outcome, with no latency samples', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics, contacts: new Map() });
  const tampered = payload();
  const text = tampered.text.replace('weekly standup', 'wire transfer!');
  s.source.add(tampered.payload.handoff_id, text);
  await (await s.make()).handle({ id: tampered.payload.handoff_id, text });
  await offerAndHandle(s, buildPayload({ from: 'bob', to: 'alice', callerId: CALLER, reason: 'again', transcript: [] }, SECRET, NOW + 5000));
  const m = await measured(metrics);
  assert.equal(await m.delivered('refused', 'SIGNATURE'), 1);
  assert.equal(await m.delivered('rejected', 'no_number'), 1);
  assert.equal(await m.delivered('completed', 'connected'), 0);
  assert.equal(m.acceptToDial.count, 0, 'nothing was dialed');
});

test('a resumed delivery measures accept → dial from the journaled accepted_at, not from the restart', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  const p = payload();
  await interruptedBeforeCall(s, p); // accepted an hour before NOW
  const listener = await s.make();
  listener.start();
  await until(() => s.source.settled.has(p.payload.handoff_id));
  await listener.stop();
  assert.deepEqual((await measured(metrics)).acceptToDial, { count: 1, sum: 3601 }, 'NOW + 1 s − (NOW − 1 h)');
});

test('a call dialed by an earlier run gives no dial → answer sample when its resumed follow sees it answered', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  const p = payload();
  const id = p.payload.handoff_id;
  const token = 't'.repeat(43);
  s.source.claimed.set(id, token);
  const at = new Date(NOW).toISOString();
  const sid = `CA${'7'.repeat(32)}`;
  await (await ListenerState.open(s.stateDir)).save({ handoff_id: id, from_agent: 'bob', payload_text: p.text, claim_token: token, lease_until: at, accepted_at: at, phase: 'dialed', call_sid: sid, updated_at: at });
  const listener = await s.make({ followCall: async () => ({ sid, status: 'completed', answeredBy: 'human', answeredAtMs: NOW + 500 }) });
  listener.start();
  await until(() => s.source.settled.has(id));
  await listener.stop();
  assert.equal(s.source.settled.get(id)?.outcome, 'connected');
  const m = await measured(metrics);
  assert.equal(m.dialToAnswer.count, 0, 'this run never saw the dial acknowledged');
  assert.equal(m.acceptToDial.count, 0);
  assert.equal(await m.delivered('completed', 'connected'), 1);
});

test('a failed delivery attempt is counted as an error by code, and the delivery once when it finally settles', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics, retryMs: 20 });
  const p = payload();
  s.source.add(p.payload.handoff_id, p.text);
  completeFailsOnce(s.source);
  const listener = await s.make();
  listener.start();
  t.after(() => listener.stop());
  await until(() => s.source.settled.has(p.payload.handoff_id));
  await listener.stop();
  const m = await measured(metrics);
  assert.equal(await m.errors('UNAVAILABLE'), 1);
  assert.equal(await m.delivered('completed', 'connected'), 1);
  assert.equal(m.acceptToDial.count, 1, 'the retry did not dial again');
});

test('a handoff someone else claimed and a resumed one whose claim was lost are counted as skipped, by why', async (t) => {
  const metrics = createListenerMetrics();
  const s = await setup(t, { metrics });
  await resumeWithClaimLost(s);
  const taken = payload({ callerId: '+15557654321' });
  await (await s.make()).handle({ id: taken.payload.handoff_id, text: taken.text }); // never offered: NOT_FOUND at accept
  const m = await measured(metrics);
  assert.equal(await m.delivered('skipped', 'claim_lost:FENCED'), 1);
  assert.equal(await m.delivered('skipped', 'not_claimed:NOT_FOUND'), 1);
  assert.equal(m.acceptToDial.count, 0);
});
