/**
 * Contract tests: our TwilioDialer (the official SDK underneath) against Prism serving Twilio's
 * own OpenAPI description. Every request must pass Prism's validation; a negative control proves
 * the harness notices an invalid one.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import twilio from 'twilio';
import { TwilioDialer } from '../agent-listener/twilio-dialer.js';
import type { TwilioDialerOptions } from '../agent-listener/twilio-dialer.js';
import { startPrism } from './helpers/prism.js';
import type { PrismMock } from './helpers/prism.js';

const ACCOUNT_SID = `AC${'0123456789abcdef'.repeat(2)}`;
const AUTH_TOKEN = 'test-auth-token';
const CALLER = '+15005550006';
const AGENT_NUMBER = '+15005550001';

function dialerFor(prism: PrismMock, extra: Partial<TwilioDialerOptions> = {}): TwilioDialer {
  return new TwilioDialer({
    accountSid: ACCOUNT_SID,
    authToken: AUTH_TOKEN,
    apiBaseUrl: prism.baseUrl,
    // No pacing waits and no retries: a contract test must see each request exactly once.
    sleep: async () => undefined,
    maxRetries: 0,
    ...extra,
  });
}

/** Runs `action`, then asserts Prism received `expectedRequests` requests and logged no violation. */
async function expectValid(prism: PrismMock, expectedRequests: number, action: () => Promise<void>): Promise<void> {
  const before = prism.requestCount();
  await action();
  const after = await prism.settled(before + expectedRequests);
  assert.equal(after - before, expectedRequests, 'requests that reached Prism');
  assert.deepEqual(prism.violations(before), [], 'Prism validation violations');
}

test('the Twilio SDK as used by TwilioDialer satisfies Twilio’s OpenAPI description', async (t) => {
  const prism = await startPrism(t);
  const dialer = dialerFor(prism);

  await t.test('the spec copy declares StatusCallbackEvent as a repeated form key', async () => {
    const spec = JSON.parse(await readFile(prism.specPath, 'utf8')) as {
      paths: Record<string, { post: { requestBody: { content: Record<string, { encoding?: unknown }> } } }>;
    };
    const body = spec.paths['/2010-04-01/Accounts/{AccountSid}/Calls.json']?.post.requestBody.content['application/x-www-form-urlencoded'];
    assert.deepEqual(body?.encoding, { StatusCallbackEvent: { style: 'form', explode: true } });
  });

  await t.test('a stream call with lead-in, status callback events and AMD passes validation', async () => {
    await expectValid(prism, 1, async () => {
      const result = await dialer.dial({
        handoffId: '1700000000-bob-alice-0123456789abcdef',
        to: CALLER,
        from: AGENT_NUMBER,
        target: { kind: 'stream', url: 'wss://voice.example.com/twilio' },
        leadIn: 'Bob passed me context about scheduling <your> standup & more.',
        ringTimeoutSec: 25,
        machineDetection: true,
        statusCallbackUrl: 'https://relay.example.com/twilio/status?handoff_id=1700000000-bob-alice-0123456789abcdef',
      });
      assert.match(result.sid, /^CA[0-9a-zA-Z]{32}$/);
    });
  });

  await t.test('a call to a TwiML webhook URL passes validation', async () => {
    await expectValid(prism, 1, async () => {
      const result = await dialer.dial({
        handoffId: 'h-url-1',
        to: CALLER,
        from: AGENT_NUMBER,
        target: { kind: 'twiml-url', url: 'https://voice.example.com/twiml' },
        ringTimeoutSec: 30,
        machineDetection: false,
      });
      assert.match(result.sid, /^CA/);
    });
  });

  await t.test('fetching a call passes validation and yields a known status', async () => {
    await expectValid(prism, 1, async () => {
      const info = await dialer.getCall(`CA${'1'.repeat(32)}`);
      assert.match(info.sid, /^CA/);
      assert.ok(['queued', 'ringing', 'in-progress', 'completed', 'busy', 'failed', 'no-answer', 'canceled'].includes(info.status));
    });
  });

  await t.test('cancelling and hanging up a call pass validation', async () => {
    await expectValid(prism, 2, async () => {
      await dialer.endCall(`CA${'2'.repeat(32)}`, 'cancel');
      await dialer.endCall(`CA${'2'.repeat(32)}`, 'hangup');
    });
  });

  await t.test('an SMS and a WhatsApp message pass validation', async () => {
    await expectValid(prism, 2, async () => {
      const sms = await dialer.sendMessage({ handoffId: 'h-sms-1', to: CALLER, from: AGENT_NUMBER, body: 'Alice tried to call you back.', channel: 'sms' });
      const wa = await dialer.sendMessage({ handoffId: 'h-wa-1', to: CALLER, from: AGENT_NUMBER, body: 'Hi, this is Sven.', channel: 'whatsapp' });
      assert.match(sms.sid, /^(SM|MM)/);
      assert.match(wa.sid, /^(SM|MM)/);
    });
  });

  await t.test('TWILIO_REGION and TWILIO_EDGE in the environment do not redirect the mock', async () => {
    const saved = { region: process.env['TWILIO_REGION'], edge: process.env['TWILIO_EDGE'] };
    process.env['TWILIO_REGION'] = 'au1';
    process.env['TWILIO_EDGE'] = 'sydney';
    try {
      // The SDK cannot rewrite an IP literal (the URL parser rejects "127.sydney.au1.0.1"), so
      // the mock is addressed by name here: with the variables honoured, "localhost" would become
      // "localhost.sydney.au1.localhost" and the request would never reach Prism.
      const envDialer = dialerFor(prism, { apiBaseUrl: prism.baseUrl.replace('127.0.0.1', 'localhost') });
      await expectValid(prism, 1, async () => {
        await envDialer.getCall(`CA${'3'.repeat(32)}`);
      });
    } finally {
      for (const [key, value] of [['TWILIO_REGION', saved.region], ['TWILIO_EDGE', saved.edge]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  await t.test('negative control: a call create without To is refused by Prism and reported', async () => {
    const client = twilio(ACCOUNT_SID, AUTH_TOKEN, { edge: '', region: '' });
    const before = prism.requestCount();
    const response = await client.request({
      method: 'post',
      uri: `${prism.baseUrl}/2010-04-01/Accounts/${ACCOUNT_SID}/Calls.json`,
      data: { From: AGENT_NUMBER, Twiml: '<Response/>' },
    });
    await prism.settled();
    assert.equal(response.statusCode, 422);
    const violations = prism.violations(before);
    assert.ok(violations.length > 0, 'the harness must report the violation');
    assert.ok(violations.some((v) => v.includes('To')), `a violation names the missing To: ${violations.join(' | ')}`);
  });
});
