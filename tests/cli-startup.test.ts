import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { keyFilePath, writeKeyFile } from '../protocol/index.js';
import { CLI_ENTRY, REPO_ROOT, runCli, TSX_LOADER } from './helpers/cli.js';
import { startTestHub, TEST_TOKENS } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';
import { loadVectors, writeVectorFiles } from './helpers/vectors.js';

const PRELOAD = pathToFileURL(new URL('./helpers/report-loaded.mjs', import.meta.url).pathname).href;

function loadedBy(args: string[], entry: string[] = ['--import', TSX_LOADER, CLI_ENTRY]): string[] {
  const r = spawnSync(process.execPath, ['--import', PRELOAD, ...entry, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const line = /LOADED (\[.*\])/.exec(r.stderr)?.[1];
  assert.ok(line, 'the preload reported');
  return JSON.parse(line) as string[];
}

// The detector reads the CommonJS module cache, which CommonJS packages (twilio, pino,
// prom-client) enter even when imported from ESM; ESM-only ones (hono, chokidar) do not.
test('the detector sees twilio and pino when they are loaded (control)', () => {
  assert.ok(loadedBy([], ['--input-type=module', '-e', "await import('twilio')"]).includes('twilio'));
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
  // which neither the entry point nor `verify` loads: commands that talk to no hub never do.
  const chunks = await readdir(path.join(out, 'chunks'));
  const withUndici = [];
  for (const name of chunks.filter((n) => n.endsWith('.js'))) {
    if ((await readFile(path.join(out, 'chunks', name), 'utf8')).includes('// node_modules/undici/index.js')) withUndici.push(name);
  }
  assert.equal(withUndici.length, 1, `undici is bundled in exactly one chunk (${withUndici.join(', ')})`);
  const verifyImpl = chunks.find((n) => n.startsWith('verify-impl-') && n.endsWith('.js'));
  assert.ok(verifyImpl, 'the verify command has a chunk of its own');
  for (const [what, file] of [['the entry point', bin], ['`verify`', path.join(out, 'chunks', verifyImpl)]] as const) {
    assert.ok(!(await staticImports(file)).has(withUndici[0] as string), `${what} does not load the undici chunk`);
  }
  const lifecycleImpl = chunks.find((n) => n.startsWith('lifecycle-impl-') && n.endsWith('.js')) as string;
  assert.ok((await staticImports(path.join(out, 'chunks', lifecycleImpl))).has(withUndici[0] as string), '`start` does load it (the check sees imports)');

  // The HTTP client (undici, bundled) against a real hub: start as bob, poll as alice (HOME: no
  // configuration file of the machine's user).
  const hub = await startTestHub(t);
  const bobKeys = path.join(keys, 'bob-keys');
  await writeKeyFile(keyFilePath(bobKeys, 'alice'), 'bob-alice-pair-secret-0123456789abcdef');
  const hubArgs = ['--hub', hub.url, '--json'];
  const started = await runCli(['start', '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'scheduling', '--keys', bobKeys, ...hubArgs], { entry: bin, env: { HOME: keys, HANDOFF_TOKEN: TEST_TOKENS.bob } });
  assert.equal(started.code, 0, started.stderr);
  const id = (JSON.parse(started.stdout) as { handoff_id: string }).handoff_id;
  const polled = await runCli(['poll', '--agent', 'alice', '--wait', '5', ...hubArgs], { entry: bin, env: { HOME: keys, HANDOFF_TOKEN: TEST_TOKENS.alice } });
  assert.equal(polled.code, 0, polled.stderr);
  assert.equal((JSON.parse(polled.stdout.trim()) as { handoff_id: string }).handoff_id, id, 'the bundled bin polled what it started');
});

test('the bundler refuses an output directory outside the repository (it empties the directory first)', () => {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'bundle-bin.mjs'), path.dirname(REPO_ROOT)], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /must be inside/);
});
