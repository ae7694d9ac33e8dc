/**
 * Error paths, retries and pacing of TwilioDialer against a stub of our own (Prism cannot answer
 * with errors). Waits are asserted as the sleeps requested from the injected clock, never as
 * wall time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { HandoffError } from '../protocol/index.js';
import type { DialRequest } from '../agent-listener/dialer.js';
import { TwilioDialer } from '../agent-listener/twilio-dialer.js';
import type { OptOut, TwilioDialerOptions } from '../agent-listener/twilio-dialer.js';
import { freePort } from './helpers/prism.js';
import { fakeTime, startTwilioStub, twilioError } from './helpers/twilio-stub.js';
import type { TwilioStub } from './helpers/twilio-stub.js';

const ACCOUNT_SID = `AC${'ab'.repeat(16)}`;
const CALLER = '+15005550006';
const AGENT_NUMBER = '+15005550001';
const CALL_SID = `CA${'9'.repeat(32)}`;

function dialRequest(handoffId = 'h-1'): DialRequest {
  return {
    handoffId,
    to: CALLER,
    from: AGENT_NUMBER,
    target: { kind: 'stream', url: 'wss://voice.example.com/twilio' },
    ringTimeoutSec: 20,
    machineDetection: true,
  };
}

async function setup(t: TestContext, extra: Partial<TwilioDialerOptions> = {}) {
  const stub = await startTwilioStub(t);
  const time = fakeTime();
  const dialer = new TwilioDialer({
    accountSid: ACCOUNT_SID,
    authToken: 'secret-token',
    apiBaseUrl: stub.baseUrl,
    clock: time.clock,
    sleep: time.sleep,
    random: () => 0,
    ...extra,
  });
  return { stub, time, dialer };
}

function creates(stub: TwilioStub): number {
  return stub.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/Calls.json')).length;
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<HandoffError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof HandoffError, `expected a HandoffError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

test('429 then 201 → one call created after one backed-off retry', async (t) => {
  const { stub, time, dialer } = await setup(t);
  stub.reply({ status: 429, body: { code: 20429, message: 'Too Many Requests', status: 429 } });
  const result = await dialer.dial(dialRequest());
  assert.match(result.sid, /^CA/);
  assert.equal(creates(stub), 2);
  // random() = 0 → half of the first backoff step (250 ms).
  assert.deepEqual(time.sleeps, [125]);
});

test('20429 with Retry-After: 2 → the retry waits the 2 s Twilio asked for', async (t) => {
  const { stub, time, dialer } = await setup(t);
  stub.reply({ ...twilioError(429, 20429, 'Too many requests'), headers: { 'retry-after': '2' } });
  await dialer.dial(dialRequest());
  assert.equal(creates(stub), 2);
  assert.deepEqual(time.sleeps, [2000]);
});

test('429 on every attempt → UNAVAILABLE after maxRetries + 1 requests', async (t) => {
  const { stub, time, dialer } = await setup(t, { maxRetries: 2 });
  const tooMany = twilioError(429, 20429, 'Too many requests');
  stub.reply(tooMany, tooMany, tooMany, tooMany);
  await rejectsWith(dialer.dial(dialRequest()), 'UNAVAILABLE');
  assert.equal(creates(stub), 3);
  assert.equal(time.sleeps.length, 2);
});

test('backoff doubles per retry and is capped at retryMaxMs', async (t) => {
  const { stub, time, dialer } = await setup(t, { maxRetries: 6, random: () => 1 });
  const busy = twilioError(503, 20503, 'Service unavailable');
  stub.reply(busy, busy, busy, busy, busy, busy);
  await dialer.getCall(CALL_SID);
  assert.deepEqual(time.sleeps, [250, 500, 1000, 2000, 4000, 4000]);
});

test('21610 on an SMS → OPTED_OUT at once, remembered, reported, and never re-sent', async (t) => {
  const reported: OptOut[] = [];
  const { stub, time, dialer } = await setup(t, { onOptOut: (o) => reported.push(o) });
  stub.reply(twilioError(400, 21610, `Attempt to send to unsubscribed recipient ${CALLER}`));
  const req = { handoffId: 'h-2', to: CALLER, from: AGENT_NUMBER, body: 'Alice tried to call you back.', channel: 'sms' as const };
  const err = await rejectsWith(dialer.sendMessage(req), 'OPTED_OUT');
  assert.ok(!err.message.includes(CALLER.slice(1)), 'the message never carries the number');
  assert.equal(stub.requests.length, 1);
  assert.deepEqual(time.sleeps, []);
  assert.deepEqual(reported, [{ to: CALLER, channel: 'sms' }]);
  assert.equal(dialer.isOptedOut(CALLER, 'sms'), true);

  await rejectsWith(dialer.sendMessage(req), 'OPTED_OUT');
  assert.equal(stub.requests.length, 1, 'the second attempt is refused without a request');
  assert.equal(reported.length, 1);
});

test('opt-outs known from an earlier run are refused without a request', async (t) => {
  const { stub, dialer } = await setup(t, { optedOut: [{ to: CALLER, channel: 'sms' }] });
  await rejectsWith(
    dialer.sendMessage({ handoffId: 'h-3', to: CALLER, from: AGENT_NUMBER, body: 'hi', channel: 'sms' }),
    'OPTED_OUT',
  );
  assert.equal(stub.requests.length, 0);
  // An SMS opt-out does not block other channels.
  await dialer.sendMessage({ handoffId: 'h-3', to: CALLER, from: AGENT_NUMBER, body: 'hi', channel: 'whatsapp' });
  assert.equal(stub.requests.length, 1);
});

for (const code of [21211, 21220]) {
  test(`${code} on call create → DIAL_FAILED naming the code but not the number, no retry`, async (t) => {
    const { stub, time, dialer } = await setup(t);
    stub.reply(twilioError(400, code, `The 'To' number ${CALLER} is not a valid phone number.`));
    const err = await rejectsWith(dialer.dial(dialRequest()), 'DIAL_FAILED');
    assert.match(err.message, new RegExp(String(code)));
    assert.ok(!err.message.includes(CALLER.slice(1)), '!err.message.includes(CALLER.slice(1))');
    assert.equal(err.cause, undefined, 'no SDK error (with request body and auth header) is attached');
    assert.equal(creates(stub), 1);
    assert.deepEqual(time.sleeps, []);
  });
}

test('500 on call create → DIAL_UNCERTAIN after a single request: a retry could call twice', async (t) => {
  const { stub, dialer } = await setup(t);
  stub.reply(twilioError(500, 20500, 'Internal Server Error'), twilioError(500, 20500, 'Internal Server Error'));
  await rejectsWith(dialer.dial(dialRequest()), 'DIAL_UNCERTAIN');
  assert.equal(creates(stub), 1);
});

test('503 twice then 201 on call create → one call created', async (t) => {
  const { stub, time, dialer } = await setup(t);
  stub.reply(twilioError(503, 20503, 'Service unavailable'), twilioError(503, 20503, 'Service unavailable'));
  const result = await dialer.dial(dialRequest());
  assert.match(result.sid, /^CA/);
  assert.equal(creates(stub), 3);
  assert.deepEqual(time.sleeps, [125, 250]);
});

test('500 twice then 200 on a call fetch → retried (reads are idempotent) and read', async (t) => {
  const { stub, dialer } = await setup(t);
  stub.reply(twilioError(500, 20500, 'Internal Server Error'), { status: 502, body: 'bad gateway' });
  const info = await dialer.getCall(CALL_SID);
  assert.deepEqual(info, { sid: CALL_SID, status: 'completed', answeredBy: 'human', durationSec: 42 });
  assert.equal(stub.requests.length, 3);
});

test('404 on a call fetch → NOT_FOUND', async (t) => {
  const { stub, dialer } = await setup(t);
  stub.reply(twilioError(404, 20404, 'The requested resource was not found'));
  await rejectsWith(dialer.getCall(CALL_SID), 'NOT_FOUND');
});

test('a call create that gets no answer in time → DIAL_UNCERTAIN after a single request', async (t) => {
  const { stub, dialer } = await setup(t, { requestTimeoutMs: 200 });
  stub.reply({ status: 0, hang: true });
  await rejectsWith(dialer.dial(dialRequest()), 'DIAL_UNCERTAIN');
  assert.equal(creates(stub), 1);
});

test('a call fetch that times out → retried, then TIMEOUT', async (t) => {
  const { stub, time, dialer } = await setup(t, { requestTimeoutMs: 200, maxRetries: 1 });
  stub.reply({ status: 0, hang: true }, { status: 0, hang: true });
  await rejectsWith(dialer.getCall(CALL_SID), 'TIMEOUT');
  assert.equal(stub.requests.length, 2);
  assert.equal(time.sleeps.length, 1);
});

test('connection refused → retried (nothing was sent), then UNAVAILABLE', async () => {
  const port = await freePort();
  const time = fakeTime();
  const dialer = new TwilioDialer({
    accountSid: ACCOUNT_SID,
    authToken: 'secret-token',
    apiBaseUrl: `http://127.0.0.1:${port}`,
    clock: time.clock,
    sleep: time.sleep,
    random: () => 0,
    maxRetries: 2,
  });
  await rejectsWith(dialer.dial(dialRequest()), 'UNAVAILABLE');
  assert.deepEqual(time.sleeps, [125, 250]);
});

test('pacing: three calls at once start 1 s apart on the injected clock', async (t) => {
  const { stub, time, dialer } = await setup(t);
  await Promise.all([dialer.dial(dialRequest('h-a')), dialer.dial(dialRequest('h-b')), dialer.dial(dialRequest('h-c'))]);
  assert.equal(creates(stub), 3);
  assert.deepEqual(time.sleeps, [1000, 1000]);
});

test('pacing follows callsPerSecond, and a call after a quiet second waits nothing', async (t) => {
  const { time, dialer } = await setup(t, { callsPerSecond: 4 });
  await Promise.all([dialer.dial(dialRequest('h-a')), dialer.dial(dialRequest('h-b'))]);
  assert.deepEqual(time.sleeps, [250]);
  time.advance(1000);
  await dialer.dial(dialRequest('h-c'));
  assert.deepEqual(time.sleeps, [250]);
});

test('messages are not call-paced', async (t) => {
  const { stub, time, dialer } = await setup(t);
  const msg = (id: string) => dialer.sendMessage({ handoffId: id, to: CALLER, from: AGENT_NUMBER, body: 'hi', channel: 'sms' });
  await Promise.all([msg('h-a'), msg('h-b'), msg('h-c')]);
  assert.equal(stub.requests.length, 3);
  assert.deepEqual(time.sleeps, []);
});

test('an invalid request is refused with CONFIG before any request', async (t) => {
  const { stub, dialer } = await setup(t);
  await rejectsWith(dialer.dial({ ...dialRequest(), to: '0155 555' }), 'CONFIG');
  await rejectsWith(dialer.dial({ ...dialRequest(), target: { kind: 'stream', url: 'wss://v.example.com/twilio?x=1' } }), 'CONFIG');
  await rejectsWith(dialer.getCall('../Accounts'), 'CONFIG');
  assert.equal(stub.requests.length, 0);
});

test('the constructor refuses bad options before any I/O', () => {
  assert.throws(() => new TwilioDialer({ accountSid: 'SK123', authToken: 'x' }), { code: 'CONFIG' });
  assert.throws(() => new TwilioDialer({ accountSid: ACCOUNT_SID, authToken: '' }), { code: 'CONFIG' });
  assert.throws(() => new TwilioDialer({ accountSid: ACCOUNT_SID, authToken: 'x', callsPerSecond: 0 }), { code: 'CONFIG' });
  assert.throws(() => new TwilioDialer({ accountSid: ACCOUNT_SID, authToken: 'x', apiBaseUrl: 'not a url' }), { code: 'CONFIG' });
});
