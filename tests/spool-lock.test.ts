/**
 * A hub killed with SIGKILL while it held the audit lock left the lock directory behind, and its
 * restart waited for the lock to go stale (10 s, measured by the kill -9 suite) while callers were
 * waiting on the line.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { openSpool } from '../spool/index.js';
import { LOCK_STALE_MS, tryLock } from '../spool/lock.js';
import { TSX_LOADER } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

const HOLDER = fileURLToPath(new URL('./helpers/lock-holder.ts', import.meta.url));

test('an exclusive spool (the hub) opens at once after its predecessor was killed holding the audit lock', async (t) => {
  const root = path.join(await tmpDir(t), 'spool');
  await (await openSpool({ root })).close();
  const lockPath = path.join(root, 'events', '.audit.lock');
  const child = spawn(process.execPath, ['--import', TSX_LOADER, HOLDER, lockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  await once(child.stdout, 'data');
  assert.equal(await tryLock(lockPath), undefined, 'the lock is held');
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.equal(await tryLock(lockPath), undefined, 'a dead holder’s lock still looks held until it goes stale');

  // A bound far above the normal open time and far below the stale wait it used to take.
  const opened = openSpool({ root, exclusive: true });
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([opened.then(() => 'opened'), new Promise((r) => (timer = setTimeout(r, LOCK_STALE_MS / 2, 'waited')))]);
  clearTimeout(timer);
  const spool = await opened;
  t.after(() => spool.close());
  assert.equal(first, 'opened', 'the leftover lock was removed instead of waited for');
  const release = await tryLock(lockPath);
  assert.ok(release, 'and the lock is free');
  await release();
});
