import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CLI_ENTRY, REPO_ROOT, TSX_LOADER } from './helpers/cli.js';

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
