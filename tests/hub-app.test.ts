import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { createHubApp, HubAuth, tokenSha256, type HubApp, type HubLimits } from '../hub/index.js';
import { HandoffError } from '../protocol/index.js';
import { openSpool } from '../spool/index.js';
import { authHeaders, makePayload, TEST_TOKENS } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';

const T0 = Date.parse('2026-11-22T10:00:00Z');

function testAuth(): HubAuth {
  return new HubAuth({ agents: Object.fromEntries(Object.entries(TEST_TOKENS).map(([name, token]) => [name, { token_sha256: tokenSha256(token) }])) });
}

/** An app over a real spool with a clock the test moves; no socket. */
async function appWithClock(t: TestContext, options: { sweepIntervalMs?: number; leaseMs?: number; janitor?: boolean; limits?: Partial<HubLimits> } = {}) {
  const dir = await tmpDir(t);
  const clock = { now: T0 };
  const spool = await openSpool({ root: path.join(dir, 'spool'), clock: () => clock.now, leaseMs: options.leaseMs, exclusive: true });
  const app = createHubApp({
    spool,
    auth: testAuth(),
    clock: () => clock.now,
    janitor: options.janitor === false ? false : { sweepIntervalMs: options.sweepIntervalMs ?? 600_000 },
    limits: options.limits,
  });
  t.after(async () => {
    await app.close();
    await spool.close();
  });
  return { app, spool, clock };
}

const post = (app: HubApp, url: string, agent: string, body: string): Promise<Response> =>
  Promise.resolve(app.request(url, { method: 'POST', headers: authHeaders(agent, { 'content-type': 'application/json' }), body }));
const get = (app: HubApp, url: string, agent: string, signal?: AbortSignal): Promise<Response> =>
  Promise.resolve(app.request(url, { headers: authHeaders(agent), signal }));

test('createHubApp refuses a limit that is not a positive number with CONFIG', async (t) => {
  const dir = await tmpDir(t);
  const spool = await openSpool({ root: path.join(dir, 'spool') });
  t.after(() => spool.close());
  for (const limits of [{ bodyLimitBytes: 0 }, { maxPendingPerTarget: -1 }, { maxWaitSec: Number.NaN }, { maxWaitSec: 3600 }]) {
    assert.throws(() => createHubApp({ spool, auth: testAuth(), limits, janitor: false }), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
  }
});

test('without a socket: a parked poll is woken by a start and the start answers 201', async (t) => {
  const { app } = await appWithClock(t);
  const p = makePayload({ nowMs: T0 });
  const parked = get(app, '/api/v1/handoffs/poll?agent=alice&wait=10', 'alice');
  while (app.waiters.parkedPolls === 0) await new Promise((r) => setImmediate(r));
  const started = await post(app, '/api/v1/handoffs/start', 'bob', p.text);
  assert.equal(started.status, 201);
  const woken = await parked;
  assert.equal(woken.status, 200);
  assert.equal(woken.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.equal(await woken.text(), `{"handoffs":[${p.text}]}`);
});

test("a swept expiry (injected clock) wakes the initiator's watcher with rejected/expired", async (t) => {
  const { app, clock } = await appWithClock(t);
  const p = makePayload({ nowMs: T0, ttlMs: 15_000 });
  await post(app, '/api/v1/handoffs/start', 'bob', p.text);
  const watching = get(app, `/api/v1/handoffs/${p.id}?wait=30`, 'bob');
  while (app.waiters.watchers === 0) await new Promise((r) => setImmediate(r));
  clock.now = T0 + 15_001;
  const swept = await app.janitor?.sweepNow();
  assert.deepEqual(swept?.expired, [p.id]);
  const view = (await (await watching).json()) as { state: string; reason: string };
  assert.deepEqual([view.state, view.reason], ['rejected', 'expired']);
  const poll = await get(app, '/api/v1/handoffs/poll?agent=alice', 'alice');
  assert.equal(poll.status, 204);
});

test('an expired pending handoff is not offered to a poll even before the janitor moved it', async (t) => {
  const { app, clock } = await appWithClock(t, { janitor: false });
  const p = makePayload({ nowMs: T0, ttlMs: 15_000 });
  await post(app, '/api/v1/handoffs/start', 'bob', p.text);
  assert.equal((await get(app, '/api/v1/handoffs/poll?agent=alice', 'alice')).status, 200);
  clock.now = T0 + 20_000;
  assert.equal((await get(app, '/api/v1/handoffs/poll?agent=alice', 'alice')).status, 204);
});

test('the periodic sweep moves a claim past its lease to rejected/lease_expired; renew extends it', async (t) => {
  const { app, clock } = await appWithClock(t, { sweepIntervalMs: 20, leaseMs: 60_000 });
  const kept = makePayload({ nowMs: T0, ttlMs: 30_000 });
  const lapsed = makePayload({ nowMs: T0, ttlMs: 30_000 });
  await post(app, '/api/v1/handoffs/start', 'bob', kept.text);
  await post(app, '/api/v1/handoffs/start', 'bob', lapsed.text);
  const keptClaim = (await (await post(app, `/api/v1/handoffs/${kept.id}/accept`, 'alice', '')).json()) as { claim_token: string; lease_until: string };
  await post(app, `/api/v1/handoffs/${lapsed.id}/accept`, 'alice', '');

  clock.now = T0 + 50_000;
  const renewed = await post(app, `/api/v1/handoffs/${kept.id}/renew`, 'alice', JSON.stringify({ claim_token: keptClaim.claim_token, lease_ms: 60_000 }));
  assert.equal(renewed.status, 200);
  const renewedBody = (await renewed.json()) as { lease_until: string };
  assert.ok(Date.parse(renewedBody.lease_until) > Date.parse(keptClaim.lease_until), 'Date.parse(renewedBody.lease_until) > Date.parse(keptClaim.lease_until)');

  const watching = get(app, `/api/v1/handoffs/${lapsed.id}?wait=10&since=claimed`, 'bob');
  clock.now = T0 + 61_000;
  const view = (await (await watching).json()) as { state: string; reason: string };
  assert.deepEqual([view.state, view.reason], ['rejected', 'lease_expired']);
  const keptView = (await (await get(app, `/api/v1/handoffs/${kept.id}`, 'bob')).json()) as { state: string };
  assert.equal(keptView.state, 'claimed', 'the renewed claim survives the sweep');
});

test('an aborted request frees its watcher at once', async (t) => {
  const { app } = await appWithClock(t);
  const p = makePayload({ nowMs: T0 });
  await post(app, '/api/v1/handoffs/start', 'bob', p.text);
  const controller = new AbortController();
  const watching = get(app, `/api/v1/handoffs/${p.id}?wait=30`, 'bob', controller.signal);
  while (app.waiters.watchers === 0) await new Promise((r) => setImmediate(r));
  controller.abort();
  await watching.catch(() => undefined);
  assert.equal(app.waiters.watchers, 0);
});

test('an agent may park only maxParkedPerAgent polls and watches; the next gets 429 and others are unaffected', async (t) => {
  const { app } = await appWithClock(t, { limits: { maxParkedPerAgent: 2 } });
  const p = makePayload({ nowMs: T0 });
  const parked = [get(app, '/api/v1/handoffs/poll?agent=alice&wait=10', 'alice'), get(app, '/api/v1/handoffs/poll?agent=alice&wait=10', 'alice')];
  while (app.waiters.parkedPolls < 2) await new Promise((r) => setImmediate(r));
  const third = await get(app, '/api/v1/handoffs/poll?agent=alice&wait=10', 'alice');
  assert.equal(third.status, 429);
  assert.equal(((await third.json()) as { error: { code: string } }).error.code, 'TOO_MANY_WAITING');
  const noWait = await get(app, '/api/v1/handoffs/poll?agent=alice', 'alice');
  assert.equal(noWait.status, 204, 'a poll that does not wait still answers');
  assert.equal((await post(app, '/api/v1/handoffs/start', 'bob', p.text)).status, 201, 'another agent is not affected');
  const watchOfAlice = await get(app, `/api/v1/handoffs/${p.id}?wait=10`, 'alice');
  assert.equal(watchOfAlice.status, 200, 'the start woke both polls: alice has room again');
  assert.deepEqual((await Promise.all(parked)).map((r) => r.status), [200, 200]);
  assert.equal(app.waiters.parkedPolls + app.waiters.watchers, 0, 'the counts are back to zero');
});

test('complete or renew of a handoff rejected before anyone accepted it → 409 INVALID_STATE', async (t) => {
  const { app } = await appWithClock(t);
  const p = makePayload({ nowMs: T0 });
  await post(app, '/api/v1/handoffs/start', 'bob', p.text);
  assert.equal((await post(app, `/api/v1/handoffs/${p.id}/reject`, 'alice', JSON.stringify({ reason: 'busy' }))).status, 200);
  for (const [op, body] of [
    ['complete', { claim_token: 't'.repeat(43), outcome: 'connected' }],
    ['renew', { claim_token: 't'.repeat(43) }],
  ] as const) {
    const res = await post(app, `/api/v1/handoffs/${p.id}/${op}`, 'alice', JSON.stringify(body));
    assert.equal(res.status, 409, op);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'INVALID_STATE', op);
  }
});

test('the time from start to accept is a metric (start → accept latency, DESIGN §7)', async (t) => {
  const { app, clock } = await appWithClock(t);
  const p = makePayload({ nowMs: T0 });
  await post(app, '/api/v1/handoffs/start', 'bob', p.text);
  clock.now = T0 + 1500;
  assert.equal((await post(app, `/api/v1/handoffs/${p.id}/accept`, 'alice', '')).status, 200);
  const text = await app.metrics.registry.metrics();
  assert.match(text, /^handoff_hub_start_to_accept_seconds_count 1$/m);
  assert.match(text, /^handoff_hub_start_to_accept_seconds_sum 1\.5$/m);
  assert.match(text, /^handoff_hub_start_to_accept_seconds_bucket\{le="1"\} 0$/m);
  assert.match(text, /^handoff_hub_start_to_accept_seconds_bucket\{le="2\.5"\} 1$/m);
});
