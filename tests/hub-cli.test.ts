import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { CLI_ENTRY, REPO_ROOT, runCli } from './helpers/cli.js';
import { addAgent } from '../hub/index.js';
import { makePayload } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';

interface Served {
  url: string;
  stop(signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }>;
}

/** Runs `handoff hub serve ARGS` and resolves once it printed its first line. */
function serve(args: string[], parse: (line: string) => string, env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, 'hub', 'serve', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line !== undefined) {
        resolve({
          url: parse(line),
          stop: (signal) => {
            child.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then(({ code }) => reject(new Error(`hub serve exited early with ${code}: ${stderr}`)));
  });
}

test('handoff hub add-agent prints the token once and stores only its hash; serve admits it; SIGTERM → exit 0', async (t) => {
  const dir = await tmpDir(t);
  const config = path.join(dir, 'conf', 'hub.json');
  const spool = path.join(dir, 'spool');
  const added = await runCli(['hub', 'add-agent', 'alice', '--config', config]);
  assert.equal(added.code, 0, added.stderr);
  const token = added.stdout.trim();
  assert.match(token, /^[A-Za-z0-9_-]{43}$/);
  assert.match(added.stderr, /shown once/);
  const stored = await readFile(config, 'utf8');
  assert.ok(!stored.includes(token), '!stored.includes(token)');
  assert.equal((await stat(config)).mode & 0o777, 0o600);
  const bob = { token: await addAgent(config, 'bob') };

  const served = await serve(['--port', '0', '--spool', spool, '--config', config], (line) => {
    const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
    assert.ok(m, line);
    return m[1] as string;
  });
  const p = makePayload();
  const started = await fetch(`${served.url}/api/v1/handoffs/start`, {
    method: 'POST',
    headers: { authorization: `Bearer ${bob.token}`, 'content-type': 'application/json' },
    body: p.text,
  });
  assert.equal(started.status, 201);
  const polled = await fetch(`${served.url}/api/v1/handoffs/poll?agent=alice`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(await polled.text(), `{"handoffs":[${p.text}]}`);

  const { code, stderr } = await served.stop('SIGTERM');
  assert.equal(code, 0, stderr);
  assert.ok(!stderr.includes(token) && !stderr.includes(bob.token), 'the logs on stderr carry no token');
  assert.match(stderr, /"msg":"hub stopped"/);
});

test('handoff hub serve --json prints a JSON line with the URL and stops on SIGINT with exit 0', async (t) => {
  const dir = await tmpDir(t);
  const served = await serve(['--port', '0', '--spool', path.join(dir, 'spool'), '--config', path.join(dir, 'missing.json'), '--json'], (line) => (JSON.parse(line) as { url: string }).url).catch((err: Error) => err);
  assert.ok(served instanceof Error, 'a named config file that is missing is an error');
  assert.match(served.message, /CONFIG|hub config/);

  // Without --config the default file (under HOME) may be absent: the hub starts with no agents.
  const again = await serve(['--port', '0', '--spool', path.join(dir, 'spool'), '--json', '--log-level', 'silent'], (line) => (JSON.parse(line) as { url: string }).url, {
    HOME: dir,
    HANDOFF_HUB_CONFIG: '',
  });
  const health = await fetch(`${again.url}/healthz`);
  assert.equal(health.status, 200);
  const { code } = await again.stop('SIGINT');
  assert.equal(code, 0);
});

test('handoff hub remove-agent removes a registered agent and reports an unknown one as NOT_FOUND', async (t) => {
  const dir = await tmpDir(t);
  const config = path.join(dir, 'hub.json');
  await addAgent(config, 'gordon');
  const removed = await runCli(['hub', 'remove-agent', 'gordon', '--config', config]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(removed.stdout.trim(), 'removed gordon');
  assert.deepEqual(JSON.parse(await readFile(config, 'utf8')), { agents: {} });
  const again = await runCli(['hub', 'remove-agent', 'gordon', '--config', config, '--json']);
  assert.equal(again.code, 21);
  assert.equal(JSON.parse(again.stderr).error.code, 'NOT_FOUND');
});
