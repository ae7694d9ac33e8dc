import assert from 'node:assert/strict';
import { test } from 'node:test';
import { followCallByPolling } from '../agent-listener/call-follow.js';
import { callEnd } from '../agent-listener/dialer.js';
import type { CallInfo, CallStatus } from '../agent-listener/dialer.js';
import { abortableSleep } from '../agent-listener/pacer.js';
import { HandoffError } from '../protocol/index.js';
import { fakeTime } from './helpers/twilio-stub.js';

const SID = `CA${'4'.repeat(32)}`;

/** A getCall that answers from a script: a status, or an error to throw. */
function scripted(steps: Array<CallStatus | HandoffError | CallInfo>): { getCall: (sid: string) => Promise<CallInfo>; calls: () => number } {
  let i = 0;
  return {
    getCall: async (sid) => {
      const step = steps[Math.min(i, steps.length - 1)];
      i += 1;
      if (step instanceof HandoffError) throw step;
      if (typeof step === 'string') return { sid, status: step };
      assert.ok(step !== undefined, 'step !== undefined');
      return step;
    },
    calls: () => i,
  };
}

test('polling follows a call through its statuses to the final one', async () => {
  const time = fakeTime();
  const script = scripted(['queued', 'ringing', 'ringing', 'in-progress', { sid: SID, status: 'completed', answeredBy: 'human', durationSec: 30 }]);
  const seen: string[] = [];
  const result = await followCallByPolling({
    getCall: script.getCall,
    sid: SID,
    intervalMs: 2000,
    clock: time.clock,
    sleep: time.sleep,
    onUpdate: (info) => seen.push(info.status),
  });
  assert.deepEqual(result, { sid: SID, status: 'completed', answeredBy: 'human', durationSec: 30, answeredAtMs: time.clock() - 2000 });
  assert.deepEqual(seen, ['queued', 'ringing', 'in-progress', 'completed']);
  assert.deepEqual(time.sleeps, [2000, 2000, 2000, 2000]);
});

test('polling stamps answeredAtMs at the first poll that sees the call in progress, and only then', async () => {
  const time = fakeTime(1_000_000);
  const answered = scripted(['ringing', 'in-progress', 'in-progress', 'completed']);
  const result = await followCallByPolling({ getCall: answered.getCall, sid: SID, intervalMs: 1000, clock: time.clock, sleep: time.sleep });
  assert.equal(result.answeredAtMs, 1_001_000, 'the second poll, not the third');
  const unanswered = scripted(['ringing', 'ringing', 'no-answer']);
  const missed = await followCallByPolling({ getCall: unanswered.getCall, sid: SID, intervalMs: 1000, clock: time.clock, sleep: time.sleep });
  assert.equal('answeredAtMs' in missed, false, 'a call never seen in progress has no answer time');
});

test('a transient read failure is skipped and polling goes on', async () => {
  const time = fakeTime();
  const script = scripted(['ringing', new HandoffError('UNAVAILABLE', 'down'), new HandoffError('TIMEOUT', 'slow'), 'no-answer']);
  const result = await followCallByPolling({ getCall: script.getCall, sid: SID, intervalMs: 1000, clock: time.clock, sleep: time.sleep });
  assert.equal(result.status, 'no-answer');
  assert.equal(script.calls(), 4);
});

test('a non-transient error ends polling with that error', async () => {
  const time = fakeTime();
  const script = scripted(['ringing', new HandoffError('NOT_FOUND', 'gone')]);
  await assert.rejects(
    followCallByPolling({ getCall: script.getCall, sid: SID, intervalMs: 1000, clock: time.clock, sleep: time.sleep }),
    { code: 'NOT_FOUND' },
  );
});

test('polling past maxDurationMs → TIMEOUT', async () => {
  const time = fakeTime();
  const script = scripted(['in-progress']);
  await assert.rejects(
    followCallByPolling({ getCall: script.getCall, sid: SID, intervalMs: 1000, maxDurationMs: 5000, clock: time.clock, sleep: time.sleep }),
    { code: 'TIMEOUT' },
  );
  assert.equal(script.calls(), 6);
});

test('aborting stops polling during its wait', async () => {
  const controller = new AbortController();
  const script = scripted(['ringing']);
  const following = followCallByPolling({
    getCall: async (sid) => {
      const info = await script.getCall(sid);
      queueMicrotask(() => controller.abort());
      return info;
    },
    sid: SID,
    intervalMs: 60_000,
    clock: Date.now,
    sleep: abortableSleep,
    signal: controller.signal,
  });
  await assert.rejects(following, { name: 'AbortError' });
  assert.equal(script.calls(), 1);
});

test('a finished call maps to what the handoff does next', () => {
  assert.equal(callEnd({ sid: SID, status: 'completed', answeredBy: 'human' }), 'connected');
  assert.equal(callEnd({ sid: SID, status: 'completed' }), 'connected');
  assert.equal(callEnd({ sid: SID, status: 'completed', answeredBy: 'unknown' }), 'connected');
  assert.equal(callEnd({ sid: SID, status: 'completed', answeredBy: 'machine_end_beep' }), 'machine');
  assert.equal(callEnd({ sid: SID, status: 'completed', answeredBy: 'fax' }), 'machine');
  assert.equal(callEnd({ sid: SID, status: 'no-answer' }), 'no_answer');
  assert.equal(callEnd({ sid: SID, status: 'busy' }), 'busy');
  assert.equal(callEnd({ sid: SID, status: 'failed' }), 'failed');
  assert.equal(callEnd({ sid: SID, status: 'canceled' }), 'canceled');
  assert.equal(callEnd({ sid: SID, status: 'in-progress' }), undefined);
});
