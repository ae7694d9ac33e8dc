/**
 * A real `handoff listen` child process, killed with SIGKILL at random moments while it delivers
 * handoffs, then restarted: no handoff is ever dialed (or texted) twice, and every one settles.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import * as path from 'node:path';
import { test } from 'node:test';
import { HubClient } from '../agent-listener/hub-client.js';
import { buildPayload } from '../protocol/index.js';
import { CLI_ENTRY, TSX_LOADER } from './helpers/cli.js';
import { startTestHub, TEST_TOKENS, writeAliceListenerFiles } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';

const SECRET = 'bob-alice-pair-secret-0123456789abcdef';
const HANDOFFS = 4;
const KILLS = 6;

/** A slow Twilio stand-in: every call rings out (no-answer); counts creates per handoff id. */
async function slowTwilio(t: import('node:test').TestContext) {
  const calls = new Map<string, number>();
  const sms: string[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const url = req.url ?? '';
      let body: unknown;
      let status = 200;
      if (req.method === 'POST' && url.endsWith('/Calls.json')) {
        const id = /name="handoff_id" value="([^"]+)"/.exec(form.get('Twiml') ?? '')?.[1] ?? '?';
        calls.set(id, (calls.get(id) ?? 0) + 1);
        status = 201;
        body = { sid: `CA${String(++n).padStart(32, '0')}`, status: 'queued' };
      } else if (req.method === 'POST' && url.endsWith('/Messages.json')) {
        sms.push(form.get('To') ?? '');
        status = 201;
        body = { sid: `SM${String(++n).padStart(32, '0')}`, status: 'queued' };
      } else {
        const sid = /Calls\/(CA\w+)\.json/.exec(url)?.[1];
        body = { sid, status: 'no-answer' };
      }
      // Slow answers widen the windows in which a kill can land mid-step.
      setTimeout(() => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      }, 40 + Math.floor(Math.random() * 80));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, calls, sms };
}

test('a listener killed with SIGKILL at random moments never dials a handoff twice', async (t) => {
  const hub = await startTestHub(t);
  const twilio = await slowTwilio(t);
  const dir = await tmpDir(t, 'alice-kill-');
  await mkdir(path.join(dir, 'voice'), { recursive: true });
  const callers = Array.from({ length: HANDOFFS }, (_, i) => `+1555000${String(1000 + i)}`);
  const configFile = await writeAliceListenerFiles(dir, hub.url, SECRET, {
    dialer: 'twilio',
    twilio: { account_sid: `AC${'0'.repeat(32)}`, api_base_url: twilio.url, from_number: '+15550001111', cps: 100 },
    contacts: callers,
    poll_wait_sec: 2,
  });

  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  const ids: string[] = [];
  for (const caller of callers) {
    const p = buildPayload({ from: 'bob', to: 'alice', callerId: caller, reason: 'scheduling', transcript: [], ttlSec: 120 }, SECRET, Date.now());
    await bob.start(p.text);
    ids.push(p.payload.handoff_id);
  }

  const env = { ...process.env, TWILIO_AUTH_TOKEN: 'test-auth-token', HANDOFF_TOKEN: '' };
  let stderr = '';
  const spawnListener = (): ChildProcess => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, 'listen', '--config', configFile, '--json'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return child;
  };

  let kills = 0;
  for (let i = 0; i < KILLS; i++) {
    const child = spawnListener();
    await new Promise((r) => setTimeout(r, 500 + Math.floor(Math.random() * 1200)));
    child.kill('SIGKILL');
    await once(child, 'exit');
    kills++;
  }
  stderr = '';
  const final = spawnListener();
  t.after(() => {
    if (final.exitCode === null) final.kill('SIGKILL');
  });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const states = await Promise.all(ids.map(async (id) => (await bob.get(id)).state));
    if (states.every((s) => s === 'rejected' || s === 'archived')) break;
    if (Date.now() > deadline) assert.fail(`not settled: ${states.join(', ')}\n${stderr.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // Everything may have settled before the final listener finished starting: signal it only once
  // it says it is listening, which is when its SIGTERM handler is in place.
  const ready = Date.now() + 30_000;
  while (!stderr.includes('"msg":"listening"') && Date.now() < ready) await new Promise((r) => setTimeout(r, 50));
  final.kill('SIGTERM');
  const [code] = (await once(final, 'exit')) as [number | null];
  assert.equal(code, 0, 'SIGTERM stops the listener gracefully');

  assert.equal(kills, KILLS);
  for (const id of ids) assert.ok((twilio.calls.get(id) ?? 0) <= 1, `${id} was dialed ${twilio.calls.get(id)} times`);
  assert.ok(twilio.sms.length <= HANDOFFS, 'at most one SMS per handoff');
  const reasons = await Promise.all(ids.map(async (id) => (await bob.get(id)) as { reason?: string }));
  for (const r of reasons) assert.ok(['no_answer', 'dial_interrupted', 'dial_uncertain'].includes(r.reason ?? ''), `settled with ${r.reason}`);
});
