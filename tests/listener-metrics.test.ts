/**
 * The listener's Prometheus metrics: label values stay bounded, the app serves /metrics only, and
 * a real `handoff listen --metrics-listen` process serves them over HTTP (or exits with a typed
 * error when it cannot listen).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { HubClient } from '../agent-listener/hub-client.js';
import { createListenerMetrics, createMetricsApp } from '../agent-listener/metrics.js';
import { buildPayload, ERROR_CODES } from '../protocol/index.js';
import { CLI_ENTRY, REPO_ROOT, runCli, TSX_LOADER } from './helpers/cli.js';
import { startTestHub, TEST_TOKENS, writeAliceListenerFiles } from './helpers/hub.js';
import { metricValue } from './helpers/metrics.js';
import { tmpDir } from './helpers/tmp.js';

const SECRET = 'bob-alice-pair-secret-0123456789abcdef';
const CALLER = '+15551234567';

test('an outcome or error code that does not look like a code is counted as "other"', async () => {
  const metrics = createListenerMetrics();
  metrics.recordDelivery('rejected', 'no_answer');
  metrics.recordDelivery('skipped', 'claim_lost:FENCED');
  metrics.recordDelivery('rejected', `call me back on ${CALLER}`);
  metrics.recordDelivery('rejected', 'x'.repeat(41));
  metrics.recordDelivery('rejected', '');
  metrics.recordError('UNAVAILABLE');
  metrics.recordError('disk full: /var/lib/x');
  const r = metrics.registry;
  const delivered = (how: string, outcome: string) => metricValue(r, 'handoff_listener_deliveries_total', undefined, { how, outcome });
  assert.equal(await delivered('rejected', 'no_answer'), 1);
  assert.equal(await delivered('skipped', 'claim_lost:FENCED'), 1);
  assert.equal(await delivered('rejected', 'other'), 3, 'free text, 41 characters and an empty outcome');
  assert.equal(await metricValue(r, 'handoff_listener_delivery_errors_total', undefined, { code: 'UNAVAILABLE' }), 1);
  assert.equal(await metricValue(r, 'handoff_listener_delivery_errors_total', undefined, { code: 'other' }), 1);
  const text = await r.metrics();
  assert.ok(!text.includes(CALLER) && !text.includes('disk full'), 'no free text reaches the exposition');
});

test('a negative span (clock step) is observed as zero, not subtracted from the sum', async () => {
  const metrics = createListenerMetrics();
  metrics.observeAcceptToDial(-5000);
  metrics.observeDialToAnswer(2500);
  const r = metrics.registry;
  assert.equal(await metricValue(r, 'handoff_listener_accept_to_dial_seconds', 'handoff_listener_accept_to_dial_seconds_sum'), 0);
  assert.equal(await metricValue(r, 'handoff_listener_accept_to_dial_seconds', 'handoff_listener_accept_to_dial_seconds_count'), 1);
  assert.equal(await metricValue(r, 'handoff_listener_dial_to_answer_seconds', 'handoff_listener_dial_to_answer_seconds_sum'), 2.5);
});

test('the metrics app serves GET /metrics as Prometheus text and 404 for anything else', async () => {
  const metrics = createListenerMetrics();
  metrics.recordDelivery('completed', 'connected');
  const app = createMetricsApp(metrics.registry);
  const res = await app.request('/metrics');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), metrics.registry.contentType);
  assert.match(await res.text(), /^handoff_listener_deliveries_total\{how="completed",outcome="connected"\} 1$/m);
  for (const [method, path] of [['GET', '/'], ['GET', '/metrics/x'], ['GET', '/healthz'], ['POST', '/metrics']]) {
    assert.equal((await app.request(path as string, { method })).status, 404, `${method} ${path}`);
  }
});

test('handoff listen --metrics-listen serves the listener metrics over HTTP while it delivers, and stops on SIGTERM', { timeout: 60_000 }, async (t) => {
  const hub = await startTestHub(t);
  const dir = await tmpDir(t, 'listener-metrics-');
  const config = await writeAliceListenerFiles(dir, hub.url, SECRET, { dialer: 'dry-run', contacts: [CALLER], poll_wait_sec: 1 });
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, 'listen', '--config', config, '--metrics-listen', '127.0.0.1:0', '--json'], {
    cwd: REPO_ROOT,
    env: { ...process.env, HOME: dir, HANDOFF_TOKEN: '', HANDOFF_METRICS_LISTEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  // Port 0: the system picks a free port, and the listener logs where it serves.
  const deadline = Date.now() + 30_000;
  let url: string | undefined;
  while (url === undefined) {
    url = /"url":"(http:\/\/127\.0\.0\.1:\d+\/metrics)","msg":"serving metrics"/.exec(stderr)?.[1];
    assert.ok(url !== undefined || (Date.now() < deadline && child.exitCode === null), `no metrics address logged:\n${stderr.slice(-2000)}`);
    if (url === undefined) await new Promise((r) => setTimeout(r, 50));
  }

  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  const p = buildPayload({ from: 'bob', to: 'alice', callerId: CALLER, reason: 'scheduling', transcript: [{ role: 'user', text: 'secret plans' }], ttlSec: 60 }, SECRET, Date.now());
  await bob.start(p.text);
  // The listener's own `completed` event, not the hub's archived state: the hub archives the
  // handoff before the listener has journaled and counted it.
  const completed = `"handoff_id":"${p.payload.handoff_id}","event":"completed"`;
  while (!stdout.includes(completed)) {
    assert.ok(Date.now() < deadline && child.exitCode === null, `not delivered:\n${stdout.slice(-1000)}\n${stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await bob.get(p.payload.handoff_id)).state, 'archived');

  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  for (const name of ['handoff_listener_accept_to_dial_seconds', 'handoff_listener_dial_to_answer_seconds', 'handoff_listener_deliveries_total', 'handoff_listener_delivery_errors_total']) {
    assert.match(text, new RegExp(`^# TYPE ${name} (histogram|counter)$`, 'm'), name);
  }
  assert.match(text, /^handoff_listener_deliveries_total\{how="completed",outcome="connected"\} 1$/m);
  assert.match(text, /^handoff_listener_accept_to_dial_seconds_count 1$/m);
  assert.ok(!text.includes(CALLER.slice(1)) && !text.includes('secret plans') && !text.includes(TEST_TOKENS.alice as string), 'no number, transcript or token');
  assert.equal((await fetch(url.replace(/\/metrics$/, '/'))).status, 404);

  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, `SIGTERM stops the listener and its metrics server gracefully:\n${stderr.slice(-2000)}`);
});

for (const server of ['metrics', 'status callbacks'] as const) {
  test(`handoff listen with its ${server} port in use exits with UNAVAILABLE, without a stack trace`, { timeout: 60_000 }, async (t) => {
    const hub = await startTestHub(t);
    const dir = await tmpDir(t, 'listener-metrics-busy-');
    const taken = createServer((_req, res) => res.end());
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    t.after(() => new Promise<void>((r) => taken.close(() => r())));
    const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
    // Status callbacks are served only with a real (Twilio) dialer; nothing is dialed before the bind fails.
    const extra =
      server === 'metrics'
        ? { dialer: 'dry-run' }
        : { dialer: 'twilio', twilio: { account_sid: `AC${'0'.repeat(32)}`, api_base_url: 'http://127.0.0.1:9', from_number: '+15550100001' }, webhook: { listen: address, public_url: 'https://alice.example.com/twilio/status' } };
    const config = await writeAliceListenerFiles(dir, hub.url, SECRET, { ...extra, poll_wait_sec: 1 });
    const args = server === 'metrics' ? ['--metrics-listen', address] : [];
    const cli = await runCli(['listen', '--config', config, ...args], { env: { HOME: dir, HANDOFF_TOKEN: '', TWILIO_AUTH_TOKEN: 'test-auth-token' } });
    assert.equal(cli.code, ERROR_CODES.UNAVAILABLE.exit, cli.stderr);
    assert.match(cli.stderr, new RegExp(`^error \\[UNAVAILABLE\\]: cannot serve ${server} on ${address.replace(/\./g, '\\.')}: .*EADDRINUSE`, 'm'));
    assert.doesNotMatch(cli.stderr, /^\s+at /m, 'no stack trace');
  });
}

/** Runs `handoff listen` until its metrics answer, stops it, and returns what it wrote to stderr. */
async function listenerStderr(t: TestContext, extraArgs: string[]): Promise<string> {
  const hub = await startTestHub(t);
  const dir = await tmpDir(t, 'listener-level-');
  const config = await writeAliceListenerFiles(dir, hub.url, SECRET, { dialer: 'dry-run', contacts: [CALLER], poll_wait_sec: 1 });
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((r) => probe.close(r));
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, 'listen', '--config', config, '--metrics-listen', `127.0.0.1:${port}`, ...extraArgs], {
    cwd: REPO_ROOT,
    env: { ...process.env, HOME: dir, HANDOFF_TOKEN: '', HANDOFF_METRICS_LISTEN: '', HANDOFF_LOG_LEVEL: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  // Up once its metrics answer; by then it has logged "listening" and "serving metrics" at info.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.ok, () => false);
    if (up) break;
    assert.ok(Date.now() < deadline && child.exitCode === null, `the listener did not come up:\n${stderr.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  await once(child, 'exit');
  return stderr;
}

test('handoff listen logs at info by default, and --log-level warn (log_level, HANDOFF_LOG_LEVEL) leaves the info lines out', { timeout: 60_000 }, async (t) => {
  assert.match(await listenerStderr(t, []), /"level":30,.*"msg":"listening"/, 'the control: info lines on stderr');
  const quiet = await listenerStderr(t, ['--log-level', 'warn']);
  assert.doesNotMatch(quiet, /"level":30/, 'no info line');
});
