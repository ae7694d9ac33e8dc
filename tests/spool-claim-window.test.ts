/**
 * A claim is decided by its rename, but its envelope (with the claim token's hash) is written a
 * moment later. A second claimer proposing another token in that moment must lose; only a claim
 * whose writer is gone may be finished by a claimer repeating its own token. (Found by the kill -9
 * suite: two accepts of one handoff were both acknowledged.)
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { openSpool, type SpoolOptions } from '../spool/index.js';
import { makePayload, TestFs } from './helpers/spool-fixtures.js';
import { tmpDir } from './helpers/tmp.js';

const TOKEN_A = 'first-claimer-token-0123456789abcdefABCDEF';
const TOKEN_B = 'second-claimer-token-0123456789abcdefABCDEF';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A spool whose claims stop right after their rename until `resume()` is called. */
async function pausingSpool(t: TestContext, root: string, extra: Partial<SpoolOptions> = {}) {
  const fs = new TestFs();
  const spool = await openSpool({ root, fs: fs.ops, ...extra });
  t.after(() => spool.close());
  let resume!: () => void;
  const gate = new Promise<void>((r) => {
    resume = r;
  });
  let renamed!: () => void;
  const inWindow = new Promise<void>((r) => {
    renamed = r;
  });
  const realRename = fs.ops.rename;
  fs.ops.rename = async (from, to) => {
    await realRename(from, to);
    if (path.relative(root, from).startsWith('handoff') && path.relative(root, to).startsWith('claimed')) {
      renamed();
      await gate;
    }
  };
  return { spool, resume, inWindow };
}

test('a claim with another token during the first claim’s envelope write → ALREADY_CLAIMED, one winner', async (t) => {
  const root = path.join(await tmpDir(t), 'spool');
  const p = makePayload({ id: 'window-1' });
  const a = await pausingSpool(t, root, { exclusive: true });
  await a.spool.put(p.text);
  const first = a.spool.claim(p.id, 'alice', { token: TOKEN_A });
  await a.inWindow;
  const second = a.spool.claim(p.id, 'alice', { token: TOKEN_B });
  a.resume();
  const results = await Promise.allSettled([first, second]);
  assert.equal(results[0].status, 'fulfilled');
  assert.equal(results[1].status, 'rejected');
  assert.equal((results[1] as PromiseRejectedResult).reason.code, 'ALREADY_CLAIMED');
  assert.equal((await a.spool.get(p.id))?.relay.claim_token_sha256, sha(TOKEN_A));
});

test('another process claiming in that window is told to retry, then loses', async (t) => {
  const root = path.join(await tmpDir(t), 'spool');
  const p = makePayload({ id: 'window-2' });
  const a = await pausingSpool(t, root);
  await a.spool.put(p.text);
  const other = await openSpool({ root });
  t.after(() => other.close());
  const first = a.spool.claim(p.id, 'alice', { token: TOKEN_A });
  await a.inWindow;
  await assert.rejects(other.claim(p.id, 'alice', { token: TOKEN_B }), { code: 'UNAVAILABLE' });
  a.resume();
  assert.equal((await first).token, TOKEN_A);
  await assert.rejects(other.claim(p.id, 'alice', { token: TOKEN_B }), { code: 'ALREADY_CLAIMED' });
  assert.equal((await other.claim(p.id, 'alice', { token: TOKEN_A })).token, TOKEN_A, 'the winner’s repeat is still answered');
});

test('a claim whose writer died after the rename is finished by its claimer repeating its token', async (t) => {
  const root = path.join(await tmpDir(t), 'spool');
  const p = makePayload({ id: 'window-3' });
  const setup = await openSpool({ root });
  await setup.put(p.text);
  await setup.close();
  // What a crash between the rename and the envelope leaves: the bare payload in claimed/.
  writeFileSync(path.join(root, 'claimed', `${p.id}.json`), p.text);
  const { rmSync } = await import('node:fs');
  rmSync(path.join(root, 'handoff', `${p.id}.json`));

  const hub = await openSpool({ root, exclusive: true });
  const resumed = await hub.claim(p.id, 'alice', { token: TOKEN_A });
  assert.equal(resumed.token, TOKEN_A, 'no other process writes an exclusive spool: the claim is finished at once');
  await hub.close();

  const q = makePayload({ id: 'window-4' });
  writeFileSync(path.join(root, 'claimed', `${q.id}.json`), q.text);
  let now = Date.now();
  const local = await openSpool({ root, clock: () => now });
  t.after(() => local.close());
  await assert.rejects(local.claim(q.id, 'alice', { token: TOKEN_B }), { code: 'UNAVAILABLE' }, 'young: its writer may be alive');
  now += 31_000;
  assert.equal((await local.claim(q.id, 'alice', { token: TOKEN_B })).token, TOKEN_B, 'past the recovery grace: finished by the repeat');
  await assert.rejects(local.claim(q.id, 'alice', { token: TOKEN_A }), { code: 'ALREADY_CLAIMED' });
});
