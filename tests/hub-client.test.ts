import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { HubClient, hubEndpoint, splitArray } from '../agent-listener/hub-client.js';
import { HandoffError } from '../protocol/index.js';
import { makePayload, startTestHub, TEST_TOKENS } from './helpers/hub.js';

function client(t: import('node:test').TestContext, url: string, agent: string, options: { timeoutMs?: number; keepAlive?: boolean } = {}): HubClient {
  const c = new HubClient({ url, token: TEST_TOKENS[agent] ?? '', ...options });
  t.after(() => c.close());
  return c;
}

const isCode = (code: string) => (err: unknown) => err instanceof HandoffError && err.code === code;

// Every call through both transports: undici with kept-alive connections (the listener's), and a
// `node:http` connection of its own per request (the one-shot commands').
for (const keepAlive of [true, false]) {
  describe(keepAlive ? 'kept-alive connections' : 'a connection per request', () => {
    test('the client runs start → poll → accept → complete and gets the exact payload texts back', async (t) => {
      const { url } = await startTestHub(t);
      const bob = client(t, url, 'bob', { keepAlive });
      const alice = client(t, url, 'alice', { keepAlive });
      const compact = makePayload({ extra: { context_summary: 'commas, [brackets] and {braces} and "quotes" \\ inside' } });
      const pretty = `${JSON.stringify(JSON.parse(makePayload().text), null, 2)}\n`;
      const prettyId = JSON.parse(pretty).handoff_id as string;

      const first = await bob.start(compact.text);
      assert.deepEqual(first, { status: 'pending', handoff_id: compact.id, expires_at: compact.expiresAt, created: true });
      assert.equal((await bob.start(compact.text)).created, false, 'an identical repeat is not created again');
      await bob.start(Buffer.from(pretty));

      const texts = await alice.poll('alice', 1);
      assert.deepEqual(texts, [compact.text, pretty.trim()], 'the JSON values exactly as sent (surrounding whitespace is not part of them)');

      const claim = await alice.accept(compact.id);
      assert.equal(claim.status, 'claimed');
      assert.ok(claim.token.length > 0, 'claim.token.length > 0');
      const done = await alice.complete(compact.id, { outcome: 'connected', final_transcript: [{ role: 'user', text: 'thanks' }] });
      assert.deepEqual([done.status, done.outcome], ['archived', 'connected']);

      const asTarget = await alice.get(compact.id);
      assert.equal(asTarget.payloadText, compact.text);
      assert.deepEqual(asTarget.final_transcript, [{ role: 'user', text: 'thanks' }]);
      const asInitiator = await bob.get(compact.id);
      assert.equal(asInitiator.state, 'archived');
      assert.equal(asInitiator.payloadText, undefined);

      const rejected = await alice.reject(prettyId, 'SIGNATURE');
      assert.equal(rejected.status, 'rejected');
      assert.deepEqual(await alice.poll('alice', 0), []);
    });

    test('the client waits on a handoff id and learns of the accept', async (t) => {
      const { url } = await startTestHub(t);
      const bob = client(t, url, 'bob', { keepAlive });
      const alice = client(t, url, 'alice', { keepAlive });
      const p = makePayload();
      await bob.start(p.text);
      const waiting = bob.get(p.id, { waitSec: 10, since: 'pending' });
      await new Promise((r) => setTimeout(r, 50));
      await alice.accept(p.id);
      const view = await waiting;
      assert.deepEqual([view.state, view.claimed_by], ['claimed', 'alice']);
    });

    test("the hub's error codes come back as HandoffError codes", async (t) => {
      const { url } = await startTestHub(t);
      const bob = client(t, url, 'bob', { keepAlive });
      const alice = client(t, url, 'alice', { keepAlive });
      const p = makePayload();
      await bob.start(p.text);
      await assert.rejects(bob.start(makePayload({ id: p.id, extra: { notes: 'other' } }).text), isCode('CONFLICT'));
      await assert.rejects(alice.accept('no-such-id'), isCode('NOT_FOUND'));
      await assert.rejects(bob.accept(p.id), isCode('FORBIDDEN'));
      await assert.rejects(bob.poll('alice', 0), isCode('FORBIDDEN'));
      await assert.rejects(bob.start(makePayload({ to: 'sven' }).text), isCode('ADDRESSING'));
      await assert.rejects(bob.start('{"not":"a payload"}'), isCode('SCHEMA'));
      await alice.accept(p.id);
      await assert.rejects(alice.accept(p.id), isCode('ALREADY_CLAIMED'));
      await assert.rejects(client(t, url, 'gordon', { keepAlive }).complete(p.id, { outcome: 'connected' }), isCode('FENCED'), 'no token known locally');
      await assert.rejects(alice.complete(p.id, { outcome: 'connected', claim_token: 'wrong' }), isCode('FENCED'));
      await assert.rejects(alice.get('../etc'), isCode('INVALID_ID'));
      const stranger = new HubClient({ url, token: 'not-a-registered-token-at-all', keepAlive });
      t.after(() => stranger.close());
      await assert.rejects(stranger.poll('alice', 0), isCode('UNAUTHORIZED'));
    });

    test('an unreachable hub → UNAVAILABLE; a hub that does not answer in time → TIMEOUT', async (t) => {
      const silent = createServer(() => undefined);
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      t.after(() => {
        silent.closeAllConnections();
        silent.close();
      });
      const silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      await assert.rejects(client(t, silentUrl, 'alice', { timeoutMs: 200, keepAlive }).accept('x1'), isCode('TIMEOUT'));
      await assert.rejects(client(t, silentUrl, 'alice', { timeoutMs: 200, keepAlive }).poll('alice', 0.1), isCode('TIMEOUT'));

      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      await assert.rejects(client(t, closedUrl, 'alice', { timeoutMs: 500, keepAlive }).accept('x1'), isCode('UNAVAILABLE'));
    });
  });
}

/** A stand-in hub that answers every request with `reply` and counts the connections it gets. */
async function countingServer(t: import('node:test').TestContext, reply: (res: ServerResponse) => void): Promise<{ url: string; server: Server; connections: () => number; connectionHeaders: (string | undefined)[] }> {
  let connections = 0;
  const connectionHeaders: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    connectionHeaders.push(req.headers.connection);
    reply(res);
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, connections: () => connections, connectionHeaders };
}

const VIEW = JSON.stringify({ handoff_id: 'h1', state: 'pending', from_agent: 'bob', to_agent: 'alice', expires_at: '2030-01-01T00:00:00Z' });

test('without keep-alive each request has a connection of its own, closed once answered; with it, one connection serves them all', async (t) => {
  const answer = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end(VIEW);
  const once = await countingServer(t, answer);
  const oneShot = client(t, once.url, 'alice', { keepAlive: false });
  for (let i = 0; i < 3; i++) {
    assert.equal((await oneShot.get('h1')).state, 'pending');
    // The client asked for the close; the server has let go of the connection by the time the reply is read.
    const open = await new Promise<number>((resolve, reject) => once.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    assert.ok(open <= 1, `${open} connections still open after request ${i + 1}`);
  }
  assert.equal(once.connections(), 3);
  assert.deepEqual(once.connectionHeaders, ['close', 'close', 'close']);

  const pooled = await countingServer(t, answer);
  const kept = client(t, pooled.url, 'alice');
  for (let i = 0; i < 3; i++) {
    assert.equal((await kept.get('h1')).state, 'pending');
    // undici hands the connection back to its pool a moment after the body has been read.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(pooled.connections(), 1);
});

for (const keepAlive of [true, false]) {
  test(`a reply is decoded alike by both transports: a leading BOM does not hide the hub's error code (keepAlive: ${keepAlive})`, async (t) => {
    const body = `\uFEFF${JSON.stringify({ error: { code: 'ALREADY_CLAIMED', message: 'taken' } })}`;
    const bom = await countingServer(t, (res) => res.writeHead(409, { 'content-type': 'application/json' }).end(body));
    await assert.rejects(client(t, bom.url, 'alice', { keepAlive }).accept('h1'), isCode('ALREADY_CLAIMED'));
  });

  test(`a reply cut short is UNAVAILABLE, even when the part that came is valid JSON (keepAlive: ${keepAlive})`, async (t) => {
    const cut = await countingServer(t, (res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(VIEW.length + 100) });
      res.write(VIEW);
      setTimeout(() => res.socket?.destroy(), 20);
    });
    await assert.rejects(client(t, cut.url, 'alice', { keepAlive }).get('h1'), (err: unknown) => {
      assert.ok(err instanceof HandoffError && err.code === 'UNAVAILABLE', String(err));
      assert.doesNotMatch(err.message, /JSON/, 'refused as an incomplete reply, before any parsing');
      return true;
    });
  });
}

test('the client refuses bad options before any request', () => {
  assert.throws(() => new HubClient({ url: 'ftp://hub', token: 't' }), isCode('CONFIG'));
  assert.throws(() => new HubClient({ url: 'not a url', token: 't' }), isCode('CONFIG'));
  assert.throws(() => new HubClient({ url: 'http://hub', token: '' }), isCode('CONFIG'));
  assert.throws(() => new HubClient({ url: 'http://hub', token: 't', timeoutMs: 0 }), isCode('CONFIG'));
});

test('splitArray cuts each element out exactly, whitespace and escapes included', () => {
  assert.deepEqual(splitArray('[]'), []);
  assert.deepEqual(splitArray('[{"a":"x,]"},\n{ "b": ["\\"", {}] } ]'), ['{"a":"x,]"}', '\n{ "b": ["\\"", {}] } ']);
});

test('endpoints keep a path prefix of the hub URL (a hub behind https://host/prefix)', () => {
  assert.equal(hubEndpoint(new URL('https://relay.example.com/team/hub/'), '/healthz'), 'https://relay.example.com/team/hub/healthz');
  assert.equal(hubEndpoint(new URL('https://relay.example.com/team/hub'), '/api/v1/whoami'), 'https://relay.example.com/team/hub/api/v1/whoami');
  assert.equal(hubEndpoint(new URL('http://127.0.0.1:8787'), '/healthz'), 'http://127.0.0.1:8787/healthz');
});
