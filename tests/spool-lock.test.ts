import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { tryLock } from '../spool/lock.js';
import { TSX_LOADER } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

const HOLDER = fileURLToPath(new URL('./helpers/lock-holder.ts', import.meta.url));

async function holdInChild(t: TestContext, lockPath: string) {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, HOLDER, lockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await once(child.stdout, 'data');
  return child;
}

test('a lock whose holder was killed with SIGKILL is taken at once, not after it goes stale', async (t) => {
  const lockPath = path.join(await tmpDir(t), '.audit.lock');
  const child = await holdInChild(t, lockPath);
  assert.equal(await tryLock(lockPath), undefined, 'a live holder keeps the lock');
  child.kill('SIGKILL');
  await once(child, 'exit');
  const release = await tryLock(lockPath);
  assert.ok(release, 'the dead holder’s lock is broken on the first attempt');
  await release();
  const again = await tryLock(lockPath);
  assert.ok(again, 'and released normally afterwards');
  await again();
});

test('a record left by an earlier dead holder never breaks a newer holder’s lock', async (t) => {
  const lockPath = path.join(await tmpDir(t), '.sweep.lock');
  await holdInChild(t, lockPath);
  // The same host and a pid that does not exist, but another lock directory than the live one.
  writeFileSync(`${lockPath}.owner`, JSON.stringify({ host: hostname(), pid: 2147483646, ino: 1 }));
  assert.equal(await tryLock(lockPath), undefined);
});
