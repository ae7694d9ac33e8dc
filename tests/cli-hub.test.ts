/**
 * The lifecycle commands in hub mode, as two agents would run them: real hub on a port, real CLI
 * child processes, tokens from HANDOFF_TOKEN or --token-file.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, keyFilePath, writeKeyFile } from '../protocol/index.js';
import { runCli } from './helpers/cli.js';
import { startTestHub, TEST_TOKENS } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';

const SECRET = 'bob-alice-pair-secret-0123456789abcdef';

test('hub mode: start, poll, accept, complete, show; start --wait learns a rejection', async (t) => {
  const hub = await startTestHub(t);
  const dir = await tmpDir(t);
  const bobKeys = path.join(dir, 'bob-keys');
  await writeKeyFile(keyFilePath(bobKeys, 'alice'), SECRET);
  const aliceTokenFile = path.join(dir, 'alice-token');
  await writeFile(aliceTokenFile, TEST_TOKENS.alice as string, { mode: 0o600 });
  const bob = (...args: string[]) => runCli([...args, '--hub', hub.url, '--json'], { cwd: dir, env: { HOME: dir, HANDOFF_TOKEN: TEST_TOKENS.bob } });
  const alice = (args: string[], env: Record<string, string> = {}) =>
    runCli([...args, '--hub', hub.url, '--token-file', aliceTokenFile, '--agent', 'alice', '--json'], { cwd: dir, env: { HOME: dir, HANDOFF_TOKEN: '', ...env } });

  const started = await bob('start', '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'scheduling', '--keys', bobKeys, '--ttl', '120');
  assert.equal(started.code, 0, started.stderr);
  const id = (JSON.parse(started.stdout) as { handoff_id: string; status: string }).handoff_id;

  const polled = await alice(['poll', '--wait', '5']);
  assert.equal(polled.code, 0, polled.stderr);
  assert.equal((JSON.parse(polled.stdout.trim()) as { handoff_id: string }).handoff_id, id, 'poll prints the payload');

  const accepted = JSON.parse((await alice(['accept', id])).stdout) as { claim_token: string; state: string };
  assert.equal(accepted.state, 'claimed');
  const done = await alice(['complete', id, '--outcome', 'resolved'], { HANDOFF_CLAIM_TOKEN: accepted.claim_token });
  assert.equal(done.code, 0, done.stderr);
  const shown = JSON.parse((await bob('show', id)).stdout) as { state: string; outcome: string };
  assert.deepEqual([shown.state, shown.outcome], ['archived', 'resolved']);

  const again = await alice(['complete', id, '--outcome', 'resolved']);
  assert.equal(again.code, ERROR_CODES.FENCED.exit, 'without the claim token, complete is fenced');

  // A second handoff: bob waits while alice rejects it.
  const waiting = bob('start', '--agent', 'bob', '--to', 'alice', '--caller', '+15557654321', '--reason', 'billing', '--keys', bobKeys, '--ttl', '120', '--wait');
  let pendingId: string | undefined;
  for (let i = 0; i < 100 && !pendingId; i++) {
    const p = await alice(['poll', '--wait', '2']);
    pendingId = p.stdout.trim() ? (JSON.parse(p.stdout.trim().split('\n')[0] as string) as { handoff_id: string }).handoff_id : undefined;
  }
  assert.ok(pendingId, 'pendingId');
  const rejected = await alice(['reject', pendingId, '--reason', 'not_my_scope']);
  assert.equal(rejected.code, 0, rejected.stderr);
  const waited = await waiting;
  const outcome = JSON.parse(waited.stdout) as { outcome: { state: string; detail: string } };
  assert.deepEqual(outcome.outcome, { state: 'rejected', detail: 'not_my_scope' });
  assert.equal(waited.code, ERROR_CODES.INVALID_STATE.exit, 'a rejected handoff is a failed start for scripts');
});
