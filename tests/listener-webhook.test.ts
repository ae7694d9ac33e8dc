/**
 * The listener following a call by Twilio status callbacks: signed callbacks (computed with the
 * SDK's own function) reach the webhook endpoint behind a "proxy" public URL, feed the
 * CallEventHub, and drive the delivery; a forged callback changes nothing.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { serve } from '@hono/node-server';
import twilio from 'twilio';
import {
  CallEventHub,
  createCallWebhookApp,
  Listener,
  ListenerState,
  statusCallbackUrl,
} from '../agent-listener/index.js';
import { createTwilioSignatureValidator, TwilioDialer } from '../agent-listener/twilio-dialer.js';
import { buildPayload, callerHash, keyRingFromSecrets } from '../protocol/index.js';
import { captureLogger, eventLog, FakeSource } from './helpers/fakes.js';
import { tmpDir } from './helpers/tmp.js';
import { startTwilioStub } from './helpers/twilio-stub.js';

const SECRET = 'bob-alice-pair-secret-0123456789abcdef';
const AUTH_TOKEN = 'webhook-test-auth-token';
const CALLER = '+15551234567';
const PUBLIC_URL = 'https://alice.example.com/handoff/status';

test('a busy signal reported by a signed status callback → one SMS → rejected busy; a forged one is refused', async (t) => {
  const dir = await tmpDir(t);
  const stub = await startTwilioStub(t);
  const events = new CallEventHub();
  const app = createCallWebhookApp({ publicUrl: PUBLIC_URL, validateSignature: createTwilioSignatureValidator(AUTH_TOKEN), onEvent: (e) => events.push(e) });
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const local = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  const source = new FakeSource();
  const dialer = new TwilioDialer({ accountSid: `AC${'1'.repeat(32)}`, authToken: AUTH_TOKEN, apiBaseUrl: stub.baseUrl, callsPerSecond: 1000 });
  const { events: seen, onEvent } = eventLog();
  const abortPolls = new AbortController();
  const listener = new Listener({
    agent: 'alice',
    keys: keyRingFromSecrets({ bob: [SECRET] }),
    source,
    dialer,
    state: await ListenerState.open(path.join(dir, 'state')),
    bootstrapDir: path.join(dir, 'boot'),
    telephony: {
      from: '+15550001111',
      target: { kind: 'stream', url: 'wss://alice.example.com/twilio' },
      leadIn: true,
      ringTimeoutSec: 20,
      machineDetection: true,
      statusCallbackUrl: (id) => statusCallbackUrl(PUBLIC_URL, id),
      fallbackSms: true,
      completeAfterSec: 0,
    },
    contacts: new Map([[callerHash(CALLER), CALLER]]),
    // A long safety-poll interval: the outcome must come from the callback.
    followCall: (sid, _id, signal) => events.wait(sid, (s) => dialer.getCall(s), 60_000, AbortSignal.any([signal, abortPolls.signal])),
    logger: captureLogger(),
    onEvent,
  });
  t.after(() => abortPolls.abort());
  const p = buildPayload({ from: 'bob', to: 'alice', callerId: CALLER, reason: 'scheduling', transcript: [], resumeHint: 'Hi, Alice here.' }, SECRET, Date.now());
  const id = p.payload.handoff_id;
  source.add(id, p.text);
  const delivering = listener.handle({ id, text: p.text });
  for (let i = 0; i < 400 && !seen.some((e) => e.event === 'dialed'); i++) await new Promise((r) => setTimeout(r, 5));
  const callSid = seen.find((e) => e.event === 'dialed')?.detail as string;
  const create = new Map(stub.requests.find((r) => r.path.endsWith('/Calls.json'))?.form);
  assert.equal(create.get('StatusCallback'), statusCallbackUrl(PUBLIC_URL, id), 'Twilio is told the public URL');
  assert.match(create.get('Twiml') ?? '', /<Say>Hi, Alice here\.<\/Say>/, 'the lead-in speaks the resume hint');

  const callbackUrl = statusCallbackUrl(PUBLIC_URL, id);
  const params = { CallSid: callSid, CallStatus: 'busy', AccountSid: `AC${'1'.repeat(32)}` };
  const post = (signature: string, body: Record<string, string>) =>
    fetch(`${local}${new URL(callbackUrl).pathname}${new URL(callbackUrl).search}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
      body: new URLSearchParams(body),
    });
  const forged = await post(twilio.getExpectedTwilioSignature('not-the-auth-token', callbackUrl, params), params);
  assert.equal(forged.status, 403);
  assert.equal(source.settled.size, 0, 'a forged callback settles nothing');
  const genuine = await post(twilio.getExpectedTwilioSignature(AUTH_TOKEN, callbackUrl, params), params);
  assert.equal(genuine.status, 204);
  await delivering;
  assert.equal(source.settled.get(id)?.outcome, 'busy');
  assert.equal(stub.requests.filter((r) => r.path.endsWith('/Messages.json')).length, 1, 'one fallback SMS');
  assert.equal(stub.requests.filter((r) => r.method === 'GET').length, 0, 'no polling was needed');
});

test('waiting for a call with a signal that is aborted already rejects at once and polls nothing', async () => {
  const events = new CallEventHub();
  const stopped = new AbortController();
  stopped.abort();
  let polls = 0;
  const poll = async (sid: string) => {
    polls++;
    return { sid, status: 'in-progress' as const };
  };
  await assert.rejects(events.wait('CA00000000000000000000000000000001', poll, 5, stopped.signal));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(polls, 0, 'no safety polls keep running for a listener that is stopping');
});

test('the CallEventHub stamps the first in-progress callback and keeps it in the call’s settled state', async () => {
  let now = 1000;
  const events = new CallEventHub({ clock: () => now });
  const sid = `CA${'5'.repeat(32)}`;
  const push = (callStatus: 'ringing' | 'in-progress' | 'completed', extra = {}) => events.push({ handoffId: 'h1', callSid: sid, callStatus, ...extra });
  const never = new AbortController().signal;
  const settled = events.wait(sid, async () => assert.fail('no poll is due'), 60_000, never);
  push('ringing');
  now = 4000;
  push('in-progress');
  now = 9000;
  push('in-progress'); // a repeated (or reordered) answered callback does not move the stamp
  push('completed', { answeredBy: 'human', durationSec: 12 });
  assert.deepEqual(await settled, { sid, status: 'completed', answeredBy: 'human', durationSec: 12, answeredAtMs: 4000 });
  now = 20_000;
  push('in-progress'); // late, after the end: ignored
  assert.equal((await events.wait(sid, async () => assert.fail('no poll'), 60_000, never)).answeredAtMs, 4000);

  const unanswered = `CA${'6'.repeat(32)}`;
  events.push({ handoffId: 'h2', callSid: unanswered, callStatus: 'no-answer' });
  assert.equal('answeredAtMs' in (await events.wait(unanswered, async () => assert.fail('no poll'), 60_000, never)), false);
});

test('the CallEventHub forgets the oldest live calls past a thousand (a final callback that never came)', async () => {
  const events = new CallEventHub({ clock: () => 7 });
  const sidOf = (k: number) => `CA${String(k).padStart(32, '0')}`;
  for (let k = 0; k <= 1000; k++) events.push({ handoffId: `h${k}`, callSid: sidOf(k), callStatus: 'in-progress', answeredBy: 'human' });
  const never = new AbortController().signal;
  const settle = async (k: number) => {
    events.push({ handoffId: `h${k}`, callSid: sidOf(k), callStatus: 'completed' });
    return events.wait(sidOf(k), async () => assert.fail('no poll'), 60_000, never);
  };
  assert.deepEqual(await settle(0), { sid: sidOf(0), status: 'completed', answeredBy: undefined, durationSec: undefined }, 'the oldest was forgotten');
  assert.deepEqual(await settle(1), { sid: sidOf(1), status: 'completed', answeredBy: 'human', durationSec: undefined, answeredAtMs: 7 });
  assert.equal((await settle(1000)).answeredAtMs, 7);
});

test('the CallEventHub’s safety poll stamps the answer too when no callback comes', async () => {
  let now = 0;
  const events = new CallEventHub({ clock: () => (now += 100) });
  const statuses = ['ringing', 'in-progress', 'in-progress', 'completed'] as const;
  let polls = 0;
  const poll = async (sid: string) => ({ sid, status: statuses[Math.min(polls++, statuses.length - 1)] as (typeof statuses)[number] });
  const info = await events.wait(`CA${'8'.repeat(32)}`, poll, 2, new AbortController().signal);
  assert.equal(info.status, 'completed');
  assert.equal(info.answeredAtMs, 100, 'stamped once, at the first poll that saw in-progress');
});
