import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { authHeaders, getText, listTree, makePayload, rawRequest, startTestHub, TEST_TOKENS, type TestHub } from './helpers/hub.js';

/** A hub without a janitor (so that nothing but the requests under test could write) and its listing. */
async function quietHub(t: TestContext, limits = {}): Promise<{ hub: TestHub; before: string[] }> {
  const hub = await startTestHub(t, { limits: { bodyTimeoutMs: 300, ...limits } });
  await hub.hub.app.janitor?.stop();
  return { hub, before: await listTree(hub.dir) };
}

const auth = (agent: string, extra: Record<string, string | number> = {}): Record<string, string | number> => ({ authorization: `Bearer ${TEST_TOKENS[agent]}`, ...extra });

test('ids with .., /, %2e%2e, NUL or 300 characters are refused before any disk access', async (t) => {
  const { hub, before } = await quietHub(t);
  const hostile = [
    '..',
    '%2e%2e',
    '%2E%2E%2F%2E%2E%2Fhub.json',
    '..%2F..%2Fhub.json',
    'a%2Fb',
    'a%00b',
    '%00',
    'a'.repeat(300),
    'a.b',
    '%C3%A9',
    '..%5C..%5Chub.json',
  ];
  for (const id of hostile) {
    for (const [method, suffix] of [['POST', '/accept'], ['POST', '/reject'], ['POST', '/complete'], ['GET', '']] as const) {
      const reply = await rawRequest(hub.url, {
        method,
        path: `/api/v1/handoffs/${id}${suffix}`,
        headers: auth('alice', { 'content-type': 'application/json' }),
        body: method === 'POST' ? '{"reason":"busy","outcome":"x","claim_token":"t"}' : undefined,
      });
      assert.ok(reply.status === 400 || reply.status === 404, `${method} ${id}${suffix} → ${reply.status}`);
      const code = (JSON.parse(reply.body) as { error: { code: string } }).error.code;
      assert.ok(code === 'INVALID_ID' || code === 'NOT_FOUND', code);
    }
  }
  for (const path of ['/api/v1/handoffs/../../hub.json', '/api/v1/../hub.json', '/../../etc/passwd']) {
    const reply = await rawRequest(hub.url, { path, headers: auth('alice') });
    assert.equal(reply.status, 404, path);
  }
  const badId = await rawRequest(hub.url, { method: 'POST', path: '/api/v1/handoffs/a.b/accept', headers: auth('alice') });
  assert.equal(JSON.parse(badId.body).error.code, 'INVALID_ID');
  assert.deepEqual(await listTree(hub.dir), before, 'nothing was written');
});

test('payloads with hostile handoff ids are refused with SCHEMA and not stored', async (t) => {
  const { hub, before } = await quietHub(t);
  for (const id of ['../../evil', 'a/b', 'a\u0000b', 'x'.repeat(300), '']) {
    const p = makePayload();
    const text = p.text.replace(JSON.stringify(p.id), JSON.stringify(id));
    const reply = await rawRequest(hub.url, {
      method: 'POST',
      path: '/api/v1/handoffs/start',
      headers: auth('bob', { 'content-type': 'application/json' }),
      body: text,
    });
    assert.equal(reply.status, 422, JSON.stringify(id));
    const body = JSON.parse(reply.body);
    assert.deepEqual([body.error.code, body.status, body.reason], ['SCHEMA', 'rejected', 'SCHEMA']);
  }
  assert.deepEqual(await listTree(hub.dir), before);
});

test('malformed and deeply nested JSON → 4xx, never 5xx, nothing written', async (t) => {
  const { hub, before } = await quietHub(t);
  const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  const deepObject = `${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`;
  const bodies = ['', '{', '{"a":', 'null', '[]', '"text"', '{"a":1,"a":2}', '{"protocol_version":1}', 'NaN', deep, deepObject, '\u00ff\u00fe', '{"x":"\ud800"}'];
  for (const body of bodies) {
    const start = await rawRequest(hub.url, { method: 'POST', path: '/api/v1/handoffs/start', headers: auth('bob', { 'content-type': 'application/json' }), body });
    assert.ok(start.status >= 400 && start.status < 500, `start ${body.slice(0, 20)} → ${start.status}`);
    assert.equal(JSON.parse(start.body).status, 'rejected');
    const reject = await rawRequest(hub.url, { method: 'POST', path: '/api/v1/handoffs/some-id/reject', headers: auth('alice', { 'content-type': 'application/json' }), body });
    assert.ok(reject.status === 400, `reject ${body.slice(0, 20)} → ${reject.status}`);
  }
  const invalidUtf8 = await rawRequest(hub.url, {
    method: 'POST',
    path: '/api/v1/handoffs/start',
    headers: auth('bob', { 'content-type': 'application/json' }),
    body: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]),
  });
  assert.equal(invalidUtf8.status, 422);
  assert.equal((await getText(`${hub.url}/healthz`, 'alice')).status, 200, 'the hub is still up');
  assert.deepEqual(await listTree(hub.dir), before);
});

test('a wrong or missing content type → 400 BAD_REQUEST', async (t) => {
  const { hub, before } = await quietHub(t);
  const p = makePayload();
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'application/jsonp', undefined]) {
    const headers = type === undefined ? auth('bob') : auth('bob', { 'content-type': type });
    const reply = await rawRequest(hub.url, { method: 'POST', path: '/api/v1/handoffs/start', headers, body: p.text });
    assert.equal(reply.status, 400, String(type));
    assert.equal(JSON.parse(reply.body).error.code, 'BAD_REQUEST');
  }
  const ok = await rawRequest(hub.url, { method: 'POST', path: '/api/v1/handoffs/start', headers: auth('bob', { 'content-type': 'application/json; charset=UTF-8' }), body: p.text });
  assert.equal(ok.status, 201, 'a charset=utf-8 parameter is fine');
  assert.notDeepEqual(await listTree(hub.dir), before, 'the accepted one was written (the check above is meaningful)');
});

test('a 10 MB body → 413 before parsing, with Content-Length or chunked, and nothing is written', async (t) => {
  const { hub, before } = await quietHub(t);
  const big = Buffer.alloc(10 * 1024 * 1024, 0x20);
  const declared = await rawRequest(hub.url, {
    method: 'POST',
    path: '/api/v1/handoffs/start',
    headers: auth('bob', { 'content-type': 'application/json', 'content-length': big.length }),
    body: big,
  });
  assert.equal(declared.status, 413);
  assert.deepEqual([JSON.parse(declared.body).error.code, JSON.parse(declared.body).status], ['TOO_LARGE', 'rejected']);

  const chunks = Array.from({ length: 160 }, () => Buffer.alloc(64 * 1024, 0x20));
  const chunked = await rawRequest(hub.url, {
    method: 'POST',
    path: '/api/v1/handoffs/start',
    headers: auth('bob', { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }),
    chunks,
  });
  assert.equal(chunked.status, 413);

  const onComplete = await rawRequest(hub.url, {
    method: 'POST',
    path: '/api/v1/handoffs/x1/complete',
    headers: auth('alice', { 'content-type': 'application/json', 'content-length': big.length }),
    body: big,
  });
  assert.equal(onComplete.status, 413, 'every body is limited, not only start');
  assert.deepEqual(await listTree(hub.dir), before);
});

test('the body limit is configurable', async (t) => {
  const { hub } = await quietHub(t, { bodyLimitBytes: 200 });
  const reply = await rawRequest(hub.url, {
    method: 'POST',
    path: '/api/v1/handoffs/start',
    headers: auth('bob', { 'content-type': 'application/json' }),
    body: makePayload().text,
  });
  assert.equal(reply.status, 413);
});

test('a slow client that trickles its body is cut off with 400 while others are served', async (t) => {
  const { hub, before } = await quietHub(t);
  const p = makePayload();
  const bytes = Buffer.from(p.text);
  const trickle = rawRequest(hub.url, {
    method: 'POST',
    path: '/api/v1/handoffs/start',
    headers: auth('bob', { 'content-type': 'application/json', 'content-length': bytes.length }),
    chunks: Array.from(bytes.subarray(0, 40), (b) => Buffer.from([b])),
    pauseMs: 20,
  });
  const meanwhile = await fetch(`${hub.url}/api/v1/handoffs/poll?agent=alice`, { headers: authHeaders('alice') });
  assert.equal(meanwhile.status, 204, 'the hub answers other clients while one trickles');
  const reply = await trickle;
  assert.equal(reply.status, 400);
  assert.match(JSON.parse(reply.body).error.message, /not received within/);
  assert.deepEqual(await listTree(hub.dir), before);
});

test('unknown routes and methods → 404 JSON, never 5xx', async (t) => {
  const { hub } = await quietHub(t);
  for (const [method, path] of [
    ['GET', '/'],
    ['GET', '/api/v1'],
    ['DELETE', '/api/v1/handoffs/x1'],
    ['PUT', '/api/v1/handoffs/start'],
    ['GET', '/api/v1/handoffs/start/accept'],
  ] as const) {
    const reply = await rawRequest(hub.url, { method, path, headers: auth('alice') });
    assert.equal(reply.status, 404, `${method} ${path}`);
    assert.equal(JSON.parse(reply.body).error.code, 'NOT_FOUND');
  }
  const badWait = await rawRequest(hub.url, { path: '/api/v1/handoffs/poll?agent=alice&wait=-1', headers: auth('alice') });
  assert.equal(badWait.status, 400);
  const noAgent = await rawRequest(hub.url, { path: '/api/v1/handoffs/poll', headers: auth('alice') });
  assert.equal(noAgent.status, 400);
  const badSince = await rawRequest(hub.url, { path: '/api/v1/handoffs/x1?since=gone', headers: auth('alice') });
  assert.equal(badSince.status, 400);
});
