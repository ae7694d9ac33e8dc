import assert from 'node:assert/strict';
import { chmod, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { addAgent, HubAuth, loadHubConfig, removeAgent, tokenSha256 } from '../hub/index.js';
import { HandoffError } from '../protocol/index.js';
import { getText, makePayload, postJson, startTestHub, TEST_TOKENS } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';

const api = (url: string, rest: string): string => `${url}/api/v1${rest}`;

test('a missing, malformed or unknown bearer token → 401 with WWW-Authenticate', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  const cases: Array<Record<string, string>> = [
    {},
    { authorization: 'Basic Ym9iOmJvYg==' },
    { authorization: 'Bearer' },
    { authorization: `Bearer ${'x'.repeat(43)}` },
    { authorization: `Bearer ${TEST_TOKENS.bob}extra` },
  ];
  for (const headers of cases) {
    const res = await fetch(api(url, '/handoffs/start'), { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: p.text });
    assert.equal(res.status, 401, JSON.stringify(headers));
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="handoff-hub"');
    const body = (await res.json()) as { error: { code: string }; status: string; reason: string };
    assert.equal(body.error.code, 'UNAUTHORIZED');
    assert.deepEqual([body.status, body.reason], ['rejected', 'UNAUTHORIZED'], 'start refusals speak the HandoffHubWriter dialect');
  }
  const poll = await fetch(api(url, '/handoffs/poll?agent=alice'));
  assert.equal(poll.status, 401);
  assert.equal(poll.headers.get('www-authenticate'), 'Bearer realm="handoff-hub"');
});

test('a known agent acting outside its role → 403 FORBIDDEN on every endpoint; a handoff of others is not found', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload({ from: 'bob', to: 'alice' });

  const forged = await postJson(api(url, '/handoffs/start'), 'gordon', p.text);
  assert.deepEqual([forged.status, forged.body.error.code], [403, 'FORBIDDEN'], 'start: from_agent must be the token agent');

  assert.equal((await postJson(api(url, '/handoffs/start'), 'bob', p.text)).status, 201);

  const spy = await getText(api(url, '/handoffs/poll?agent=alice'), 'gordon');
  assert.equal(spy.status, 403, 'poll: only for oneself');
  const twice = await getText(api(url, '/handoffs/poll?agent=gordon&agent=alice'), 'gordon');
  assert.equal(twice.status, 400, 'a repeated parameter is refused, not read as one of its values');
  assert.match(JSON.parse(twice.text).error.message, /agent is given more than once/);
  assert.equal((await getText(api(url, `/handoffs/${p.id}?wait=1&wait=2`), 'bob')).status, 400);

  const byInitiator = await postJson(api(url, `/handoffs/${p.id}/accept`), 'bob', '');
  assert.equal(byInitiator.status, 403, 'accept: only the target');

  // An agent that is neither initiator nor target gets what it gets for an id that does not
  // exist, on every endpoint: it cannot learn which handoffs passed between two others.
  const unknownId = `${p.id.slice(0, -4)}ffff`;
  const byOther = async (id: string): Promise<unknown[]> => [
    (await getText(api(url, `/handoffs/${id}`), 'gordon')).status,
    (await getText(api(url, `/handoffs/${id}?wait=1`), 'gordon')).status,
    (await postJson(api(url, `/handoffs/${id}/accept`), 'gordon', '')).status,
    (await postJson(api(url, `/handoffs/${id}/reject`), 'gordon', JSON.stringify({ reason: 'busy' }))).status,
    (await postJson(api(url, `/handoffs/${id}/complete`), 'gordon', JSON.stringify({ claim_token: 't'.repeat(43), outcome: 'connected' }))).status,
    (await postJson(api(url, `/handoffs/${id}/renew`), 'gordon', JSON.stringify({ claim_token: 't'.repeat(43) }))).status,
  ];
  assert.deepEqual(await byOther(p.id), await byOther(unknownId), 'the same answers for an existing and an unknown id');
  assert.deepEqual(await byOther(p.id), [404, 404, 404, 404, 404, 404]);
  // Nor from a start that is refused anyway, which stores nothing and could be repeated at will:
  // an expired payload of its own under a taken id is as expired as under a free one.
  const probe = async (id: string) => {
    const r = await postJson(api(url, '/handoffs/start'), 'gordon', makePayload({ id, from: 'gordon', to: 'alice', nowMs: Date.now() - 120_000 }).text);
    return [r.status, r.body.error?.code];
  };
  assert.deepEqual(await probe(p.id), await probe(unknownId));
  assert.deepEqual(await probe(p.id), [410, 'EXPIRED']);

  const claim = await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  const completeByInitiator = await postJson(
    api(url, `/handoffs/${p.id}/complete`),
    'bob',
    JSON.stringify({ claim_token: claim.body.claim_token, outcome: 'connected' }),
  );
  assert.equal(completeByInitiator.status, 403, 'complete: only the claimer, even with the right claim token');
  const view = JSON.parse((await getText(api(url, `/handoffs/${p.id}`), 'alice')).text);
  assert.equal(view.state, 'claimed', 'nothing changed');
});

test('an unregistered to_agent → ADDRESSING, and nothing is stored', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload({ to: 'sven' });
  const res = await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  assert.deepEqual([res.status, res.body.error.code, res.body.status], [422, 'ADDRESSING', 'rejected']);
  assert.equal((await getText(api(url, `/handoffs/${p.id}`), 'bob')).status, 404);
});

test('accept of an unknown id → 404; second accept → 409 ALREADY_CLAIMED; expired → 410', async (t) => {
  let now = Date.parse('2026-11-22T10:00:00Z');
  const { url } = await startTestHub(t, { clock: () => now, sweepIntervalMs: 600_000 });

  const unknown = await postJson(api(url, '/handoffs/does-not-exist/accept'), 'alice', '');
  assert.deepEqual([unknown.status, unknown.body.error.code], [404, 'NOT_FOUND']);

  const p = makePayload({ nowMs: now });
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  assert.equal((await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '')).status, 200);
  const second = await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  assert.deepEqual([second.status, second.body.error.code], [409, 'ALREADY_CLAIMED']);

  const late = makePayload({ nowMs: now, ttlMs: 15_000 });
  await postJson(api(url, '/handoffs/start'), 'bob', late.text);
  now += 16_000;
  const expired = await postJson(api(url, `/handoffs/${late.id}/accept`), 'alice', '');
  assert.deepEqual([expired.status, expired.body.error.code], [410, 'EXPIRED']);

  const tooLate = makePayload({ nowMs: now - 60_000, ttlMs: 30_000 });
  const refused = await postJson(api(url, '/handoffs/start'), 'bob', tooLate.text);
  assert.deepEqual([refused.status, refused.body.error.code, refused.body.status], [410, 'EXPIRED', 'rejected']);

  // A repeat of a stored id past its expiry gets the id's state (idempotent), not EXPIRED.
  const repeat = await postJson(api(url, '/handoffs/start'), 'bob', late.text);
  assert.deepEqual([repeat.status, repeat.body.status, repeat.body.reason], [200, 'rejected', 'expired']);
});

test('complete with a wrong claim token → 409 FENCED; complete before accept → 409 INVALID_STATE', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  const early = await postJson(api(url, `/handoffs/${p.id}/complete`), 'alice', JSON.stringify({ claim_token: 'x', outcome: 'connected' }));
  assert.deepEqual([early.status, early.body.error.code], [409, 'INVALID_STATE']);
  await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  const wrong = await postJson(api(url, `/handoffs/${p.id}/complete`), 'alice', JSON.stringify({ claim_token: 'not-the-token', outcome: 'connected' }));
  assert.deepEqual([wrong.status, wrong.body.error.code], [409, 'FENCED']);
});

test('more pending handoffs for one target than the cap → 429 QUEUE_FULL', async (t) => {
  const { url } = await startTestHub(t, { limits: { maxPendingPerTarget: 2 } });
  const payloads = [makePayload(), makePayload(), makePayload()];
  const statuses = [];
  for (const p of payloads) statuses.push((await postJson(api(url, '/handoffs/start'), 'bob', p.text)).status);
  assert.deepEqual(statuses, [201, 201, 429]);
  const repeat = await postJson(api(url, '/handoffs/start'), 'bob', payloads[0]?.text ?? '');
  assert.equal(repeat.status, 200, 'an idempotent repeat is not refused by the cap');
  assert.equal((await postJson(api(url, '/handoffs/start'), 'bob', makePayload({ to: 'gordon' }).text)).status, 201, 'the cap is per target');
  // Another initiator's payload under a taken id is refused by the cap like any new one (not
  // CONFLICT, which would tell it the id is in use).
  const squat = await postJson(api(url, '/handoffs/start'), 'gordon', makePayload({ id: payloads[0]?.id, from: 'gordon', to: 'alice' }).text);
  assert.deepEqual([squat.status, squat.body.error.code], [429, 'QUEUE_FULL']);
});

test('tokens never appear in the logs', async (t) => {
  const hub = await startTestHub(t);
  const p = makePayload();
  await postJson(api(hub.url, '/handoffs/start'), 'bob', p.text);
  await getText(api(hub.url, '/handoffs/poll?agent=alice'), 'alice');
  const claim = await postJson(api(hub.url, `/handoffs/${p.id}/accept`), 'alice', '');
  await postJson(api(hub.url, `/handoffs/${p.id}/complete`), 'alice', JSON.stringify({ claim_token: claim.body.claim_token, outcome: 'connected', final_transcript: [{ role: 'user', text: 'secret plans' }] }));
  await fetch(api(hub.url, '/handoffs/poll?agent=alice'), { headers: { authorization: 'Bearer wrong-token-that-should-not-be-logged' } });
  const text = hub.logs.join('');
  assert.ok(hub.logs.length > 5, 'requests were logged');
  assert.ok(text.includes(p.id), 'log lines carry the handoff id');
  for (const secret of [...Object.values(TEST_TOKENS), claim.body.claim_token as string, 'wrong-token-that-should-not-be-logged', 'secret plans', 'Patrik', 'Bearer']) {
    assert.ok(!text.includes(secret), `log contains ${secret.slice(0, 12)}…`);
  }
});

test('add-agent stores only the SHA-256 in a 0600 file and the token works on a running hub', async (t) => {
  const hub = await startTestHub(t, { configReloadMs: 20 });
  const token = await addAgent(hub.configFile, 'sven');
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  const text = await readFile(hub.configFile, 'utf8');
  assert.ok(!text.includes(token), 'the token itself is not stored');
  assert.ok(text.includes(tokenSha256(token)), 'text.includes(tokenSha256(token))');
  assert.equal((await stat(hub.configFile)).mode & 0o777, 0o600);

  const poll = async (): Promise<number> => (await fetch(api(hub.url, '/handoffs/poll?agent=sven'), { headers: { authorization: `Bearer ${token}` } })).status;
  let status = 401;
  for (let i = 0; i < 100 && status !== 204; i++) {
    await new Promise((r) => setTimeout(r, 20));
    status = await poll();
  }
  assert.equal(status, 204, 'the reloaded config admits the new agent');

  assert.equal(await removeAgent(hub.configFile, 'sven'), true);
  assert.equal(await removeAgent(hub.configFile, 'sven'), false);
  for (let i = 0; i < 100 && status !== 401; i++) {
    await new Promise((r) => setTimeout(r, 20));
    status = await poll();
  }
  assert.equal(status, 401, 'a removed agent is locked out');
});

test('a hub config readable by others, or a symlink, is refused; a bad agent name → USAGE', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'hub.json');
  await assert.rejects(addAgent(file, 'Not A Name'), (err: unknown) => err instanceof HandoffError && err.code === 'USAGE');
  await addAgent(file, 'alice');
  await chmod(file, 0o644);
  await assert.rejects(loadHubConfig(file), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
  await chmod(file, 0o600);
  const link = path.join(dir, 'link.json');
  await symlink(file, link);
  await assert.rejects(loadHubConfig(link), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
  const broken = path.join(dir, 'broken.json');
  await writeFile(broken, '{"agents":{"Not A Name":{"token_sha256":"00"}}}', { mode: 0o600 });
  await assert.rejects(loadHubConfig(broken), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
  await assert.rejects(loadHubConfig(path.join(dir, 'missing.json')), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
  assert.deepEqual((await loadHubConfig(path.join(dir, 'missing.json'), { missingOk: true })).config, { agents: {} });
});

test('HubAuth identifies each token and nothing else', () => {
  const auth = new HubAuth({ agents: { alice: { token_sha256: tokenSha256('tok-a') }, bob: { token_sha256: tokenSha256('tok-b') } } });
  assert.equal(auth.identify('tok-a'), 'alice');
  assert.equal(auth.identify('tok-b'), 'bob');
  assert.equal(auth.identify('tok-c'), undefined);
  assert.equal(auth.identify(''), undefined);
  assert.equal(auth.isAgent('alice'), true);
  assert.equal(auth.isAgent('sven'), false);
});

test('a request body with a field the endpoint does not know, or final_transcript entries that are not entries, → 400 and nothing changes', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  const typo = await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', JSON.stringify({ lease_msec: 5 }));
  assert.deepEqual([typo.status, typo.body.error.code, typo.body.error.message], [400, 'BAD_REQUEST', 'body has an unknown field "lease_msec"']);
  const claim = await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  assert.equal(claim.status, 200);
  const token = claim.body.claim_token;

  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ claim_token: token, outcome: 'resolved', final_transcirpt: [] }, /^body has an unknown field "final_transcirpt"$/],
    [{ claim_token: token, outcome: 'resolved', 'a b': 1 }, /^body has an unknown field$/],
    [{ claim_token: token, outcome: 'resolved', final_transcript: [1, null, { role: 'robot', text: 'x' }] }, /^final_transcript\.0 /],
  ];
  for (const [body, message] of cases) {
    const r = await postJson(api(url, `/handoffs/${p.id}/complete`), 'alice', JSON.stringify(body));
    assert.deepEqual([r.status, r.body.error.code], [400, 'BAD_REQUEST'], JSON.stringify(body));
    assert.match(r.body.error.message, message);
  }
  assert.equal((await postJson(api(url, `/handoffs/${p.id}/renew`), 'alice', JSON.stringify({ claim_token: token, lease: 5000 }))).status, 400);
  assert.equal(JSON.parse((await getText(api(url, `/handoffs/${p.id}`), 'alice')).text).state, 'claimed', 'nothing changed');
  const done = await postJson(api(url, `/handoffs/${p.id}/complete`), 'alice', JSON.stringify({ claim_token: token, outcome: 'resolved', final_transcript: [{ role: 'user', text: 'thanks' }] }));
  assert.equal(done.status, 200);
});
