import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callCreateOptions, messageCreateOptions, toTwilioForm } from '../agent-listener/call-params.js';
import type { DialRequest } from '../agent-listener/dialer.js';
import { DryRunDialer, maskPhoneNumbers } from '../agent-listener/dry-run-dialer.js';
import { TwilioDialer } from '../agent-listener/twilio-dialer.js';
import { fakeTime, startTwilioStub } from './helpers/twilio-stub.js';

const CALLER = '+15005550006';
const AGENT_NUMBER = '+15005550001';
const ACCOUNT_SID = `AC${'cd'.repeat(16)}`;

const request: DialRequest = {
  handoffId: 'h-dry-1',
  to: CALLER,
  from: AGENT_NUMBER,
  target: { kind: 'stream', url: 'wss://voice.example.com/twilio' },
  leadIn: 'Hi, Alice here, Bob told me about your standup.',
  ringTimeoutSec: 25,
  machineDetection: true,
  statusCallbackUrl: 'https://relay.example.com/twilio/status?handoff_id=h-dry-1',
};

test('the dry-run prints the call create request with every form field, numbers masked', async () => {
  const lines: string[] = [];
  const dialer = new DryRunDialer({ write: (l) => lines.push(l), accountSid: ACCOUNT_SID });
  const result = await dialer.dial(request);
  assert.match(result.sid, /^CAdryrun\d{26}$/);
  assert.equal(result.status, 'queued');
  assert.equal(lines[0], `dry-run: POST /2010-04-01/Accounts/${ACCOUNT_SID}/Calls.json (handoff h-dry-1)`);
  assert.ok(lines.includes('dry-run:   To=+*********06'), "lines.includes('dry-run:   To=+*********06')");
  assert.ok(lines.includes('dry-run:   From=+*********01'), "lines.includes('dry-run:   From=+*********01')");
  assert.ok(lines.includes('dry-run:   Timeout=25'), "lines.includes('dry-run:   Timeout=25')");
  assert.ok(lines.includes('dry-run:   MachineDetection=Enable'), "lines.includes('dry-run:   MachineDetection=Enable')");
  assert.equal(lines.filter((l) => l.startsWith('dry-run:   StatusCallbackEvent=')).length, 4);
  const twiml = lines.find((l) => l.startsWith('dry-run:   Twiml='));
  assert.ok(twiml?.includes('<Parameter name="from_number" value="+*********06"/>'), twiml);
  assert.ok(twiml?.includes('<Say>Hi, Alice here, Bob told me about your standup.</Say>'));
  for (const line of lines) {
    assert.ok(!line.includes('5005550006') && !line.includes('5005550001'), `unmasked number in: ${line}`);
  }
});

test('what the dry-run prints is exactly the form the SDK sends', async (t) => {
  const stub = await startTwilioStub(t);
  const time = fakeTime();
  const real = new TwilioDialer({ accountSid: ACCOUNT_SID, authToken: 'tok', apiBaseUrl: stub.baseUrl, clock: time.clock, sleep: time.sleep });
  await real.dial(request);
  await real.sendMessage({ handoffId: 'h-dry-1', to: CALLER, from: AGENT_NUMBER, body: 'Hello\nthere', channel: 'whatsapp' });
  assert.deepEqual(stub.requests[0]?.form, toTwilioForm(callCreateOptions(request)));
  assert.deepEqual(
    stub.requests[1]?.form,
    toTwilioForm(messageCreateOptions({ handoffId: 'h-dry-1', to: CALLER, from: AGENT_NUMBER, body: 'Hello\nthere', channel: 'whatsapp' })),
  );

  const lines: string[] = [];
  const dry = new DryRunDialer({ write: (l) => lines.push(l), accountSid: ACCOUNT_SID });
  await dry.dial(request);
  const printed = lines.filter((l) => l.startsWith('dry-run:   ')).map((l) => l.slice('dry-run:   '.length));
  const sent = (stub.requests[0]?.form ?? []).map(([k, v]) => maskPhoneNumbers(`${k}=${v}`));
  assert.deepEqual(printed, sent);
});

test('a WhatsApp message is printed with whatsapp: addresses and a one-line body', async () => {
  const lines: string[] = [];
  const dialer = new DryRunDialer({ write: (l) => lines.push(l) });
  const { sid } = await dialer.sendMessage({ handoffId: 'h-wa', to: CALLER, from: AGENT_NUMBER, body: 'Hi!\nSven here.', channel: 'whatsapp' });
  assert.match(sid, /^MMdryrun/);
  assert.ok(lines.includes('dry-run:   To=whatsapp:+*********06'), "lines.includes('dry-run:   To=whatsapp:+*********06')");
  assert.ok(lines.includes('dry-run:   Body="Hi!\\nSven here."'), 'lines.includes(\'dry-run:   Body="Hi!\\\\nSven here."\')');
});

test('getCall reports the default outcome, a completed call answered by a person', async () => {
  const dialer = new DryRunDialer({ write: () => undefined });
  const { sid } = await dialer.dial(request);
  assert.deepEqual(await dialer.getCall(sid), { sid, status: 'completed', answeredBy: 'human', durationSec: 42 });
});

test('getCall reports a configured outcome, e.g. no-answer', async () => {
  const lines: string[] = [];
  const dialer = new DryRunDialer({ write: (l) => lines.push(l), outcome: { status: 'no-answer' } });
  const { sid } = await dialer.dial(request);
  assert.deepEqual(await dialer.getCall(sid), { sid, status: 'no-answer' });
  assert.equal(lines.at(-1), 'dry-run: → 200 status=no-answer');
});

test('ending a call prints the Status update; an unknown SID → NOT_FOUND', async () => {
  const lines: string[] = [];
  const dialer = new DryRunDialer({ write: (l) => lines.push(l) });
  const { sid } = await dialer.dial(request);
  assert.deepEqual(await dialer.endCall(sid, 'cancel'), { sid, status: 'canceled' });
  assert.ok(lines.includes('dry-run:   Status=canceled'), "lines.includes('dry-run:   Status=canceled')");
  await assert.rejects(dialer.getCall(`CA${'7'.repeat(32)}`), { code: 'NOT_FOUND' });
});

test('the dry-run validates requests like the real dialer (CONFIG before printing)', async () => {
  const lines: string[] = [];
  const dialer = new DryRunDialer({ write: (l) => lines.push(l) });
  await assert.rejects(dialer.dial({ ...request, target: { kind: 'stream', url: 'wss://x.example/t?q=1' } }), { code: 'CONFIG' });
  assert.deepEqual(lines, []);
});

test('masking keeps only the last two digits of every number', () => {
  assert.equal(maskPhoneNumbers('to +14155550123 and whatsapp:+447700900123'), 'to +*********23 and whatsapp:+**********23');
});
