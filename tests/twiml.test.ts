import assert from 'node:assert/strict';
import { test } from 'node:test';
import twilio from 'twilio';
import { streamTwiml, TWIML_MAX_CHARS, twimlUrlWithHandoff, xmlEscape } from '../agent-listener/twiml.js';

const STREAM_URL = 'wss://voice.example.com/twilio';
const base = { streamUrl: STREAM_URL, handoffId: 'h-1', fromNumber: '+15005550006' };
const STRUCTURE_END =
  '<Connect><Stream url="wss://voice.example.com/twilio"><Parameter name="handoff_id" value="h-1"/>' +
  '<Parameter name="from_number" value="+15005550006"/></Stream></Connect></Response>';

function sayText(twiml: string): string {
  const m = /<Say>(.*)<\/Say>/.exec(twiml);
  assert.ok(m?.[1] !== undefined, 'a <Say> element');
  return m[1];
}

test('stream TwiML has the exact gptme-voice shape, with no <Say> without a lead-in', () => {
  assert.equal(streamTwiml(base), `<?xml version="1.0" encoding="UTF-8"?><Response>${STRUCTURE_END}`);
});

test('stream TwiML is identical to what the SDK’s VoiceResponse builds for the same call', () => {
  const leadIn = 'Bob passed me context about your standup & the <agenda>.';
  const sdk = new twilio.twiml.VoiceResponse();
  sdk.say(leadIn);
  const stream = sdk.connect().stream({ url: STREAM_URL });
  stream.parameter({ name: 'handoff_id', value: base.handoffId });
  stream.parameter({ name: 'from_number', value: base.fromNumber });
  assert.equal(streamTwiml({ ...base, leadIn }), sdk.toString());
});

test('lead-in text and attribute values are XML-escaped', () => {
  const twiml = streamTwiml({ ...base, leadIn: `Tom & "Jerry" <b>'s</b>` });
  assert.equal(sayText(twiml), 'Tom &amp; &quot;Jerry&quot; &lt;b&gt;&apos;s&lt;/b&gt;');
  assert.equal(xmlEscape('a"b<c'), 'a&quot;b&lt;c');
});

test('characters XML cannot carry (controls, lone surrogates) are dropped', () => {
  const twiml = streamTwiml({ ...base, leadIn: 'a\u0000b\u0007c\uD800d\uDFFFe 😀' });
  assert.equal(sayText(twiml), 'abcde 😀');
});

test('a stream URL with a query string, or not wss://, is refused with CONFIG', () => {
  assert.throws(() => streamTwiml({ ...base, streamUrl: 'wss://voice.example.com/twilio?handoff=1' }), { code: 'CONFIG' });
  assert.throws(() => streamTwiml({ ...base, streamUrl: 'wss://voice.example.com/twilio?' }), { code: 'CONFIG' });
  assert.throws(() => streamTwiml({ ...base, streamUrl: 'ws://voice.example.com/twilio' }), { code: 'CONFIG' });
  assert.throws(() => streamTwiml({ ...base, streamUrl: 'https://voice.example.com/twilio' }), { code: 'CONFIG' });
  assert.throws(() => streamTwiml({ ...base, streamUrl: '/twilio' }), { code: 'CONFIG' });
});

test('a lead-in that exactly fits 4,000 characters is kept whole; one more character truncates it', () => {
  const empty = streamTwiml(base).length + '<Say></Say>'.length;
  const fits = 'a'.repeat(TWIML_MAX_CHARS - empty);
  const whole = streamTwiml({ ...base, leadIn: fits });
  assert.equal(whole.length, TWIML_MAX_CHARS);
  assert.equal(sayText(whole), fits);

  const over = streamTwiml({ ...base, leadIn: `${fits}a` });
  assert.ok(over.length <= TWIML_MAX_CHARS, 'over.length <= TWIML_MAX_CHARS');
  assert.ok(sayText(over).endsWith('…'), "sayText(over).endsWith('…')");
});

test('a long lead-in is cut at a word boundary to fit 4,000 characters; the structure stays intact', () => {
  const twiml = streamTwiml({ ...base, leadIn: 'word '.repeat(2000) });
  assert.ok(twiml.length <= TWIML_MAX_CHARS, `length ${twiml.length}`);
  assert.ok(twiml.endsWith(`</Say>${STRUCTURE_END}`), 'twiml.endsWith(`</Say>${STRUCTURE_END}`)');
  assert.match(sayText(twiml), /^(word )*word…$/);
});

test('truncation never splits an escape sequence or a surrogate pair', () => {
  const escaped = streamTwiml({ ...base, leadIn: '&<'.repeat(3000) });
  assert.ok(escaped.length <= TWIML_MAX_CHARS, 'escaped.length <= TWIML_MAX_CHARS');
  assert.match(sayText(escaped), /^(?:&amp;|&lt;)+…$/);

  const emoji = streamTwiml({ ...base, leadIn: '😀'.repeat(3000) });
  assert.ok(emoji.length <= TWIML_MAX_CHARS, 'emoji.length <= TWIML_MAX_CHARS');
  assert.doesNotMatch(emoji, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
});

test('a structure longer than 4,000 characters on its own is refused with CONFIG', () => {
  assert.throws(() => streamTwiml({ ...base, streamUrl: `wss://voice.example.com/${'p'.repeat(4000)}` }), { code: 'CONFIG' });
});

test('a TwiML webhook URL gets handoff_id in its query, keeping other parameters', () => {
  assert.equal(twimlUrlWithHandoff('https://voice.example.com/twiml', 'h-1'), 'https://voice.example.com/twiml?handoff_id=h-1');
  assert.equal(
    twimlUrlWithHandoff('https://voice.example.com/twiml?agent=alice&handoff_id=old', 'h-2'),
    'https://voice.example.com/twiml?agent=alice&handoff_id=h-2',
  );
  assert.throws(() => twimlUrlWithHandoff('http://voice.example.com/twiml', 'h-1'), { code: 'CONFIG' });
});
