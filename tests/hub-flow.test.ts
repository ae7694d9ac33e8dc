import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { HubClient } from '../agent-listener/hub-client.js';
import { buildPayload, parsePayload } from '../protocol/index.js';
import { openSpool } from '../spool/index.js';
import { HAS_PYTHON } from './helpers/python.js';
import { authHeaders, getText, makePayload, postJson, startTestHub, TEST_TOKENS } from './helpers/hub.js';

const api = (url: string, rest: string): string => `${url}/api/v1${rest}`;

async function metricValue(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `metric ${name} missing`);
  return Number(line.slice(name.length + 1));
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('start → poll → accept → complete archives the handoff and the initiator sees the outcome', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();

  const started = await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  assert.equal(started.status, 201);
  assert.deepEqual(started.body, { status: 'pending', handoff_id: p.id, expires_at: p.expiresAt });

  const polled = await getText(api(url, '/handoffs/poll?agent=alice&wait=1'), 'alice');
  assert.equal(polled.status, 200);
  assert.equal(polled.text, `{"handoffs":[${p.text}]}`);

  const accepted = await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  assert.equal(accepted.status, 200);
  assert.equal(accepted.body.status, 'claimed');
  assert.equal(typeof accepted.body.claim_token, 'string');
  assert.ok(accepted.body.lease_until, 'accepted.body.lease_until');

  const completed = await postJson(
    api(url, `/handoffs/${p.id}/complete`),
    'alice',
    JSON.stringify({ claim_token: accepted.body.claim_token, outcome: 'connected', notes: 'caller reached' }),
  );
  assert.equal(completed.status, 200);
  assert.equal(completed.body.status, 'archived');
  assert.equal(completed.body.outcome, 'connected');

  const seenByBob = JSON.parse((await getText(api(url, `/handoffs/${p.id}`), 'bob')).text);
  assert.equal(seenByBob.state, 'archived');
  assert.equal(seenByBob.outcome, 'connected');
  assert.equal(seenByBob.claimed_by, 'alice');
  assert.equal(seenByBob.payload, undefined, 'the initiator does not get the payload back');
  assert.equal(seenByBob.notes, undefined);
  assert.equal(seenByBob.claim_token_sha256, undefined);

  const seenByAlice = await getText(api(url, `/handoffs/${p.id}`), 'alice');
  assert.ok(seenByAlice.text.endsWith(`"payload":${p.text}}`), 'the target gets the stored payload text verbatim');
  assert.equal(JSON.parse(seenByAlice.text).notes, 'caller reached');

  const empty = await getText(api(url, '/handoffs/poll?agent=alice'), 'alice');
  assert.equal(empty.status, 204, 'an archived handoff is no longer offered');
});

test('start → poll → accept → reject moves the claimed handoff to rejected with its reason', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  assert.equal((await postJson(api(url, '/handoffs/start'), 'bob', p.text)).status, 201);
  assert.equal((await getText(api(url, '/handoffs/poll?agent=alice'), 'alice')).status, 200);
  const accepted = await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');

  const missingToken = await postJson(api(url, `/handoffs/${p.id}/reject`), 'alice', JSON.stringify({ reason: 'no_answer' }));
  assert.equal(missingToken.status, 409);
  assert.equal(missingToken.body.error.code, 'FENCED');

  const rejected = await postJson(
    api(url, `/handoffs/${p.id}/reject`),
    'alice',
    JSON.stringify({ reason: 'no_answer', claim_token: accepted.body.claim_token }),
  );
  assert.equal(rejected.status, 200);
  assert.equal(rejected.body.status, 'rejected');
  assert.equal(rejected.body.reason, 'no_answer');

  const view = JSON.parse((await getText(api(url, `/handoffs/${p.id}`), 'bob')).text);
  assert.deepEqual([view.state, view.reason, view.rejected_by], ['rejected', 'no_answer', 'alice']);
});

test('the target rejects a pending handoff without a claim token', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  const rejected = await postJson(api(url, `/handoffs/${p.id}/reject`), 'alice', JSON.stringify({ reason: 'SIGNATURE' }));
  assert.equal(rejected.status, 200);
  assert.equal(rejected.body.status, 'rejected');
  const again = await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  assert.equal(again.status, 200, 'a repeat of a refused start is answered from the spool');
  assert.deepEqual([again.body.status, again.body.reason], ['rejected', 'SIGNATURE']);
});

test('an identical repeat of a start → 200 with the current state; other bytes → 409 CONFLICT', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  assert.equal((await postJson(api(url, '/handoffs/start'), 'bob', p.text)).status, 201);
  const repeat = await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  assert.equal(repeat.status, 200);
  assert.deepEqual(repeat.body, { status: 'pending', handoff_id: p.id, expires_at: p.expiresAt });

  await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  const afterAccept = await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  assert.deepEqual([afterAccept.status, afterAccept.body.status], [200, 'claimed']);

  const other = makePayload({ id: p.id, extra: { context_summary: 'different bytes' } });
  const conflict = await postJson(api(url, '/handoffs/start'), 'bob', other.text);
  assert.equal(conflict.status, 409);
  assert.equal(conflict.body.error.code, 'CONFLICT');
  assert.deepEqual([conflict.body.status, conflict.body.reason], ['rejected', 'CONFLICT']);
});

test('on a spool another process writes too, a parked poll finds a handoff that process put', async (t) => {
  const { url, spoolDir } = await startTestHub(t, { exclusiveSpool: false });
  const parked = getText(api(url, '/handoffs/poll?agent=alice&wait=20'), 'alice');
  await until(async () => (await metricValue(url, 'handoff_hub_parked_polls')) === 1, 'the poll to park');
  const other = await openSpool({ root: spoolDir });
  t.after(() => other.close());
  const p = makePayload();
  await other.put(p.text);
  const woken = await parked;
  assert.equal(woken.status, 200, 'found by the parked poll, not a 204 at the end of its wait');
  assert.equal(woken.text, `{"handoffs":[${p.text}]}`);
});

test('a poll parked before the start is woken and gets the exact payload bytes', async (t) => {
  const { url } = await startTestHub(t);
  // Pretty-printed, with raw non-ASCII and a bracket inside a string: re-serialising would change it.
  const compact = makePayload({ extra: { resume_hint: 'Bob passed me context — what cadence, [weekly], {or} "daily"?' } });
  const pretty = `${JSON.stringify(JSON.parse(compact.text), null, 2)}\n`;
  assert.equal(parsePayload(pretty).payload.handoff_id, compact.id);

  const parked = getText(api(url, '/handoffs/poll?agent=alice&wait=10'), 'alice');
  await until(async () => (await metricValue(url, 'handoff_hub_parked_polls')) === 1, 'the poll to park');
  const started = await postJson(api(url, '/handoffs/start'), 'bob', pretty);
  assert.equal(started.status, 201);

  const woken = await parked;
  assert.equal(woken.status, 200);
  // The payload is the JSON value exactly as sent; the whitespace around it is not part of it.
  assert.equal(woken.text, `{"handoffs":[${pretty.trim()}]}`);
  assert.equal(await metricValue(url, 'handoff_hub_parked_polls'), 0);
});

test('a poll that nothing arrives for ends with 204 after its wait', async (t) => {
  const { url } = await startTestHub(t);
  const other = makePayload({ to: 'gordon' });
  await postJson(api(url, '/handoffs/start'), 'bob', other.text);
  const res = await getText(api(url, '/handoffs/poll?agent=alice&wait=0.2'), 'alice');
  assert.equal(res.status, 204, "gordon's handoff is not offered to alice");
  assert.equal(res.text, '');
});

test('many agents parked at once are each woken by their own handoff only', async (t) => {
  const { url } = await startTestHub(t);
  const polls = ['alice', 'gordon'].map((agent) => getText(api(url, `/handoffs/poll?agent=${agent}&wait=10`), agent));
  await until(async () => (await metricValue(url, 'handoff_hub_parked_polls')) === 2, 'both polls to park');
  const forGordon = makePayload({ to: 'gordon' });
  const forAlice = makePayload({ to: 'alice' });
  await postJson(api(url, '/handoffs/start'), 'bob', forGordon.text);
  await postJson(api(url, '/handoffs/start'), 'bob', forAlice.text);
  const [alice, gordon] = await Promise.all(polls);
  assert.equal(alice?.text, `{"handoffs":[${forAlice.text}]}`);
  assert.equal(gordon?.text, `{"handoffs":[${forGordon.text}]}`);
});

test('GET ?wait on a handoff id is woken by the accept', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  const waiting = getText(api(url, `/handoffs/${p.id}?wait=10`), 'bob');
  await until(async () => (await metricValue(url, 'handoff_hub_id_watchers')) === 1, 'the watcher to park');
  await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  const view = JSON.parse((await waiting).text);
  assert.deepEqual([view.state, view.claimed_by], ['claimed', 'alice']);
});

test('GET ?wait on a handoff id is woken by the reject, and since= returns at once when the state already moved', async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  const waiting = getText(api(url, `/handoffs/${p.id}?wait=10&since=pending`), 'bob');
  await until(async () => (await metricValue(url, 'handoff_hub_id_watchers')) === 1, 'the watcher to park');
  await postJson(api(url, `/handoffs/${p.id}/reject`), 'alice', JSON.stringify({ reason: 'busy' }));
  const view = JSON.parse((await waiting).text);
  assert.deepEqual([view.state, view.reason], ['rejected', 'busy']);

  const late = JSON.parse((await getText(api(url, `/handoffs/${p.id}?wait=10&since=pending`), 'bob')).text);
  assert.equal(late.state, 'rejected', 'a state already past `since` is returned without waiting');
});

test("an unclaimed handoff expires at its deadline and the initiator's waiter learns rejected/expired", async (t) => {
  // The periodic sweep is made too slow to matter: only the precise deadline timer can do this.
  const { url } = await startTestHub(t, { sweepIntervalMs: 600_000 });
  const p = makePayload({ ttlMs: 700 });
  assert.equal((await postJson(api(url, '/handoffs/start'), 'bob', p.text)).status, 201);
  const view = JSON.parse((await getText(api(url, `/handoffs/${p.id}?wait=20&since=pending`), 'bob')).text);
  assert.deepEqual([view.state, view.reason], ['rejected', 'expired']);
  const accept = await postJson(api(url, `/handoffs/${p.id}/accept`), 'alice', '');
  assert.deepEqual([accept.status, accept.body.error.code], [410, 'EXPIRED'], 'an expired handoff cannot be accepted any more');
});

test('a client that disconnects frees its parked poll (gauge back to 0)', async (t) => {
  const { url } = await startTestHub(t);
  const controller = new AbortController();
  const parked = fetch(api(url, '/handoffs/poll?agent=alice&wait=20'), { headers: authHeaders('alice'), signal: controller.signal });
  await until(async () => (await metricValue(url, 'handoff_hub_parked_polls')) === 1, 'the poll to park');
  controller.abort();
  await assert.rejects(parked);
  await until(async () => (await metricValue(url, 'handoff_hub_parked_polls')) === 0, 'the waiter to be freed');
});

test('shutdown answers parked polls with 204 and closes the spool', async (t) => {
  const { hub, url } = await startTestHub(t);
  const parked = getText(api(url, '/handoffs/poll?agent=alice&wait=20'), 'alice');
  await until(async () => (await metricValue(url, 'handoff_hub_parked_polls')) === 1, 'the poll to park');
  const closing = hub.close();
  assert.equal((await parked).status, 204);
  await closing;
  assert.equal(hub.close(), closing, 'close() is idempotent');
  await assert.rejects(fetch(`${url}/healthz`));
});

test('a hub restart keeps states and every acknowledged handoff', async (t) => {
  const first = await startTestHub(t);
  const pending = makePayload();
  const claimed = makePayload();
  const archived = makePayload();
  const rejected = makePayload();
  for (const p of [pending, claimed, archived, rejected]) {
    assert.equal((await postJson(api(first.url, '/handoffs/start'), 'bob', p.text)).status, 201);
  }
  const claim = await postJson(api(first.url, `/handoffs/${claimed.id}/accept`), 'alice', '');
  const claim2 = await postJson(api(first.url, `/handoffs/${archived.id}/accept`), 'alice', '');
  await postJson(api(first.url, `/handoffs/${archived.id}/complete`), 'alice', JSON.stringify({ claim_token: claim2.body.claim_token, outcome: 'connected' }));
  await postJson(api(first.url, `/handoffs/${rejected.id}/reject`), 'alice', JSON.stringify({ reason: 'busy' }));
  await first.hub.close();

  const second = await first.restart();
  const state = async (id: string): Promise<string> => JSON.parse((await getText(api(second.url, `/handoffs/${id}`), 'bob')).text).state;
  assert.equal(await state(pending.id), 'pending');
  assert.equal(await state(claimed.id), 'claimed');
  assert.equal(await state(archived.id), 'archived');
  assert.equal(await state(rejected.id), 'rejected');
  const polled = await getText(api(second.url, '/handoffs/poll?agent=alice'), 'alice');
  assert.equal(polled.text, `{"handoffs":[${pending.text}]}`);
  const done = await postJson(
    api(second.url, `/handoffs/${claimed.id}/complete`),
    'alice',
    JSON.stringify({ claim_token: claim.body.claim_token, outcome: 'connected' }),
  );
  assert.equal(done.status, 200, 'the claim token from before the restart still completes the claim');
});

test('a poll delivery and a target read are recorded in the audit log', async (t) => {
  const { url, spoolDir } = await startTestHub(t);
  const p = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  await getText(api(url, '/handoffs/poll?agent=alice'), 'alice');
  const readsOf = async (): Promise<number> => {
    const { readdir } = await import('node:fs/promises');
    let count = 0;
    for (const name of await readdir(path.join(spoolDir, 'events'))) {
      if (!name.endsWith('.jsonl')) continue;
      const text = await readFile(path.join(spoolDir, 'events', name), 'utf8');
      for (const line of text.split('\n').filter(Boolean)) {
        const event = JSON.parse(line) as { id?: string; by?: string; event?: string };
        if (event.id === p.id && event.by === 'alice' && /read/.test(event.event ?? '')) count++;
      }
    }
    return count;
  };
  await until(async () => (await readsOf()) === 1, 'the audited read');
});

test("a request built as gptme-voice's HandoffHubWriter builds it is accepted and answered with handoff_id and status", async (t) => {
  const { url } = await startTestHub(t);
  const p = makePayload();
  // The reference posts json.dumps(payload, sort_keys=True, separators=(",", ":")) with urllib.
  if (HAS_PYTHON) {
    const program = `
import json, sys, urllib.request
url, token, text = sys.argv[1], sys.argv[2], sys.stdin.read()
payload = json.loads(text)
body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
req = urllib.request.Request(url, data=body, method="POST",
    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=5) as resp:
    reply = json.loads(resp.read())
    print(json.dumps({"http": resp.status, "handoff_id": reply["handoff_id"], "status": reply["status"]}))
`;
    // Asynchronously: the hub runs in this process and must keep serving while python waits.
    const child = spawn('python3', ['-c', program, api(url, '/handoffs/start'), TEST_TOKENS.bob ?? '']);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end(p.text);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { http: 201, handoff_id: p.id, status: 'pending' });
  } else {
    const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(api(url, '/handoffs/start'), {
        method: 'POST',
        headers: { Authorization: `Bearer ${TEST_TOKENS.bob}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(p.text), Connection: 'close' },
      });
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(p.text);
    });
    assert.equal(reply.status, 201);
    assert.deepEqual(JSON.parse(reply.body), { status: 'pending', handoff_id: p.id, expires_at: p.expiresAt });
  }
  const polled = await getText(api(url, '/handoffs/poll?agent=alice'), 'alice');
  assert.equal(polled.text, `{"handoffs":[${p.text}]}`, 'the canonical bytes are relayed unchanged');
});

test('healthz answers ok and metrics count transitions by state and reason', async (t) => {
  const { url } = await startTestHub(t);
  const health = await fetch(`${url}/healthz`);
  assert.deepEqual([health.status, await health.json()], [200, { status: 'ok' }]);
  const p = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', p.text);
  await postJson(api(url, `/handoffs/${p.id}/reject`), 'alice', JSON.stringify({ reason: 'busy' }));
  // Reasons an agent makes up are one series, whatever they hold (here, a phone number).
  for (const k of [0, 1]) {
    const q = makePayload();
    await postJson(api(url, '/handoffs/start'), 'bob', q.text);
    await postJson(api(url, `/handoffs/${q.id}/reject`), 'alice', JSON.stringify({ reason: `caller_1555123400${k}` }));
  }
  const text = await (await fetch(`${url}/metrics`)).text();
  assert.match(text, /handoff_hub_transitions_total\{state="pending",reason=""\} 3/);
  assert.match(text, /handoff_hub_transitions_total\{state="rejected",reason="busy"\} 1/);
  assert.match(text, /handoff_hub_transitions_total\{state="rejected",reason="other"\} 2/);
  // A completion's outcome is its reason: the listener's own outcomes keep their label.
  const q = makePayload();
  await postJson(api(url, '/handoffs/start'), 'bob', q.text);
  const claim = await postJson(api(url, `/handoffs/${q.id}/accept`), 'alice', '');
  await postJson(api(url, `/handoffs/${q.id}/complete`), 'alice', JSON.stringify({ claim_token: claim.body.claim_token, outcome: 'connected' }));
  const after = await (await fetch(`${url}/metrics`)).text();
  assert.match(after, /handoff_hub_transitions_total\{state="archived",reason="connected"\} 1/);
  assert.doesNotMatch(text, /15551234/);
  assert.match(text, /handoff_hub_request_duration_seconds_count\{route="\/api\/v1\/handoffs\/start",method="POST",status="201"\} 3/);
});

test('an accept repeated with the proposed claim token returns the same claim; another token gets 409', async (t) => {
  const hub = await startTestHub(t);
  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  const alice = new HubClient({ url: hub.url, token: TEST_TOKENS.alice as string });
  t.after(async () => {
    await bob.close();
    await alice.close();
  });
  const p = buildPayload({ from: 'bob', to: 'alice', callerId: '+15551234567', reason: 'r', transcript: [], ttlSec: 60 }, 'secret-not-known-to-the-hub-0123', Date.now());
  await bob.start(p.text);
  const token = 'listener-chosen-token-0123456789abcdefABCD';
  const first = await alice.accept(p.payload.handoff_id, { claim_token: token });
  const again = await alice.accept(p.payload.handoff_id, { claim_token: token });
  assert.equal(first.token, token);
  assert.deepEqual(again, first);
  await assert.rejects(alice.accept(p.payload.handoff_id, { claim_token: `${token}-other` }), (e: unknown) => (e as { code?: string }).code === 'ALREADY_CLAIMED');
  await assert.rejects(alice.accept(p.payload.handoff_id, { claim_token: 'short' }), (e: unknown) => (e as { code?: string }).code === 'BAD_REQUEST');
});

test("a request Node's HTTP parser refuses gets the hub's error shape, and the hub goes on serving", async (t) => {
  const { url } = await startTestHub(t);
  const { hostname, port } = new URL(url);
  const raw = (request: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => socket.end(request));
      let reply = '';
      socket.setEncoding('utf8').on('data', (d: string) => (reply += d));
      socket.on('end', () => resolve(reply)).on('error', reject);
    });
  const start = 'POST /api/v1/handoffs/start HTTP/1.1\r\nHost: x\r\n';
  const requests: Record<string, string> = {
    'negative length': `${start}Content-Length: -1\r\n\r\n{}`,
    'length and chunked': `${start}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}`,
    // Headers fine, the body broken: Node has begun serving this request when it finds the fault.
    'bad chunk size': `${start}Authorization: Bearer ${TEST_TOKENS.bob}\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n`,
  };
  for (const [what, request] of Object.entries(requests)) {
    const reply = await raw(request);
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/, what);
    assert.deepEqual(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)), { error: { code: 'BAD_REQUEST', message: 'malformed HTTP request' } }, what);
  }
  const health = await fetch(`${url}/healthz`);
  assert.equal(health.status, 200);
});

test('a malformed request pipelined behind a parked poll closes the connection without an answer the client would take for the poll\'s', async (t) => {
  const { url, hub } = await startTestHub(t);
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let reply = '';
  socket.setEncoding('utf8').on('data', (d: string) => (reply += d));
  const closed = new Promise<void>((resolve, reject) => socket.on('close', () => resolve()).on('error', reject));
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const poll = `GET /api/v1/handoffs/poll?agent=alice&wait=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKENS.alice}\r\n\r\n`;
  socket.write(`${poll}POST /api/v1/handoffs/start HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`);
  await closed;
  // A 400 here would be read as the answer to the poll, the first request on the connection.
  assert.equal(reply, '', 'no bytes are written for either request');
  for (let i = 0; i < 200 && hub.app.waiters.parkedPolls > 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(hub.app.waiters.parkedPolls, 0, 'the poll of the closed connection is no longer parked');
  const health = await fetch(`${url}/healthz`);
  assert.equal(health.status, 200);
});
