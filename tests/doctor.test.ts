import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { ListenerState } from '../agent-listener/state.js';
import { doctor } from '../cli/commands/doctor-impl.js';
import { ERROR_CODES, HandoffError, keyFilePath, writeKeyFile } from '../protocol/index.js';
import { runCli } from './helpers/cli.js';
import { makePayload, postJson, startTestHub, TEST_TOKENS } from './helpers/hub.js';
import { auditEvents } from './helpers/spool-inspect.js';
import { tmpDir } from './helpers/tmp.js';

test('doctor: a good hub set-up passes; a wrong token, an unsafe key file and a bad target say what to fix', async (t) => {
  const hub = await startTestHub(t);
  const dir = await tmpDir(t);
  const keys = path.join(dir, 'keys');
  await writeKeyFile(keyFilePath(keys, 'bob'), 'bob-alice-pair-secret-0123456789abcdef');
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, TEST_TOKENS.alice as string, { mode: 0o600 });
  const flags = { agent: 'alice', hub: hub.url, tokenFile, keys, bootstrapDir: path.join(dir, 'voice', 'handoffs'), stateDir: path.join(dir, 'state'), config: path.join(dir, 'none.json') };
  await writeFile(flags.config, '{}');
  const env = {};
  const good = await doctor(flags, env);
  assert.equal(good.ok, true, JSON.stringify(good.checks));
  const byName = new Map(good.checks.map((c) => [c.check, c]));
  assert.equal(byName.get('hub token')?.status, 'ok');
  assert.equal(byName.get('clock skew')?.status, 'ok');
  assert.equal(byName.get('key bob')?.status, 'ok');

  const wrong = await doctor(flags, { HANDOFF_TOKEN: TEST_TOKENS.bob });
  assert.equal(wrong.checks.find((c) => c.check === 'hub token')?.status, 'fail');
  assert.match(wrong.checks.find((c) => c.check === 'hub token')?.detail ?? '', /another agent \(bob\)/);
  const unknown = await doctor(flags, { HANDOFF_TOKEN: 'x'.repeat(43) });
  assert.match(unknown.checks.find((c) => c.check === 'hub token')?.detail ?? '', /answered 401 \(an unknown token\)/);

  // Checking the token reads nobody's payloads: a handoff waiting for alice is neither handed
  // over nor recorded as read.
  const p = makePayload();
  assert.equal((await postJson(`${hub.url}/api/v1/handoffs/start`, 'bob', p.text)).status, 201);
  const before = auditEvents(hub.spoolDir);
  assert.deepEqual(before.map((e) => e.event), ['put']);
  assert.equal((await doctor(flags, env)).checks.find((c) => c.check === 'hub token')?.status, 'ok');
  assert.deepEqual(auditEvents(hub.spoolDir), before, 'no audit line was written');

  await chmod(keyFilePath(keys, 'bob'), 0o644);
  const loose = await doctor(flags, env);
  const key = loose.checks.find((c) => c.check === 'key bob');
  assert.equal(key?.status, 'fail');
  assert.equal(key?.fix, `chmod 600 ${keyFilePath(keys, 'bob')}`);
  assert.equal(loose.ok, false);

  await writeFile(flags.config, JSON.stringify({ twilio: { account_sid: `AC${'a'.repeat(32)}`, from_number: '+15550001111' }, target: { kind: 'stream', url: 'wss://x.example.com/twilio?token=1' } }));
  const target = await doctor(flags, { TWILIO_AUTH_TOKEN: 'b'.repeat(32) });
  assert.equal(target.checks.find((c) => c.check === 'target')?.status, 'fail');
  assert.equal(target.checks.find((c) => c.check === 'twilio auth token')?.status, 'ok');

  // Not a URL at all: a FAIL line like the others, not a crash that loses the whole report.
  const notUrl = await doctor(flags, { TWILIO_AUTH_TOKEN: 'b'.repeat(32), HANDOFF_TARGET_URL: 'not a url' });
  assert.equal(notUrl.checks.find((c) => c.check === 'target')?.status, 'fail');
  assert.match(notUrl.checks.find((c) => c.check === 'target')?.detail ?? '', /not an absolute URL/);
  assert.equal(notUrl.checks.find((c) => c.check === 'key bob')?.status, 'fail', 'the rest of the report is there');
});

test('handoff doctor exits with CONFIG and prints FAIL lines with fixes; an unreachable hub is named', async (t) => {
  const dir = await tmpDir(t);
  const r = await runCli(['doctor', '--agent', 'alice', '--hub', 'http://127.0.0.1:9', '--keys', path.join(dir, 'none')], { cwd: dir, env: { HOME: dir } });
  assert.equal(r.code, ERROR_CODES.CONFIG.exit);
  assert.match(r.stdout, /FAIL {2}key files/);
  assert.match(r.stdout, /FAIL {2}hub reachable +http:\/\/127\.0\.0\.1:9/);
  assert.match(r.stdout, /→ mkdir -m 700 .*, then handoff keys gen --peer NAME/);
});

test('doctor against a hub without /api/v1/whoami (older, or behind a path prefix) warns instead of blaming the token', async (t) => {
  // The hub behind a prefix: this server answers only under /relay/, as a proxy in front of an
  // older hub would (its auth passes, no whoami route: 404).
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(req.url === '/relay/healthz' ? 200 : 404, { 'content-type': 'application/json' }).end('{}');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const dir = await tmpDir(t);
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, TEST_TOKENS.alice as string, { mode: 0o600 });
  const config = path.join(dir, 'none.json');
  await writeFile(config, '{}');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/relay/`;
  const r = await doctor({ agent: 'alice', hub: url, tokenFile, keys: path.join(dir, 'keys'), config }, {});
  assert.equal(r.checks.find((c) => c.check === 'hub reachable')?.status, 'ok');
  const token = r.checks.find((c) => c.check === 'hub token');
  assert.deepEqual([token?.status, token?.fix], ['warn', 'upgrade the hub']);
  assert.deepEqual(seen, ['/relay/healthz', '/relay/api/v1/whoami']);
});

test('a state or bootstrap dir that every user may write is refused by the listener and failed by doctor', async (t) => {
  const dir = await tmpDir(t);
  const open = path.join(dir, 'open');
  await mkdir(open);
  await chmod(open, 0o1777); // even with the sticky bit: another user can take a file's name first
  await assert.rejects(ListenerState.open(open), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG' && /writable by every user \(chmod o-w /.test(err.message));
  assert.ok(await ListenerState.open(path.join(dir, 'fresh')), 'a directory not there yet is created, private');

  const config = path.join(dir, 'none.json');
  await writeFile(config, '{}');
  const r = await doctor({ agent: 'alice', spool: path.join(dir, 'spool'), keys: path.join(dir, 'keys'), bootstrapDir: open, stateDir: path.join(dir, 'state'), config }, {});
  const boot = r.checks.find((c) => c.check === 'bootstrap dir');
  assert.deepEqual([boot?.status, boot?.fix], ['fail', `chmod o-w ${open}`]);
  assert.equal(r.checks.find((c) => c.check === 'state dir')?.status, 'ok');
});
