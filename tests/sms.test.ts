import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { composeFallbackSms, gsm7Septets, isGsm7, reasonTopic, SMS_MAX_SEPTETS, toGsm7 } from '../agent-listener/sms.js';

test('the fallback SMS says who tried to call back, about what, and who handed over', () => {
  assert.equal(
    composeFallbackSms({ agentName: 'alice', reason: 'scheduling_capability', handedOverBy: 'bob' }),
    'Alice tried to call you back about scheduling (Bob passed your call on). Reply to this message or call this number to continue.',
  );
  assert.equal(
    composeFallbackSms({ agentName: 'gordon', reason: 'invoice-question' }),
    'Gordon tried to call you back about invoice question. Reply to this message or call this number to continue.',
  );
});

test('a reason made only of mechanism words reads as "your request"', () => {
  assert.equal(reasonTopic('handoff_request'), 'your request');
});

test('extension-table characters count as two septets', () => {
  assert.equal(gsm7Septets('abc'), 3);
  assert.equal(gsm7Septets('{}'), 4);
  assert.equal(gsm7Septets('€^|'), 6);
  assert.equal(gsm7Septets('é'), 1);
  assert.ok(Number.isNaN(gsm7Septets('ç😀')), "Number.isNaN(gsm7Septets('ç😀'))");
});

test('non-GSM characters are replaced or dropped deterministically', () => {
  assert.equal(toGsm7('“Café” – naïve… ½ 😀 Łódź\tok'), '"Café" - naive... Lodz ok');
  assert.equal(toGsm7('ça'), 'ca');
  assert.equal(isGsm7(toGsm7('“Café” – naïve… ½ 😀')), true);
});

test('a capital that would leave GSM-7 is folded to its base letter', () => {
  assert.equal(composeFallbackSms({ agentName: 'àlex', reason: 'x' }).slice(0, 4), 'Alex');
});

test('a long reason is truncated with "..." to stay within one 160-septet segment', () => {
  const sms = composeFallbackSms({ agentName: 'alice', reason: 'the quarterly planning review '.repeat(10), handedOverBy: 'bob' });
  assert.ok(gsm7Septets(sms) <= SMS_MAX_SEPTETS, `${gsm7Septets(sms)} septets`);
  assert.match(sms, /^Alice tried to call you back about the quarterly .*\.\.\.\. Reply or call back to continue\.$/);
});

test('extension characters are counted when fitting the limit', () => {
  const sms = composeFallbackSms({ agentName: 'alice', reason: '{[~]}'.repeat(40) });
  assert.ok(gsm7Septets(sms) <= SMS_MAX_SEPTETS, `${gsm7Septets(sms)} septets`);
  assert.ok(sms.length < SMS_MAX_SEPTETS, 'fewer characters than septets: the braces cost two');
});

test('for any names and reason the SMS is GSM-7, at most 160 septets, and deterministic', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), fc.string({ maxLength: 400 }), fc.option(fc.string({ maxLength: 80 }), { nil: undefined }), (agentName, reason, handedOverBy) => {
      const input = handedOverBy === undefined ? { agentName, reason } : { agentName, reason, handedOverBy };
      const sms = composeFallbackSms(input);
      assert.equal(isGsm7(sms), true);
      assert.ok(gsm7Septets(sms) <= SMS_MAX_SEPTETS, 'gsm7Septets(sms) <= SMS_MAX_SEPTETS');
      assert.equal(composeFallbackSms(input), sms);
    }),
    { numRuns: 300 },
  );
});
