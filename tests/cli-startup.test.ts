import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { keyFilePath, writeKeyFile } from '../protocol/index.js';
import { CLI_ENTRY, REPO_ROOT, runCli, TSX_LOADER } from './helpers/cli.js';
import { HubClient } from '../agent-listener/index.js';
import { startTestHub, TEST_TOKENS, writeAliceListenerFiles } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';
import { loadVectors, writeVectorFiles } from './helpers/vectors.js';

const PRELOAD = pathToFileURL(new URL('./helpers/report-loaded.mjs', import.meta.url).pathname).href;

function loadedBy(args: string[], entry: string[] = ['--import', TSX_LOADER, CLI_ENTRY]): string[] {
  const r = spawnSync(process.execPath, ['--import', PRELOAD, ...entry, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return reportedLoaded(r.stderr);
}

function reportedLoaded(stderr: string): string[] {
  const line = /LOADED (\[.*\])/.exec(stderr)?.[1];
  assert.ok(line, 'the preload reported');
  return JSON.parse(line) as string[];
}

// The detector reads the CommonJS module cache, which CommonJS packages (twilio, pino,
// prom-client) enter even when imported from ESM; ESM-only ones (hono, chokidar) do not.
test('the detector sees twilio, undici and pino when they are loaded (control)', () => {
  assert.ok(loadedBy([], ['--input-type=module', '-e', "await import('twilio')"]).includes('twilio'));
  assert.ok(loadedBy([], ['--input-type=module', '-e', "await import('undici')"]).includes('undici'));
  assert.ok(loadedBy(['demo', '--json']).includes('pino'), 'the demo starts a hub, which logs with pino');
});

test('handoff --help, --version and poll --help load neither twilio nor pino nor prom-client', () => {
  for (const args of [['--help'], ['--version'], ['poll', '--help'], ['listen', '--help'], ['start', '--help']]) {
    const loaded = loadedBy(args);
    for (const heavy of ['twilio', 'pino', 'prom-client']) {
      assert.ok(!loaded.includes(heavy), `handoff ${args.join(' ')} loaded ${heavy}`);
    }
  }
});

// A voice agent spawns `handoff start` while the caller waits: the one-shot commands talk to the
// hub through node:http, one connection per request, and never load undici (bench/README.md).
test('handoff start, poll, accept and complete against a hub load no undici', async (t) => {
  const hub = await startTestHub(t);
  const home = await tmpDir(t);
  const keys = path.join(home, 'keys');
  await writeKeyFile(keyFilePath(keys, 'alice'), 'bob-alice-pair-secret-0123456789abcdef');
  const run = async (args: string[], env: NodeJS.ProcessEnv): Promise<string> => {
    const r = await runCli([...args, '--hub', hub.url, '--json'], { nodeArgs: ['--import', PRELOAD], env: { HOME: home, ...env } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!reportedLoaded(r.stderr).includes('undici'), `handoff ${args[0]} loaded undici`);
    return r.stdout;
  };
  const bob = { HANDOFF_TOKEN: TEST_TOKENS.bob };
  const alice = { HANDOFF_TOKEN: TEST_TOKENS.alice };
  const started = await run(['start', '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'scheduling', '--keys', keys], bob);
  const id = (JSON.parse(started) as { handoff_id: string }).handoff_id;
  assert.equal((JSON.parse((await run(['poll', '--agent', 'alice', '--wait', '5'], alice)).trim()) as { handoff_id: string }).handoff_id, id);
  const accepted = JSON.parse(await run(['accept', id, '--agent', 'alice'], alice)) as { claim_token: string };
  await run(['complete', id, '--agent', 'alice', '--outcome', 'connected'], { ...alice, HANDOFF_CLAIM_TOKEN: accepted.claim_token });
  assert.equal((JSON.parse(await run(['show', id], bob)) as { state: string }).state, 'archived', 'the lifecycle went through');
});

/** The chunk files `file` loads before it runs (its static imports, transitively; not `import()`). */
async function staticImports(file: string, seen = new Set<string>()): Promise<Set<string>> {
  for (const m of (await readFile(file, 'utf8')).matchAll(/(?:from|import) "\.\/(?:chunks\/)?([^"]+\.js)"/g)) {
    const name = m[1] as string;
    if (seen.has(name)) continue;
    seen.add(name);
    await staticImports(path.join(path.dirname(file), file.includes(`${path.sep}chunks${path.sep}`) ? '' : 'chunks', name), seen);
  }
  return seen;
}

test('the bundled bin, built from these sources, answers as the sources do, loads no heavy package for --help and talks to a hub', async (t) => {
  // Inside the repository (git-ignored .tmp/), so that the bundle finds node_modules and package.json as dist/bin does.
  await mkdir(path.join(REPO_ROOT, '.tmp'), { recursive: true });
  const out = await mkdtemp(path.join(REPO_ROOT, '.tmp', 'bin-'));
  t.after(() => rm(out, { recursive: true, force: true }));
  const built = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'bundle-bin.mjs'), out], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  const bin = path.join(out, 'handoff.js');
  assert.ok((statSync(bin).mode & 0o111) !== 0, 'the bin is executable');

  const keys = await tmpDir(t);
  const [v] = loadVectors();
  assert.ok(v, 'v');
  const file = await writeVectorFiles(keys, v);
  for (const args of [
    ['--help'],
    ['--version'],
    ['start', '--help'],
    ['verify', file, '--agent', 'alice', '--keys', keys, '--at', v.validate_at],
    ['verify', file, '--agent', 'alice', '--keys', keys, '--at', '2030-01-01T00:00:00Z', '--json'],
    ['verify', file],
  ]) {
    const fromBundle = await runCli(args, { entry: bin });
    const fromSources = await runCli(args);
    assert.deepEqual(fromBundle, fromSources, `handoff ${args.join(' ')}`);
  }
  assert.equal((await runCli(['--version'], { entry: bin })).stdout.trim(), JSON.parse(await readFile(path.join(REPO_ROOT, 'package.json'), 'utf8')).version);

  const loaded = loadedBy(['--help'], [bin]);
  for (const heavy of ['twilio', 'pino', 'prom-client']) assert.ok(!loaded.includes(heavy), `the bundle's --help loaded ${heavy}`);
  // undici is compiled into a chunk of its own (esbuild names each bundled file in a comment),
  // which neither the entry point nor `verify` nor `start` loads: only the hub client's kept-alive
  // transport (the listener's) imports it, on its first request.
  const chunks = await readdir(path.join(out, 'chunks'));
  const withUndici = [];
  for (const name of chunks.filter((n) => n.endsWith('.js'))) {
    if ((await readFile(path.join(out, 'chunks', name), 'utf8')).includes('// node_modules/undici/index.js')) withUndici.push(name);
  }
  assert.equal(withUndici.length, 1, `undici is bundled in exactly one chunk (${withUndici.join(', ')})`);
  const undiciChunk = withUndici[0] as string;
  const chunkOf = (prefix: string): string => {
    const name = chunks.find((n) => n.startsWith(prefix) && n.endsWith('.js'));
    assert.ok(name, `${prefix} has a chunk of its own`);
    return path.join(out, 'chunks', name);
  };
  for (const [what, file] of [['the entry point', bin], ['`verify`', chunkOf('verify-impl-')], ['`start`', chunkOf('lifecycle-impl-')]] as const) {
    assert.ok(!(await staticImports(file)).has(undiciChunk), `${what} does not load the undici chunk`);
  }
  assert.ok((await staticImports(chunkOf('doctor-impl-'))).has(undiciChunk), '`doctor` does load it (the check sees imports)');
  // Nor does `start` (nor `poll`, `accept`, …: one chunk) load the packages of the listener's
  // webhook server and watcher, or the spool's lock, which only local mode needs.
  const packagesLoadedBy = async (file: string): Promise<Set<string>> => {
    const files = [file, ...[...(await staticImports(file))].map((name) => path.join(out, 'chunks', name))];
    const packages = new Set<string>();
    for (const f of files) for (const m of (await readFile(f, 'utf8')).matchAll(/^import .* from "([a-z@][^":]*)";$/gm)) packages.add(m[1] as string);
    return packages;
  };
  const heavyForStart = ['hono', 'chokidar', 'proper-lockfile', 'pino', '@hono/node-server'];
  assert.deepEqual([...(await packagesLoadedBy(chunkOf('lifecycle-impl-')))].filter((p) => heavyForStart.includes(p)), [], '`start` loads none of them');
  assert.ok((await packagesLoadedBy(chunkOf('listen-impl-'))).has('chokidar'), '`listen` does load chokidar (the check sees packages)');

  // The bundled commands against a real hub (HOME: no configuration file of the machine's user):
  // start as bob, poll as alice (node:http), then `listen` as alice (undici, loaded when it first
  // polls) claims the handoff and completes it with the dry-run dialer.
  const hub = await startTestHub(t);
  const bobKeys = path.join(keys, 'bob-keys');
  const pairSecret = 'bob-alice-pair-secret-0123456789abcdef';
  await writeKeyFile(keyFilePath(bobKeys, 'alice'), pairSecret);
  const hubArgs = ['--hub', hub.url, '--json'];
  const caller = '+15551234567';
  const started = await runCli(['start', '--agent', 'bob', '--to', 'alice', '--caller', caller, '--reason', 'scheduling', '--keys', bobKeys, ...hubArgs], { entry: bin, env: { HOME: keys, HANDOFF_TOKEN: TEST_TOKENS.bob } });
  assert.equal(started.code, 0, started.stderr);
  const id = (JSON.parse(started.stdout) as { handoff_id: string }).handoff_id;
  const polled = await runCli(['poll', '--agent', 'alice', '--wait', '5', ...hubArgs], { entry: bin, env: { HOME: keys, HANDOFF_TOKEN: TEST_TOKENS.alice } });
  assert.equal(polled.code, 0, polled.stderr);
  assert.equal((JSON.parse(polled.stdout.trim()) as { handoff_id: string }).handoff_id, id, 'the bundled bin polled what it started');

  const aliceDir = path.join(keys, 'alice');
  const config = await writeAliceListenerFiles(aliceDir, hub.url, pairSecret, { dialer: 'dry-run', contacts: [caller], poll_wait_sec: 1 });
  const listener = spawn(process.execPath, [bin, 'listen', '--config', config, '--json'], { cwd: REPO_ROOT, env: { ...process.env, HOME: aliceDir, HANDOFF_TOKEN: '' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  listener.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = once(listener, 'exit');
  t.after(() => listener.kill('SIGKILL'));
  const bob = new HubClient({ url: hub.url, token: TEST_TOKENS.bob as string });
  t.after(() => bob.close());
  const until = Date.now() + 20_000;
  while ((await bob.get(id)).state !== 'archived') {
    assert.ok(Date.now() < until && listener.exitCode === null, `the bundled listener did not complete the handoff\n${stderr.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  listener.kill('SIGTERM');
  const [code, signal] = await exited;
  assert.ok(code === 0 || signal === 'SIGTERM', `the listener stopped cleanly on SIGTERM (${code}, ${signal})\n${stderr.slice(-2000)}`);
});

test('the bundler refuses an output directory outside the repository (it empties the directory first)', () => {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'bundle-bin.mjs'), path.dirname(REPO_ROOT)], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /must be inside/);
});
