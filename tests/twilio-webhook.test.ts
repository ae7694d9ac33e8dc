/**
 * The status callback endpoint: signatures are computed with the twilio SDK's own functions, as
 * Twilio would compute them, and checked by the SDK's validateRequest through our validator.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { serve } from '@hono/node-server';
import twilio from 'twilio';
import { createCallWebhookApp, statusCallbackUrl } from '../agent-listener/call-webhook.js';
import type { CallStatusEvent, CallWebhookOptions } from '../agent-listener/call-webhook.js';
import { createTwilioSignatureValidator } from '../agent-listener/twilio-dialer.js';
import { HandoffError } from '../protocol/index.js';

const AUTH_TOKEN = 'webhook-test-token';
const PUBLIC_URL = 'https://relay.example.com/twilio/status';
const CALL_SID = `CA${'5'.repeat(32)}`;
const HANDOFF_ID = '1700000000-bob-alice-0123456789abcdef';

const PARAMS: Record<string, string> = {
  AccountSid: `AC${'0'.repeat(32)}`,
  CallSid: CALL_SID,
  CallStatus: 'completed',
  AnsweredBy: 'machine_end_beep',
  CallDuration: '17',
  SequenceNumber: '3',
  To: '+15005550006',
  From: '+15005550001',
};

function webhook(extra: Partial<CallWebhookOptions> = {}) {
  const events: CallStatusEvent[] = [];
  const app = createCallWebhookApp({
    publicUrl: PUBLIC_URL,
    validateSignature: createTwilioSignatureValidator(AUTH_TOKEN),
    onEvent: (e) => {
      events.push(e);
    },
    ...extra,
  });
  return { app, events };
}

function post(url: string, params: Record<string, string>, signature: string | undefined, contentType = 'application/x-www-form-urlencoded'): RequestInit & { url: string } {
  const headers: Record<string, string> = { 'content-type': contentType };
  if (signature !== undefined) headers['x-twilio-signature'] = signature;
  return { url, method: 'POST', headers, body: new URLSearchParams(params).toString() };
}

async function send(app: { request: (url: string, init: RequestInit) => Response | Promise<Response> }, req: RequestInit & { url: string }): Promise<Response> {
  const { url, ...init } = req;
  return app.request(url, init);
}

const internalUrl = `http://127.0.0.1/twilio/status?handoff_id=${HANDOFF_ID}`;
const signedFor = (url: string, params: Record<string, string> = PARAMS): string =>
  twilio.getExpectedTwilioSignature(AUTH_TOKEN, url, params);

test('the known vector of DESIGN.md §8 is reproduced by the SDK and accepted by our validator', () => {
  const url = 'https://mycompany.com/myapp.php?foo=1&bar=2';
  const params = { CallSid: 'CA1234567890ABCDE', Caller: '+14158675309', Digits: '1234', From: '+14158675309', To: '+18005551212' };
  const signature = twilio.getExpectedTwilioSignature('12345', url, params);
  assert.equal(signature, 'RSOYDt4T1cUTdK1PDd93/VVr8B8=');
  const validate = createTwilioSignatureValidator('12345');
  assert.equal(validate(signature, url, params), true);
  assert.equal(validate(signature, url, { ...params, Digits: '1235' }), false);
});

test('a validly signed callback → 204 and one parsed event', async () => {
  const { app, events } = webhook();
  const res = await send(app, post(internalUrl, PARAMS, signedFor(statusCallbackUrl(PUBLIC_URL, HANDOFF_ID))));
  assert.equal(res.status, 204);
  assert.deepEqual(events, [
    { handoffId: HANDOFF_ID, callSid: CALL_SID, callStatus: 'completed', answeredBy: 'machine_end_beep', durationSec: 17, sequenceNumber: 3 },
  ]);
});

test('a tampered parameter → 403 and no event', async () => {
  const { app, events } = webhook();
  const signature = signedFor(statusCallbackUrl(PUBLIC_URL, HANDOFF_ID));
  const res = await send(app, post(internalUrl, { ...PARAMS, CallStatus: 'no-answer' }, signature));
  assert.equal(res.status, 403);
  assert.deepEqual(events, []);
});

test('a tampered handoff id in the query → 403', async () => {
  const { app, events } = webhook();
  const signature = signedFor(statusCallbackUrl(PUBLIC_URL, HANDOFF_ID));
  const res = await send(app, post('http://127.0.0.1/twilio/status?handoff_id=someone-else', PARAMS, signature));
  assert.equal(res.status, 403);
  assert.deepEqual(events, []);
});

test('a signature over a different URL → 403', async () => {
  const { app, events } = webhook();
  const res = await send(app, post(internalUrl, PARAMS, signedFor(`https://evil.example.com/twilio/status?handoff_id=${HANDOFF_ID}`)));
  assert.equal(res.status, 403);
  assert.deepEqual(events, []);
});

test('a missing signature → 403, even for a body that is not a form', async () => {
  const { app, events } = webhook();
  assert.equal((await send(app, post(internalUrl, PARAMS, undefined))).status, 403);
  assert.equal((await send(app, post(internalUrl, PARAMS, undefined, 'application/json'))).status, 403);
  assert.deepEqual(events, []);
});

test('a signed callback without a usable CallSid or status → 400', async () => {
  const { app, events } = webhook();
  const params = { ...PARAMS, CallStatus: 'exploded' };
  const res = await send(app, post(internalUrl, params, signedFor(statusCallbackUrl(PUBLIC_URL, HANDOFF_ID), params)));
  assert.equal(res.status, 400);
  assert.deepEqual(events, []);
});

test('a signed body that is not form-encoded → 415', async () => {
  const { app } = webhook();
  const res = await send(app, post(internalUrl, PARAMS, signedFor(statusCallbackUrl(PUBLIC_URL, HANDOFF_ID), {}), 'text/plain'));
  assert.equal(res.status, 415);
});

test('a failing event handler → 500, so the failure is visible in Twilio’s debugger', async () => {
  const { app } = webhook({
    onEvent: () => {
      throw new HandoffError('IO', 'journal write failed');
    },
  });
  const res = await send(app, post(internalUrl, PARAMS, signedFor(statusCallbackUrl(PUBLIC_URL, HANDOFF_ID))));
  assert.equal(res.status, 500);
});

test('a body over the limit → 413 without calling the handler', async () => {
  const { app, events } = webhook({ maxBodyBytes: 64 });
  const params = { ...PARAMS, Padding: 'x'.repeat(200) };
  const res = await send(app, post(internalUrl, params, signedFor(statusCallbackUrl(PUBLIC_URL, HANDOFF_ID), params)));
  assert.equal(res.status, 413);
  assert.deepEqual(events, []);
});

test('a proxy that rewrites the path is supported with an explicit route', async () => {
  const publicUrl = 'https://example.com/hooks/alice/status';
  const { app, events } = webhook({ publicUrl, path: '/twilio/status' });
  const res = await send(app, post(internalUrl, PARAMS, signedFor(statusCallbackUrl(publicUrl, HANDOFF_ID))));
  assert.equal(res.status, 204);
  assert.equal(events.length, 1);
});

test('statusCallbackUrl refuses an unsafe handoff id and a public URL with a query', () => {
  assert.throws(() => statusCallbackUrl(PUBLIC_URL, '../x'), { code: 'INVALID_ID' });
  assert.throws(() => statusCallbackUrl(`${PUBLIC_URL}?a=1`, HANDOFF_ID), { code: 'CONFIG' });
  assert.throws(() => createCallWebhookApp({ publicUrl: 'ftp://x/y', validateSignature: () => true, onEvent: () => undefined }), { code: 'CONFIG' });
});

async function listen(t: TestContext, app: { fetch: (req: Request) => Response | Promise<Response> }): Promise<string> {
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('behind a TLS-terminating proxy: accepted with the public https URL configured, refused with the internal one', async (t) => {
  const publicUrl = 'https://example.com/twilio/status';
  const behindProxy = webhook({ publicUrl });
  const origin = await listen(t, behindProxy.app);
  const signature = signedFor(statusCallbackUrl(publicUrl, HANDOFF_ID));
  const request = post(`${origin}/twilio/status?handoff_id=${HANDOFF_ID}`, PARAMS, signature);
  const { url, ...init } = request;

  const accepted = await fetch(url, init);
  assert.equal(accepted.status, 204);
  assert.equal(behindProxy.events.length, 1);

  // Same request to an app that takes the internal URL it is reached on for the signed one.
  let naive: ReturnType<typeof webhook> | undefined;
  const naiveOrigin = await listen(t, { fetch: (req) => (naive as ReturnType<typeof webhook>).app.fetch(req) });
  naive = webhook({ publicUrl: `${naiveOrigin}/twilio/status` });
  const refused = await fetch(`${naiveOrigin}/twilio/status?handoff_id=${HANDOFF_ID}`, init);
  assert.equal(refused.status, 403);
  assert.equal(naive.events.length, 0);
});
