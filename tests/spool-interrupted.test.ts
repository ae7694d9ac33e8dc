/**
 * A complete or reject cut off by a crash after its rename but before its rewrite, then repeated
 * by its caller after a restart: the repeat is the success the first call would have been, with the
 * caller's own outcome on record (found by the kill -9 suite: the repeat used to get INVALID_STATE
 * and the archive kept recovery's placeholder outcome `recovered`).
 */
import assert from 'node:assert/strict';
import { mkdirSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import { bucketOf, openSpool, type Spool } from '../spool/index.js';
import { makePayload, TestFs } from './helpers/spool-fixtures.js';
import { onlyPlace } from './helpers/spool-inspect.js';
import { tmpDir } from './helpers/tmp.js';

// The spool compares its clock with file times (ctime, mtime), which the real clock sets: with a
// test clock behind them, recovery would see files from the future. An hour ahead of the real
// clock, every file looks a while old. (A fixed date worked only until the real clock passed it.)
const T0 = Math.ceil(Date.now() / 1000) * 1000 + 3_600_000; // a whole second, as payload times are

/** Runs `op` on a spool whose file system dies right after the rename into `destDir`. */
async function crashAfterRenameInto(t: TestContext, destDir: string, setup: (s: Spool) => Promise<string | undefined>, op: (s: Spool, token: string | undefined) => Promise<unknown>) {
  const root = path.join(await tmpDir(t), 'spool');
  const fs = new TestFs();
  const first = await openSpool({ root, clock: () => T0, fs: fs.ops });
  const token = await setup(first);
  const realRename = fs.ops.rename;
  fs.ops.rename = async (from, to) => {
    await realRename(from, to);
    if (path.relative(root, to).startsWith(destDir) && !path.relative(root, from).startsWith('tmp')) fs.crashed = true;
  };
  await assert.rejects(op(first, token));
  await first.close();
  return { root, token };
}

for (const full of [false, true]) {
  const mode = full ? 'full recovery' : 'quick recovery';

  test(`complete repeated after a crash between its rename and its rewrite → the same answer with its outcome (${mode})`, async (t) => {
    const id = 'cut-complete';
    const { root, token } = await crashAfterRenameInto(
      t,
      'archive',
      async (s) => {
        await s.put(makePayload({ id, nowMs: T0 }).text);
        return (await s.claim(id, 'alice')).token;
      },
      (s, tok) => s.complete(id, tok as string, { outcome: 'connected', notes: 'spoke for 3 min' }),
    );
    assert.equal(onlyPlace(root, id).state, 'archived', 'the rename happened');
    const s = await openSpool({ root, clock: () => T0 + 1000, recoveryGraceMs: 0, fullRecovery: full });
    t.after(() => s.close());
    const done = await s.complete(id, token as string, { outcome: 'connected', notes: 'spoke for 3 min' });
    assert.equal(done.relay.outcome, 'connected');
    assert.equal(done.relay.notes, 'spoke for 3 min');
    assert.equal(done.relay.recovered, undefined);
    assert.equal((await s.get(id))?.relay.outcome, 'connected', 'and it is on record');
    assert.ok(onlyPlace(root, id).bytes.toString().startsWith('{"relay":{"state":"archived"'));
    assert.deepEqual((await s.complete(id, token as string, { outcome: 'connected' })).relay.outcome, 'connected', 'further repeats are plain repeats');
    await assert.rejects(s.complete(id, 'another-token-0123456789abcdefABCDEFGH', { outcome: 'connected' }), { code: 'FENCED' });
  });

  test(`reject of a claim repeated after a crash between its rename and its rewrite → the same answer with its reason (${mode})`, async (t) => {
    const id = 'cut-reject-claimed';
    const { root, token } = await crashAfterRenameInto(
      t,
      'rejected',
      async (s) => {
        await s.put(makePayload({ id, nowMs: T0 }).text);
        return (await s.claim(id, 'alice')).token;
      },
      (s, tok) => s.reject(id, { reason: 'no_answer', by: 'alice', token: tok as string }),
    );
    const s = await openSpool({ root, clock: () => T0 + 1000, recoveryGraceMs: 0, fullRecovery: full });
    t.after(() => s.close());
    await assert.rejects(s.reject(id, { reason: 'no_answer', by: 'alice', token: 'another-token-0123456789abcdefABCDEFGH' }), { code: 'FENCED' });
    const done = await s.reject(id, { reason: 'no_answer', by: 'alice', token: token as string });
    assert.equal(done.relay.reason, 'no_answer');
    assert.equal((await s.get(id))?.relay.reason, 'no_answer');
  });

  test(`reject of a pending handoff repeated by its target after such a crash → the same answer with its reason (${mode})`, async (t) => {
    const id = 'cut-reject-pending';
    const { root } = await crashAfterRenameInto(
      t,
      'rejected',
      async (s) => {
        await s.put(makePayload({ id, nowMs: T0 }).text);
        return undefined;
      },
      (s) => s.reject(id, { reason: 'SIGNATURE', by: 'alice' }),
    );
    const s = await openSpool({ root, clock: () => T0 + 1000, recoveryGraceMs: 0, fullRecovery: full });
    t.after(() => s.close());
    await assert.rejects(s.reject(id, { reason: 'SIGNATURE', by: 'bob' }), { code: 'FORBIDDEN' });
    const done = await s.reject(id, { reason: 'SIGNATURE', by: 'alice' });
    assert.equal(done.relay.reason, 'SIGNATURE');
    assert.equal(done.relay.rejected_by, 'alice');
    await assert.rejects(s.reject(id, { reason: 'busy', by: 'alice' }), { code: 'INVALID_STATE' }, 'once on record, another reason conflicts');
  });
}

test('a transition another process has just renamed is not finished by a repeat: UNAVAILABLE until its writer could have rewritten it', async (t) => {
  const root = path.join(await tmpDir(t), 'spool');
  const id = 'in-flight';
  let now = Date.now();
  const s = await openSpool({ root, clock: () => now });
  t.after(() => s.close());
  await s.put(makePayload({ id, nowMs: now }).text);
  const claim = await s.claim(id, 'alice');
  // Another process (a janitor, or the claimer elsewhere) renamed the claim and is about to
  // write its facts: the moved file still holds the claimed envelope.
  const bucket = path.join(root, 'rejected', bucketOf(id));
  mkdirSync(bucket, { recursive: true });
  renameSync(path.join(root, 'claimed', `${id}.json`), path.join(bucket, `${id}.json`));
  await assert.rejects(s.reject(id, { reason: 'no_answer', by: 'alice', token: claim.token }), { code: 'UNAVAILABLE' });
  await assert.rejects(s.complete(id, claim.token, { outcome: 'connected' }), { code: 'INVALID_STATE' });
  now += 31_000;
  assert.equal((await s.reject(id, { reason: 'no_answer', by: 'alice', token: claim.token })).relay.reason, 'no_answer', 'its writer is gone: the repeat finishes it');
});
