import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { computeHmac, HandoffError, parsePayload } from '../protocol/index.js';
import { bucketOf, createRealFsOps, openSpool, verifyAudit, type HandoffState, type Spool, type SpoolOptions } from '../spool/index.js';
import { makePayload, TestFs, TEST_SECRET, rejectsWith } from './helpers/spool-fixtures.js';
import { acquireLock } from '../spool/lock.js';
import { auditEvents, listTree, onlyPlace, payloadBytesOf, placesOf, tmpFiles } from './helpers/spool-inspect.js';
import { tmpDir } from './helpers/tmp.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// The spool compares its clock with file times (ctime, mtime), which the real clock sets: with a
// test clock behind them, recovery would see files from the future. An hour ahead of the real
// clock, every file looks a while old. (A fixed date worked only until the real clock passed it.)
const T0 = Math.ceil(Date.now() / 1000) * 1000 + 3_600_000; // a whole second, as payload times are

interface Harness {
  root: string;
  spool: Spool;
  fs: TestFs;
  clock: { now: number };
  reopen(extra?: Partial<SpoolOptions>): Promise<Spool>;
}

async function harness(t: TestContext, extra: Partial<SpoolOptions> = {}): Promise<Harness> {
  const root = path.join(await tmpDir(t), 'spool');
  const clock = { now: T0 };
  const fs = new TestFs();
  const opened: Spool[] = [];
  const open = async (more: Partial<SpoolOptions> = {}) => {
    const s = await openSpool({ root, clock: () => clock.now, fs: fs.ops, recoveryGraceMs: 0, foreignGraceMs: 0, fullRecovery: true, ...extra, ...more });
    opened.push(s);
    return s;
  };
  t.after(async () => {
    for (const s of opened) await s.close();
  });
  const spool = await open();
  return { root, spool, fs, clock, reopen: open };
}

function expectSignatureVerifies(payloadBytes: Uint8Array): void {
  const { tree, payload } = parsePayload(payloadBytes);
  assert.equal(computeHmac(tree, Buffer.from(TEST_SECRET, 'utf8')), payload.hmac);
}

describe('spool: states and files', () => {
  test('put stores the payload bytes exactly as received in handoff/<id>.json', async (t) => {
    const h = await harness(t);
    const p = makePayload({ nowMs: T0 });
    const raw = Buffer.from(`  ${p.text}\n`, 'utf8');
    const { record, created } = await h.spool.put(raw);
    assert.equal(created, true);
    assert.equal(record.state, 'pending');
    const place = onlyPlace(h.root, p.id);
    assert.equal(place.rel, path.join('handoff', `${p.id}.json`));
    assert.deepEqual(place.bytes, raw);
    assert.equal(record.payloadText, p.text);
  });

  test('the same payload again → created:false; other bytes under the same id → CONFLICT', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'dup-1', nowMs: T0 });
    await h.spool.put(p.text);
    assert.equal((await h.spool.put(p.text)).created, false);
    const other = makePayload({ id: 'dup-1', nowMs: T0, reason: 'other' });
    await rejectsWith(h.spool.put(other.text), 'CONFLICT');
    const claim = await h.spool.claim('dup-1', 'alice');
    const again = await h.spool.put(p.text);
    assert.equal(again.created, false);
    assert.equal(again.record.state, 'claimed');
    await rejectsWith(h.spool.put(other.text), 'CONFLICT');
    assert.equal(onlyPlace(h.root, 'dup-1').state, 'claimed');
    assert.ok(claim.token, 'claim.token');
  });

  test('an invalid payload is refused with its code and leaves no file behind', async (t) => {
    const h = await harness(t);
    await rejectsWith(h.spool.put('{"protocol_version":2}'), 'VERSION');
    await rejectsWith(h.spool.put('{"a":1,"a":2}'), 'SCHEMA');
    await rejectsWith(h.spool.put(makePayload({ nowMs: T0 }).text.replace('"to_agent":"alice"', '"to_agent":"bob"')), 'SCHEMA');
    assert.deepEqual(tmpFiles(h.root), []);
    assert.deepEqual(listTree(path.join(h.root, 'handoff')), []);
  });

  test('each handoff is exactly one file in one state directory after every operation', async (t) => {
    const h = await harness(t);
    const a = makePayload({ id: 'one-a', nowMs: T0 });
    const b = makePayload({ id: 'one-b', nowMs: T0 });
    const c = makePayload({ id: 'one-c', nowMs: T0 });
    await h.spool.put(a.text);
    await h.spool.put(b.text);
    await h.spool.put(c.text);
    const expect = (id: string, state: HandoffState) => assert.equal(onlyPlace(h.root, id).state, state);
    expect('one-a', 'pending');
    const ca = await h.spool.claim('one-a', 'alice');
    expect('one-a', 'claimed');
    await h.spool.complete('one-a', ca.token, { outcome: 'connected' });
    expect('one-a', 'archived');
    assert.equal(onlyPlace(h.root, 'one-a').rel, path.join('archive', bucketOf('one-a'), 'one-a.json'));
    await h.spool.reject('one-b', { reason: 'SIGNATURE', by: 'alice' });
    expect('one-b', 'rejected');
    const cc = await h.spool.claim('one-c', 'alice');
    await h.spool.reject('one-c', { reason: 'no-answer', by: 'alice', token: cc.token });
    expect('one-c', 'rejected');
    assert.equal(onlyPlace(h.root, 'one-c').rel, path.join('rejected', bucketOf('one-c'), 'one-c.json'));
    assert.deepEqual(tmpFiles(h.root), []);
  });

  test('every later state keeps the payload byte-identical and verifiable, relay facts readable with JSON.parse', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'env-1', nowMs: T0 });
    const original = Buffer.from(p.text, 'utf8');
    await h.spool.put(p.text);
    const claim = await h.spool.claim('env-1', 'alice');
    for (const [state, step] of [
      ['claimed', async () => undefined],
      ['archived', () => h.spool.complete('env-1', claim.token, { outcome: 'connected', notes: 'ok', finalTranscript: [{ role: 'user', text: 'bye' }] })],
    ] as const) {
      await step();
      const place = onlyPlace(h.root, 'env-1');
      assert.equal(place.state, state);
      const text = place.bytes.toString('utf8');
      assert.ok(text.startsWith(`{"relay":{"state":"${state}"`), 'relay facts come first');
      assert.ok(text.endsWith('}\n'), "text.endsWith('}\n')");
      assert.ok(text.includes(p.text), 'the payload text is spliced in verbatim');
      assert.deepEqual(payloadBytesOf(place.bytes), original);
      expectSignatureVerifies(payloadBytesOf(place.bytes));
      const parsed = JSON.parse(text) as { relay: Record<string, unknown>; payload: Record<string, unknown> };
      assert.equal(parsed.relay.state, state);
      assert.equal(parsed.relay.claimed_by, 'alice');
      assert.equal(parsed.payload.handoff_id, 'env-1');
      assert.equal(JSON.stringify(parsed).includes(claim.token), false, 'the claim token itself is never stored');
    }
    const archived = JSON.parse(onlyPlace(h.root, 'env-1').bytes.toString('utf8')) as { relay: Record<string, unknown> };
    assert.equal(archived.relay.outcome, 'connected');
    assert.deepEqual(archived.relay.final_transcript, [{ role: 'user', text: 'bye' }]);

    const r = makePayload({ id: 'env-2', nowMs: T0 });
    await h.spool.put(r.text);
    await h.spool.reject('env-2', { reason: 'SIGNATURE', by: 'alice' });
    const rejected = onlyPlace(h.root, 'env-2');
    assert.deepEqual(payloadBytesOf(rejected.bytes), Buffer.from(r.text, 'utf8'));
    const relay = (JSON.parse(rejected.bytes.toString('utf8')) as { relay: Record<string, unknown> }).relay;
    assert.equal(relay.reason, 'SIGNATURE');
    assert.equal(relay.rejected_by, 'alice');
    assert.equal(typeof relay.rejected_at, 'string');
  });

  test('get finds a handoff in any state and returns its relay facts', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'get-1', nowMs: T0 });
    assert.equal(await h.spool.get('get-1'), undefined);
    await h.spool.put(p.text);
    assert.equal((await h.spool.get('get-1'))?.state, 'pending');
    const claim = await h.spool.claim('get-1', 'alice');
    const claimed = await h.spool.get('get-1');
    assert.equal(claimed?.state, 'claimed');
    assert.equal(claimed?.relay.lease_until, claim.leaseUntil);
    await h.spool.complete('get-1', claim.token, { outcome: 'connected' });
    const done = await h.spool.get('get-1');
    assert.equal(done?.state, 'archived');
    assert.equal(done?.payloadText, p.text);
    await rejectsWith(h.spool.get('../etc/passwd'), 'INVALID_ID');
  });

  test('opening a spool never reads archive/ or rejected/ unless a full recovery is asked for', async (t) => {
    const h = await harness(t);
    for (let i = 0; i < 6; i++) {
      const p = makePayload({ id: `old-${i}`, nowMs: T0 });
      await h.spool.put(p.text);
      await h.spool.reject(p.id, { reason: 'busy', by: 'alice' });
    }
    const terminal = (calls: typeof h.fs.calls) =>
            // Listing rejected/ itself (≤ 256 bucket names plus _invalid and _conflict) is bounded; what
      // must not happen is looking inside the buckets, which grow with the archive.
      calls.filter((c) => ['readdir', 'readFile', 'readRange'].includes(c.op) && /[/\\](archive|rejected)[/\\][0-9a-f]{2}/.test(String(c.args[0])));
    h.fs.reset();
    await h.reopen({ fullRecovery: false });
    assert.deepEqual(terminal(h.fs.calls), [], 'start-up cost does not depend on the archive');
    h.fs.reset();
    await h.reopen({ fullRecovery: true });
    assert.ok(terminal(h.fs.calls).length > 0, 'a full recovery does read the terminal directories');
  });

  test('get and transitions never list archive/ or rejected/ (O(1) in their size)', async (t) => {
    const h = await harness(t);
    for (let i = 0; i < 20; i++) {
      const p = makePayload({ id: `bulk-${i}`, nowMs: T0 });
      await h.spool.put(p.text);
      if (i % 2 === 0) await h.spool.reject(p.id, { reason: 'busy', by: 'alice' });
      else {
        const c = await h.spool.claim(p.id, 'alice');
        await h.spool.complete(p.id, c.token, { outcome: 'connected' });
      }
    }
    const p = makePayload({ id: 'bulk-new', nowMs: T0 });
    h.fs.reset();
    await h.spool.put(p.text);
    const c = await h.spool.claim(p.id, 'alice');
    await h.spool.complete(p.id, c.token, { outcome: 'connected' });
    assert.equal((await h.spool.get('bulk-3'))?.state, 'archived');
    assert.equal((await h.spool.get('bulk-4'))?.state, 'rejected');
    assert.equal(await h.spool.get('bulk-missing'), undefined);
    const listed = h.fs.calls.filter((c) => c.op === 'readdir').map((c) => String(c.args[0]));
    assert.deepEqual(
      listed.filter((dir) => dir.includes(`${path.sep}archive`) || dir.includes(`${path.sep}rejected`)),
      [],
      'no readdir of a terminal directory',
    );
    const reads = h.fs.calls.filter((c) => c.op === 'readFile').map((c) => path.relative(h.root, String(c.args[0])));
    assert.ok(reads.every((rel) => rel.endsWith('.json')), `only handoff files are read: ${reads.join(', ')}`);
  });
});

describe('spool: durability', () => {
  test('files appear only complete: created in tmp/, fsynced, then linked or renamed into place', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'order-1', nowMs: T0 });
    h.fs.reset();
    await h.spool.put(p.text);
    const claim = await h.spool.claim('order-1', 'alice');
    await h.spool.complete('order-1', claim.token, { outcome: 'connected' });
    const rel = (x: unknown) => path.relative(h.root, String(x));
    for (const call of h.fs.calls) {
      if (call.op === 'createExclusive') assert.ok(rel(call.args[0]).startsWith('tmp'), `created outside tmp/: ${rel(call.args[0])}`);
      if (call.op === 'openAppend') assert.ok(rel(call.args[0]).startsWith('events'), 'only the audit log is appended to');
    }
    // Every tmp file is written, fsynced and closed before it is linked/renamed into place.
    const fdOf = new Map<unknown, string>();
    const synced = new Set<string>();
    const calls = h.fs.calls;
    calls.forEach((call, i) => {
      if (call.op === 'createExclusive') fdOf.set(i, String(call.args[0]));
      if ((call.op === 'rename' || call.op === 'link') && rel(call.args[0]).startsWith('tmp')) {
        const tmp = String(call.args[0]);
        const created = calls.findIndex((c) => c.op === 'createExclusive' && c.args[0] === tmp);
        const between = calls.slice(created, i).map((c) => c.op);
        assert.ok(between.includes('write') && between.includes('fsync') && between.includes('close'), `${tmp}: ${between.join(',')}`);
        synced.add(tmp);
      }
    });
    assert.equal(synced.size, 3, 'put, claim and complete each place one fsynced tmp file');
  });

  test('the destination (and source) directories are fsynced after each rename before the operation resolves', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'dirsync-1', nowMs: T0 });
    const rel = (x: unknown) => path.relative(h.root, String(x));
    const lastIndex = (pred: (c: { op: string; args: unknown[] }) => boolean) => h.fs.calls.map(pred).lastIndexOf(true);

    h.fs.reset();
    await h.spool.put(p.text);
    const link = lastIndex((c) => c.op === 'link' && rel(c.args[1]) === path.join('handoff', 'dirsync-1.json'));
    assert.ok(link >= 0, 'link >= 0');
    assert.ok(lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'handoff') > link, "lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'handoff') > link");

    h.fs.reset();
    const claim = await h.spool.claim('dirsync-1', 'alice');
    const moved = lastIndex((c) => c.op === 'rename' && rel(c.args[1]) === path.join('claimed', 'dirsync-1.json'));
    assert.ok(lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'claimed') > moved, "lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'claimed') > moved");
    assert.ok(lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'handoff') > moved, "lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'handoff') > moved");

    h.fs.reset();
    await h.spool.complete('dirsync-1', claim.token, { outcome: 'connected' });
    const bucket = path.join('archive', bucketOf('dirsync-1'));
    const final = lastIndex((c) => c.op === 'rename' && rel(c.args[1]) === path.join(bucket, 'dirsync-1.json'));
    assert.ok(lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === bucket) > final, "lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === bucket) > final");
    assert.ok(lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'claimed') > final, "lastIndex((c) => c.op === 'fsyncDir' && rel(c.args[0]) === 'claimed') > final");
  });

  test('an fsync error rejects put with IO and nothing is stored', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'fail-fsync', nowMs: T0 });
    h.fs.failWhen = (c) => c.op === 'fsync';
    await rejectsWith(h.spool.put(p.text), 'IO');
    assert.deepEqual(placesOf(h.root, 'fail-fsync'), []);
    assert.equal(await h.spool.get('fail-fsync'), undefined);
    assert.equal((await h.spool.put(p.text)).created, true, 'a retry succeeds');
  });

  test('a directory fsync error rejects the operation with IO', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'fail-dir', nowMs: T0 });
    const events: string[] = [];
    h.spool.onTransition((e) => events.push(`${e.from}->${e.to}`));
    h.fs.failWhen = (c) => c.op === 'fsyncDir';
    await rejectsWith(h.spool.put(p.text), 'IO');
    assert.deepEqual(events, [], 'listeners hear nothing that was not acknowledged');
  });

  test('a rename error rejects claim with IO and the handoff stays pending', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'fail-rename', nowMs: T0 });
    await h.spool.put(p.text);
    h.fs.failWhen = (c) => c.op === 'rename';
    await rejectsWith(h.spool.claim('fail-rename', 'alice'), 'IO');
    assert.equal(onlyPlace(h.root, 'fail-rename').state, 'pending');
    assert.equal((await h.spool.claim('fail-rename', 'alice')).record.state, 'claimed');
  });

  test('listeners hear a transition only once it is on disk', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'listen-1', nowMs: T0 });
    const seen: string[] = [];
    const off = h.spool.onTransition((e) => {
      const dir = { pending: 'handoff', claimed: 'claimed', archived: `archive/${bucketOf(e.id)}`, rejected: `rejected/${bucketOf(e.id)}` }[e.to];
      assert.ok(existsSync(path.join(h.root, dir, `${e.id}.json`)), `${e.to} file exists when the listener runs`);
      seen.push(`${e.from}->${e.to}`);
    });
    await h.spool.put(p.text);
    const c = await h.spool.claim('listen-1', 'alice');
    await h.spool.complete('listen-1', c.token, { outcome: 'connected' });
    off();
    await h.spool.put(makePayload({ id: 'listen-2', nowMs: T0 }).text);
    assert.deepEqual(seen, ['null->pending', 'pending->claimed', 'claimed->archived']);
  });
});

describe('spool: claims', () => {
  test('twenty concurrent claims in one process → exactly one winner, the rest ALREADY_CLAIMED', async (t) => {
    const h = await harness(t);
    const other = await h.reopen();
    const p = makePayload({ id: 'race-1', nowMs: T0 });
    await h.spool.put(p.text);
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => (i % 2 ? other : h.spool).claim('race-1', 'alice')));
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) {
      if (r.status === 'rejected') assert.equal((r.reason as HandoffError).code, 'ALREADY_CLAIMED');
    }
    assert.equal(onlyPlace(h.root, 'race-1').state, 'claimed');
    const token = (won[0] as PromiseFulfilledResult<{ token: string }>).value.token;
    assert.equal((await h.spool.complete('race-1', token, { outcome: 'connected' })).state, 'archived');
  });

  test('two processes racing to claim the same handoffs → exactly one winner each', async (t) => {
    const h = await harness(t);
    const ids = Array.from({ length: 12 }, (_, i) => `xproc-${i}`);
    for (const id of ids) await h.spool.put(makePayload({ id, nowMs: Date.now() }).text);
    const script = path.join(HERE, 'helpers', 'claim-race.ts');
    const children = [0, 1].map(() => spawn(process.execPath, ['--import', 'tsx', script, h.root, 'alice', ...ids], { stdio: ['pipe', 'pipe', 'inherit'] }));
    t.after(() => {
      for (const c of children) c.kill();
    });
    const outputs = children.map(
      (child) =>
        new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (d: Buffer) => {
            out += d.toString('utf8');
            if (out.startsWith('ready\n') && !out.includes('go-sent')) child.emit('ready');
          });
          child.on('error', reject);
          child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${out}`))));
        }),
    );
    await Promise.all(children.map((child) => new Promise((resolve) => child.once('ready', resolve))));
    for (const child of children) child.stdin.write('go\n');
    const results = (await Promise.all(outputs)).map((out) => JSON.parse(out.split('\n')[1] as string) as { won: string[]; lost: Record<string, string> });
    for (const id of ids) {
      const winners = results.filter((r) => r.won.includes(id)).length;
      assert.equal(winners, 1, `${id} has exactly one winner`);
      const loser = results.find((r) => !r.won.includes(id));
      assert.equal(loser?.lost[id], 'ALREADY_CLAIMED');
      assert.equal(onlyPlace(h.root, id).state, 'claimed');
    }
  });

  test('claim by an agent other than to_agent → FORBIDDEN; unknown id → NOT_FOUND', async (t) => {
    const h = await harness(t);
    await h.spool.put(makePayload({ id: 'who-1', nowMs: T0 }).text);
    await rejectsWith(h.spool.claim('who-1', 'gordon'), 'FORBIDDEN');
    await rejectsWith(h.spool.claim('nobody', 'alice'), 'NOT_FOUND');
    await rejectsWith(h.spool.claim('a/b', 'alice'), 'INVALID_ID');
    assert.equal(onlyPlace(h.root, 'who-1').state, 'pending');
  });

  test('claim past expires_at → EXPIRED, and the handoff moves to rejected/ with reason expired', async (t) => {
    const h = await harness(t);
    await h.spool.put(makePayload({ id: 'late-1', nowMs: T0, ttlMs: 15_000 }).text);
    h.clock.now = T0 + 15_001;
    await rejectsWith(h.spool.claim('late-1', 'alice'), 'EXPIRED');
    const record = await h.spool.get('late-1');
    assert.equal(record?.state, 'rejected');
    assert.equal(record?.relay.reason, 'expired');
    await rejectsWith(h.spool.claim('late-1', 'alice'), 'EXPIRED');
  });

  test('a second claim → ALREADY_CLAIMED, also after completion', async (t) => {
    const h = await harness(t);
    await h.spool.put(makePayload({ id: 'twice-1', nowMs: T0 }).text);
    const c = await h.spool.claim('twice-1', 'alice');
    await rejectsWith(h.spool.claim('twice-1', 'alice'), 'ALREADY_CLAIMED');
    await h.spool.complete('twice-1', c.token, { outcome: 'connected' });
    await rejectsWith(h.spool.claim('twice-1', 'alice'), 'ALREADY_CLAIMED');
  });
});

describe('spool: fencing and idempotence', () => {
  test('complete with a wrong token → FENCED; with the right one after the lease → FENCED', async (t) => {
    const h = await harness(t, { leaseMs: 60_000 });
    await h.spool.put(makePayload({ id: 'fence-1', nowMs: T0, ttlMs: 120_000 }).text);
    const c = await h.spool.claim('fence-1', 'alice');
    await rejectsWith(h.spool.complete('fence-1', 'not-the-token', { outcome: 'connected' }), 'FENCED');
    await rejectsWith(h.spool.reject('fence-1', { reason: 'x', by: 'alice' }), 'FENCED');
    await rejectsWith(h.spool.reject('fence-1', { reason: 'x', by: 'alice', token: 'wrong' }), 'FENCED');
    h.clock.now = T0 + 60_001;
    await rejectsWith(h.spool.complete('fence-1', c.token, { outcome: 'connected' }), 'FENCED');
    assert.equal(onlyPlace(h.root, 'fence-1').state, 'claimed');
  });

  test('renew extends the lease so that complete succeeds later', async (t) => {
    const h = await harness(t, { leaseMs: 60_000 });
    await h.spool.put(makePayload({ id: 'renew-1', nowMs: T0 }).text);
    const c = await h.spool.claim('renew-1', 'alice');
    h.clock.now = T0 + 50_000;
    const renewed = await h.spool.renew('renew-1', c.token);
    assert.equal(renewed.relay.lease_until, new Date(T0 + 110_000).toISOString());
    await rejectsWith(h.spool.renew('renew-1', 'wrong'), 'FENCED');
    h.clock.now = T0 + 100_000;
    assert.equal((await h.spool.sweep()).leaseExpired.length, 0);
    assert.equal((await h.spool.complete('renew-1', c.token, { outcome: 'connected' })).state, 'archived');
    assert.equal(onlyPlace(h.root, 'renew-1').state, 'archived');
  });

  test('complete repeated with the same token and outcome returns the stored record; another outcome → INVALID_STATE', async (t) => {
    const h = await harness(t);
    await h.spool.put(makePayload({ id: 'idem-1', nowMs: T0 }).text);
    const c = await h.spool.claim('idem-1', 'alice');
    const first = await h.spool.complete('idem-1', c.token, { outcome: 'connected' });
    h.clock.now += 5_000;
    const again = await h.spool.complete('idem-1', c.token, { outcome: 'connected' });
    assert.deepEqual(again.relay, first.relay);
    await rejectsWith(h.spool.complete('idem-1', c.token, { outcome: 'voicemail' }), 'INVALID_STATE');
    await rejectsWith(h.spool.complete('idem-1', 'wrong', { outcome: 'connected' }), 'FENCED');
    await rejectsWith(h.spool.reject('idem-1', { reason: 'no-answer', by: 'alice', token: c.token }), 'INVALID_STATE');
  });

  test('reject repeated with the same reason is idempotent; another reason → INVALID_STATE', async (t) => {
    const h = await harness(t);
    await h.spool.put(makePayload({ id: 'rej-1', nowMs: T0 }).text);
    const first = await h.spool.reject('rej-1', { reason: 'SIGNATURE', by: 'alice' });
    assert.deepEqual((await h.spool.reject('rej-1', { reason: 'SIGNATURE', by: 'alice' })).relay, first.relay);
    await rejectsWith(h.spool.reject('rej-1', { reason: 'EXPIRED', by: 'alice' }), 'INVALID_STATE');
    await h.spool.put(makePayload({ id: 'rej-2', nowMs: T0 }).text);
    const c = await h.spool.claim('rej-2', 'alice');
    const r = await h.spool.reject('rej-2', { reason: 'busy', by: 'alice', token: c.token });
    assert.equal(r.relay.claimed_by, 'alice');
    assert.equal((await h.spool.reject('rej-2', { reason: 'busy', by: 'alice', token: c.token })).state, 'rejected');
    await rejectsWith(h.spool.reject('rej-2', { reason: 'busy', by: 'alice', token: 'wrong' }), 'FENCED');
    await rejectsWith(h.spool.complete('rej-2', c.token, { outcome: 'connected' }), 'INVALID_STATE');
  });

  test('reject of a pending handoff by anyone but its target → FORBIDDEN', async (t) => {
    const h = await harness(t);
    await h.spool.put(makePayload({ id: 'rej-3', nowMs: T0 }).text);
    await rejectsWith(h.spool.reject('rej-3', { reason: 'nope', by: 'bob' }), 'FORBIDDEN');
    assert.equal(onlyPlace(h.root, 'rej-3').state, 'pending');
  });
});

describe('spool: janitor', () => {
  test('sweep moves pending handoffs past expires_at to rejected/ (expired) and stale claims (lease_expired)', async (t) => {
    const h = await harness(t, { leaseMs: 30_000 });
    await h.spool.put(makePayload({ id: 'sw-short', nowMs: T0, ttlMs: 10_000 }).text);
    await h.spool.put(makePayload({ id: 'sw-long', nowMs: T0, ttlMs: 600_000 }).text);
    await h.spool.put(makePayload({ id: 'sw-claim', nowMs: T0, ttlMs: 600_000 }).text);
    const c = await h.spool.claim('sw-claim', 'alice');
    assert.deepEqual(await h.spool.sweep(T0 + 10_000), { expired: [], leaseExpired: [] }, 'not past the deadline yet');
    assert.deepEqual(await h.spool.sweep(T0 + 10_001), { expired: ['sw-short'], leaseExpired: [] });
    h.clock.now = T0 + 30_001;
    assert.deepEqual(await h.spool.sweep(), { expired: [], leaseExpired: ['sw-claim'] });
    const expired = await h.spool.get('sw-short');
    assert.equal(expired?.state, 'rejected');
    assert.equal(expired?.relay.reason, 'expired');
    const stale = await h.spool.get('sw-claim');
    assert.equal(stale?.relay.reason, 'lease_expired');
    assert.equal(stale?.relay.claimed_by, 'alice');
    assert.equal((await h.spool.get('sw-long'))?.state, 'pending');
    await rejectsWith(h.spool.complete('sw-claim', c.token, { outcome: 'connected' }), 'FENCED');
    assert.deepEqual(
      (await h.spool.listPending()).map((e) => e.id),
      ['sw-long'],
    );
  });
});

describe('spool: foreign files in handoff/', () => {
  test('a payload dropped as <caller_hash>-<seq>.json is adopted under its id and can be claimed', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: '1795341600-bob-alice-8a59780bb8cd2ba0', nowMs: T0 });
    const foreign = path.join(h.root, 'handoff', '8a59780bb8cd2ba0-1.json');
    writeFileSync(foreign, p.text);
    const heard: string[] = [];
    h.spool.onTransition((e) => heard.push(`${e.id}:${e.to}`));
    const pending = await h.spool.listPending('alice');
    assert.deepEqual(pending.map((e) => e.id), [p.id]);
    assert.equal(existsSync(foreign), false);
    assert.deepEqual(onlyPlace(h.root, p.id).bytes, Buffer.from(p.text));
    assert.deepEqual(heard, [`${p.id}:pending`]);
    assert.equal((await h.spool.claim(p.id, 'alice')).record.state, 'claimed');
  });

  test('a dropped file is never taken under its own name, which has the shape of an id', async (t) => {
    for (const take of ['get', 'claim', 'reject'] as const) {
      const h = await harness(t);
      const p = makePayload({ id: `1795341600-bob-alice-8a59780bb8cd2ba0-${take}`, nowMs: T0 });
      const name = '8a59780bb8cd2ba0-7';
      writeFileSync(path.join(h.root, 'handoff', `${name}.json`), p.text);
      if (take === 'get') assert.equal(await h.spool.get(name), undefined);
      if (take === 'claim') await assert.rejects(h.spool.claim(name, 'alice'), { code: 'NOT_FOUND' });
      if (take === 'reject') await assert.rejects(h.spool.reject(name, { reason: 'busy', by: 'alice' }), { code: 'NOT_FOUND' });
      assert.equal((await h.spool.get(p.id))?.state, 'pending', `${take}: the handoff is adopted under its own id`);
      assert.deepEqual(onlyPlace(h.root, p.id).bytes, Buffer.from(p.text), take);
      assert.equal((await h.spool.claim(p.id, 'alice')).record.state, 'claimed', take);
    }
  });

  test('two processes adopting the same dropped file at once: no error, the handoff pending once', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'adopt-race', nowMs: T0 });
    const real = createRealFsOps();
    let other: Spool | undefined;
    const first = await openSpool({
      root: h.root,
      recoveryGraceMs: 0,
      foreignGraceMs: 0,
      fs: {
        ...real,
        // Right after this process linked the file under its id, the other one scans handoff/.
        link: async (from, to) => {
          await real.link(from, to);
          if (other && from.endsWith('8a59780bb8cd2ba0-9.json')) await other.listPending();
        },
      },
    });
    t.after(() => first.close());
    other = await openSpool({ root: h.root, recoveryGraceMs: 0, foreignGraceMs: 0 });
    t.after(() => other?.close());
    writeFileSync(path.join(h.root, 'handoff', '8a59780bb8cd2ba0-9.json'), p.text); // dropped after both opened
    assert.deepEqual((await first.listPending()).map((e) => e.id), ['adopt-race']);
    assert.deepEqual(onlyPlace(h.root, p.id).bytes, Buffer.from(p.text));
  });

  test('a repeated claim that races a sweep in another process is fenced, never a second copy', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'repeat-race', nowMs: Date.now(), ttlMs: 3_600_000 });
    // A claim cut off between its rename and its envelope: the bare payload in claimed/.
    writeFileSync(path.join(h.root, 'claimed', `${p.id}.json`), p.text);
    const sweeper = await openSpool({ root: h.root, recoveryGraceMs: 0 });
    t.after(() => sweeper.close());
    const real = createRealFsOps();
    let sweepOnce = true;
    const claimer = await openSpool({
      root: h.root,
      recoveryGraceMs: 0,
      fs: {
        ...real,
        // While the claimer writes the envelope, the other process sweeps (the bare claim's lease is long over).
        createExclusive: async (file, mode) => {
          if (sweepOnce) {
            sweepOnce = false;
            await sweeper.sweep(Date.now() + 3_600_000);
          }
          return real.createExclusive(file, mode);
        },
      },
    });
    t.after(() => claimer.close());
    await assert.rejects(claimer.claim(p.id, 'alice', { token: 'R'.repeat(43) }), { code: 'FENCED' });
    assert.equal(placesOf(h.root, p.id).length, 1, `one place: ${JSON.stringify(placesOf(h.root, p.id))}`);
  });

  // `state`: what the put answers; 'claimed' when the other process's claim (its rename) is done
  // before the put has written its line, which the hook waits for.
  const SEEN_AT_ONCE: Array<{ who: string; see: (self: Spool, other: Spool, id: string) => Promise<unknown>; lines: string[]; state: HandoffState }> = [
    { who: 'another process reads, then claims', see: (_, other, id) => other.auditRead(id, 'alice').then(() => other.claim(id, 'alice')), lines: ['put', 'read by alice', 'claim by alice'], state: 'pending' },
    { who: 'another process claims', see: (_, other, id) => other.claim(id, 'alice'), lines: ['put', 'claim by alice'], state: 'claimed' },
    { who: "the writer's own instance reads", see: (self, _, id) => self.auditRead(id, 'alice'), lines: ['put', 'read by alice'], state: 'pending' },
  ];
  for (const { who, see, lines, state } of SEEN_AT_ONCE) {
    test(`a handoff seen the moment it is linked is audited after its put (${who})`, async (t) => {
      const h = await harness(t);
      const p = makePayload({ id: 'seen-at-once', nowMs: T0 });
      const other = await h.reopen();
      const real = createRealFsOps();
      let seen: Promise<unknown> | undefined;
      let writer: Spool | undefined;
      writer = await h.reopen({
        fs: {
          ...real,
          link: async (from, to) => {
            await real.link(from, to);
            if (to !== path.join(h.root, 'handoff', `${p.id}.json`) || writer === undefined) return;
            // A watcher sees the file at once; were nothing holding them back, the lines of what
            // it does would be written in this pause, before the put's.
            seen = see(writer, other, p.id);
            await new Promise((resolve) => setTimeout(resolve, 100));
            const claimed = path.join(h.root, 'claimed', `${p.id}.json`);
            for (let i = 0; state === 'claimed' && !existsSync(claimed) && i < 200; i++) await new Promise((resolve) => setTimeout(resolve, 10));
          },
        },
      });
      const put = await writer.put(p.text);
      assert.deepEqual([put.created, put.record.state], [true, state]);
      await seen;
      const audited = auditEvents(h.root).filter((e) => e.id === p.id);
      assert.deepEqual(audited.map((e) => (e.by === undefined ? e.event : `${e.event} by ${e.by}`)), lines);
      assert.equal((await verifyAudit(path.join(h.root, 'events'))).ok, true, 'the chain stays linear');
    });
  }

  test('a put whose copy is taken away after the link while another with other bytes moved on: CONFLICT, and no put line', async (t) => {
    const h = await harness(t);
    const mine = makePayload({ id: 'moved-on', nowMs: T0 });
    const theirs = makePayload({ id: 'moved-on', nowMs: T0, reason: 'different' });
    const other = await h.reopen();
    const real = createRealFsOps();
    const dest = path.join(h.root, 'handoff', `${mine.id}.json`);
    const writer = await h.reopen({
      fs: {
        ...real,
        // After the put found the id nowhere, before it links: another process puts other bytes
        // under the id and claims them.
        createExclusive: async (file, mode) => {
          if (path.basename(path.dirname(file)) === 'tmp' && !existsSync(path.join(h.root, 'claimed', `${mine.id}.json`))) {
            await other.put(theirs.text);
            await other.claim(theirs.id, 'alice');
          }
          return real.createExclusive(file, mode);
        },
        // Right after the link, ours is taken away (as another process setting it aside would).
        link: async (from, to) => {
          await real.link(from, to);
          if (to === dest) await real.unlink(dest);
        },
      },
    });
    await assert.rejects(writer.put(mine.text), { code: 'CONFLICT' });
    const audited = auditEvents(h.root).filter((e) => e.id === mine.id).map((e) => e.event);
    assert.deepEqual(audited, ['put', 'claim'], "only the other process's put and claim");
  });

  test("a read being recorded does not hold up the claim that follows it (only its line's place is taken under the id's lock)", async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'read-then-claim', nowMs: T0 });
    const real = createRealFsOps();
    let slowAudit = false;
    const spool = await h.reopen({
      fs: {
        ...real,
        // The audit log's disk is slow for a moment: the read's line takes a second to be durable.
        fsync: async (fd) => {
          if (slowAudit) await new Promise((resolve) => setTimeout(resolve, 1000));
          return real.fsync(fd);
        },
      },
    });
    await spool.put(p.text);
    slowAudit = true;
    let readDone = false;
    const read = spool.auditRead(p.id, 'alice').then(() => (readDone = true));
    const claim = spool.claim(p.id, 'alice');
    const claimed = path.join(h.root, 'claimed', `${p.id}.json`);
    for (let i = 0; !existsSync(claimed) && i < 400; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.ok(existsSync(claimed), 'the claim renamed the file');
    assert.equal(readDone, false, "the claim's rename came while the read's line was still being written");
    await Promise.all([read, claim]);
    assert.deepEqual(auditEvents(h.root).filter((e) => e.id === p.id).map((e) => e.event), ['put', 'read', 'claim']);
  });

  test('close waits for reads still being recorded', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'read-at-close', nowMs: T0 });
    const spool = await h.reopen();
    await spool.put(p.text);
    // Not awaited, as a poll's read in the hub or LocalSource's is not.
    const read = spool.auditRead(p.id, 'alice');
    await spool.close();
    assert.deepEqual(auditEvents(h.root).filter((e) => e.id === p.id).map((e) => e.event), ['put', 'read']);
    await read;
  });

  test('a put that cannot take the audit lock leaves no tmp file behind (waits out the lock, about 14 s)', async (t) => {
    const h = await harness(t);
    const writer = await h.reopen();
    const holder = await acquireLock(path.join(h.root, 'events', '.audit.lock'));
    t.after(() => holder());
    await assert.rejects(writer.put(makePayload({ id: 'no-lock', nowMs: T0 }).text), { code: 'IO' });
    assert.deepEqual(tmpFiles(h.root), [], 'the written tmp file was removed');
    assert.deepEqual(placesOf(h.root, 'no-lock'), [], 'and nothing was linked');
    await holder();
    assert.equal((await writer.put(makePayload({ id: 'no-lock', nowMs: T0 }).text)).created, true, 'once the lock is free, a retry goes through');
  });

  test('a put that takes the audit lock while a line of its own process waits for it: both are written, in order', async (t) => {
    const h = await harness(t);
    const first = makePayload({ id: 'waiting-line', nowMs: T0 });
    const second = makePayload({ id: 'put-behind-it', nowMs: T0 });
    const shared = await h.reopen();
    await shared.put(first.text);
    // Another process holds the lock; this one queues a line (its batch waits for the lock), then puts.
    const other = await acquireLock(path.join(h.root, 'events', '.audit.lock'));
    const read = shared.auditRead(first.id, 'alice');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const put = shared.put(second.text);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await other();
    await Promise.all([read, put]);
    const lines = auditEvents(h.root).map((e) => `${e.event} ${e.id}`);
    assert.deepEqual(lines.slice(-2), ['read waiting-line', 'put put-behind-it']);
    assert.equal((await verifyAudit(path.join(h.root, 'events'))).ok, true);
  });

  test('a repeated drop of the same payload is removed; other bytes under a taken id go to rejected/_conflict/', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'drop-1', nowMs: T0 });
    await h.spool.put(p.text);
    writeFileSync(path.join(h.root, 'handoff', 'abcdef0123456789-1.json'), p.text);
    const other = makePayload({ id: 'drop-1', nowMs: T0, reason: 'different' });
    writeFileSync(path.join(h.root, 'handoff', 'abcdef0123456789-2.json'), other.text);
    assert.deepEqual((await h.spool.listPending()).map((e) => e.id), ['drop-1']);
    assert.deepEqual(listTree(path.join(h.root, 'handoff')), ['drop-1.json']);
    assert.deepEqual(readFileSync(path.join(h.root, 'rejected', '_conflict', 'abcdef0123456789-2.json'), 'utf8'), other.text);
    assert.deepEqual(onlyPlace(h.root, 'drop-1').bytes, Buffer.from(p.text));
  });

  test('an invalid dropped file goes to rejected/_invalid/ once its writer has had time to finish', async (t) => {
    const h = await harness(t, { foreignGraceMs: 2_000 });
    const file = path.join(h.root, 'handoff', 'feedfeedfeedfeed-7.json');
    writeFileSync(file, '{"protocol_version":1,"handoff_id":"half');
    h.clock.now = Date.now();
    assert.deepEqual(await h.spool.listPending(), []);
    assert.ok(existsSync(file), 'a young file may still be being written');
    h.clock.now = Date.now() + 5_000;
    assert.deepEqual(await h.spool.listPending(), []);
    assert.equal(existsSync(file), false);
    assert.equal(readFileSync(path.join(h.root, 'rejected', '_invalid', 'feedfeedfeedfeed-7.json'), 'utf8'), '{"protocol_version":1,"handoff_id":"half');
    const log = readFileSync(path.join(h.root, 'events', listTree(path.join(h.root, 'events'))[0] as string), 'utf8');
    assert.match(log, /"event":"invalid".*"reason":"SCHEMA".*"file":"feedfeedfeedfeed-7.json"/);
  });

  test('listPending is served from memory and rescans only when handoff/ changed', async (t) => {
    const h = await harness(t);
    const other = await h.reopen();
    await h.spool.put(makePayload({ id: 'idx-1', nowMs: T0 }).text);
    // Make the directory's mtime old enough to be trusted (timestamps are coarse).
    const past = new Date(Date.now() - 10_000);
    utimesSync(path.join(h.root, 'handoff'), past, past);
    assert.deepEqual((await h.spool.listPending('alice')).map((e) => e.id), ['idx-1']);
    h.fs.reset();
    assert.deepEqual((await h.spool.listPending('alice')).map((e) => e.id), ['idx-1']);
    assert.deepEqual(h.fs.calls.map((c) => c.op), ['stat'], 'one stat, no readdir, no reads');
    await other.put(makePayload({ id: 'idx-2', nowMs: T0 + 1000 }).text);
    assert.deepEqual((await h.spool.listPending('alice')).map((e) => e.id), ['idx-1', 'idx-2']);
    await other.claim('idx-1', 'alice');
    assert.deepEqual((await h.spool.listPending('alice')).map((e) => e.id), ['idx-2']);
    assert.deepEqual(await h.spool.listPending('gordon'), []);
  });
});

describe('spool: recovery', () => {
  test('recovery removes tmp files whose writer is gone and keeps those of a live writer', async (t) => {
    const h = await harness(t);
    const tmp = path.join(h.root, 'tmp');
    writeFileSync(path.join(tmp, 'junk'), 'x');
    writeFileSync(path.join(tmp, `${process.pid}.0123456789ab.1`), 'closed instance of this process');
    writeFileSync(path.join(tmp, '2147483646.0123456789ab.1'), 'dead process');
    const live = `${process.ppid}.0123456789ab.1`;
    writeFileSync(path.join(tmp, live), 'another live process');
    h.clock.now = Date.now();
    const again = await h.reopen();
    assert.deepEqual(tmpFiles(h.root), [live]);
    assert.equal((await again.recover({ full: true })).tmpRemoved, 0);
  });

  test('a raw payload left in claimed/ or rejected/ by an interrupted transition is rolled forward', async (t) => {
    const h = await harness(t, { leaseMs: 60_000 });
    const a = makePayload({ id: 'rf-claimed', nowMs: T0 });
    const b = makePayload({ id: 'rf-rejected', nowMs: Date.now() - 120_000, ttlMs: 1_000 });
    writeFileSync(path.join(h.root, 'claimed', 'rf-claimed.json'), a.text);
    mkdirSync(path.join(h.root, 'rejected', bucketOf('rf-rejected')));
    writeFileSync(path.join(h.root, 'rejected', bucketOf('rf-rejected'), 'rf-rejected.json'), b.text);
    h.clock.now = Date.now() + 60_000;
    const s = await h.reopen();
    const claimed = await s.get('rf-claimed');
    assert.equal(claimed?.relay.recovered, true);
    assert.equal(claimed?.relay.claimed_by, 'alice');
    assert.equal(claimed?.relay.claim_token_sha256, undefined);
    assert.ok(onlyPlace(h.root, 'rf-claimed').bytes.toString().startsWith('{"relay":{"state":"claimed"'));
    const rejected = await s.get('rf-rejected');
    assert.equal(rejected?.relay.reason, 'expired');
    assert.deepEqual(payloadBytesOf(onlyPlace(h.root, 'rf-rejected').bytes), Buffer.from(b.text));
    const second = await s.recover({ full: true });
    assert.equal(second.rolledForward, 0, 'recovery is idempotent');
  });

  test('a file younger than the grace period is left for a live writer, then rolled forward by a sweep', async (t) => {
    const h = await harness(t, { recoveryGraceMs: 30_000 });
    const a = makePayload({ id: 'young-1', nowMs: T0 });
    writeFileSync(path.join(h.root, 'claimed', 'young-1.json'), a.text);
    h.clock.now = Date.now();
    const s = await h.reopen();
    assert.equal(onlyPlace(h.root, 'young-1').bytes.toString(), a.text, 'not rewritten yet');
    assert.equal((await s.get('young-1'))?.state, 'claimed', 'readers already see it as claimed');
    h.clock.now = Date.now() + 31_000;
    await s.sweep();
    assert.ok(onlyPlace(h.root, 'young-1').bytes.toString().startsWith('{"relay":{"state":"claimed"'));
  });

  test('the same id in several directories is resolved to its latest state', async (t) => {
    const h = await harness(t);
    const p = makePayload({ id: 'twin-1', nowMs: T0 });
    await h.spool.put(p.text);
    const c = await h.spool.claim('twin-1', 'alice');
    const claimedFile = path.join(h.root, 'claimed', 'twin-1.json');
    const copy = path.join(h.root, 'copy.json');
    copyFileSync(claimedFile, copy);
    await h.spool.complete('twin-1', c.token, { outcome: 'connected' });
    copyFileSync(copy, claimedFile);
    writeFileSync(path.join(h.root, 'handoff', 'twin-1.json'), p.text);
    mkdirSync(path.join(h.root, 'rejected', bucketOf('twin-1')), { recursive: true });
    writeFileSync(path.join(h.root, 'rejected', bucketOf('twin-1'), 'twin-1.json'), p.text);
    assert.equal(placesOf(h.root, 'twin-1').length, 4);
    assert.equal((await h.spool.get('twin-1'))?.state, 'archived', 'readers already prefer the latest state');
    const s = await h.reopen();
    const place = onlyPlace(h.root, 'twin-1');
    assert.equal(place.state, 'archived');
    assert.equal((await s.get('twin-1'))?.relay.outcome, 'connected');
    const log = listTree(path.join(h.root, 'events')).map((f) => readFileSync(path.join(h.root, 'events', f), 'utf8')).join('');
    assert.equal(log.match(/"event":"duplicate"/g)?.length, 3);
    assert.equal((await s.recover({ full: true })).duplicatesResolved, 0);
  });

  test('openSpool validates its options before touching the disk', async (t) => {
    const root = path.join(await tmpDir(t), 'never');
    await rejectsWith(openSpool({ root: '' }), 'CONFIG');
    await rejectsWith(openSpool({ root, leaseMs: -1 }), 'CONFIG');
    assert.equal(existsSync(root), false);
  });
});

/**
 * Crash between any two file-system steps of each operation: the run is cut off after k mutating
 * calls (every later call fails, as if the process had died), then the spool is reopened.
 */
describe('spool: crash at every step', () => {
  interface Scenario {
    name: string;
    before: HandoffState;
    after: HandoffState;
    /** Brings `id` into the state before the operation; returns the payload text it used. */
    setup(s: Spool, id: string, root: string): Promise<{ text: string; token?: string }>;
    run(s: Spool, id: string, ctx: { text: string; token?: string; now: number }): Promise<unknown>;
  }
  const fresh = (id: string, ttlMs = 600_000) => makePayload({ id, nowMs: T0, ttlMs }).text;
  const pendingOne = async (s: Spool, id: string, ttlMs?: number) => {
    const text = fresh(id, ttlMs);
    await s.put(text);
    return { text };
  };
  const claimedOne = async (s: Spool, id: string) => {
    const { text } = await pendingOne(s, id);
    return { text, token: (await s.claim(id, 'alice')).token };
  };
  const scenarios: Scenario[] = [
    {
      name: 'put',
      before: 'pending',
      after: 'pending',
      setup: async (_s, id) => ({ text: fresh(id) }),
      run: (s, _id, ctx) => s.put(ctx.text),
    },
    { name: 'claim', before: 'pending', after: 'claimed', setup: (s, id) => pendingOne(s, id), run: (s, id) => s.claim(id, 'alice') },
    {
      name: 'complete',
      before: 'claimed',
      after: 'archived',
      setup: claimedOne,
      run: (s, id, ctx) => s.complete(id, ctx.token as string, { outcome: 'connected' }),
    },
    {
      name: 'reject of a pending handoff',
      before: 'pending',
      after: 'rejected',
      setup: (s, id) => pendingOne(s, id),
      run: (s, id) => s.reject(id, { reason: 'SIGNATURE', by: 'alice' }),
    },
    {
      name: 'reject of a claimed handoff',
      before: 'claimed',
      after: 'rejected',
      setup: claimedOne,
      run: (s, id, ctx) => s.reject(id, { reason: 'no-answer', by: 'alice', token: ctx.token as string }),
    },
    {
      name: 'sweep of an expired handoff',
      before: 'pending',
      after: 'rejected',
      setup: (s, id) => pendingOne(s, id, 1_000),
      run: (s, _id, ctx) => s.sweep(ctx.now + 2_000),
    },
    {
      name: 'sweep of a stale claim',
      before: 'claimed',
      after: 'rejected',
      setup: claimedOne,
      run: (s, _id, ctx) => s.sweep(ctx.now + 16 * 60_000),
    },
    {
      name: 'adoption of a foreign file',
      before: 'pending',
      after: 'pending',
      setup: async (_s, id, root) => {
        const text = fresh(id);
        writeFileSync(path.join(root, 'handoff', `${id.replace(/_/g, '')}-9.json`), text);
        return { text };
      },
      run: (s) => s.listPending(),
    },
  ];

  for (const sc of scenarios) {
    test(`${sc.name}: after a crash at any step, recovery leaves one consistent file`, async (t) => {
      const root = path.join(await tmpDir(t), 'spool');
      const fs = new TestFs();
      const clock = { now: T0 };
      const options = (more: Partial<SpoolOptions> = {}): SpoolOptions => ({ root, clock: () => clock.now, recoveryGraceMs: 0, foreignGraceMs: 0, fullRecovery: true, ...more });
      const cleanup: Spool[] = [];
      t.after(async () => {
        for (const s of cleanup) await s.close();
      });
      const stepsOf = async (id: string): Promise<number> => {
        const s = await openSpool(options({ fs: fs.ops }));
        cleanup.push(s);
        const ctx = await sc.setup(s, id, root);
        fs.reset();
        await sc.run(s, id, { ...ctx, now: clock.now });
        await s.close();
        return fs.mutating;
      };
      // Every id of a scenario lands in one bucket, and the first run creates that bucket and the
      // audit file, so that every later run takes the same steps.
      const base = sc.name.replace(/\W/g, '_');
      const bucket = bucketOf(`${base}_warmup`);
      const idFor = (label: string): string => {
        for (let n = 0; ; n++) if (bucketOf(`${base}_${label}_${n}`) === bucket) return `${base}_${label}_${n}`;
      };
      await stepsOf(`${base}_warmup`);
      const total = await stepsOf(idFor('full'));
      assert.ok(total >= 3, `${sc.name} takes ${total} steps`);
      for (let k = 0; k < total; k++) {
        const id = idFor(`k${k}`);
        const s = await openSpool(options({ fs: fs.ops }));
        cleanup.push(s);
        const ctx = await sc.setup(s, id, root);
        fs.reset();
        fs.crashAfter = k;
        await assert.rejects(sc.run(s, id, { ...ctx, now: clock.now }), `${sc.name} must fail when cut off after ${k} of ${total} steps`);
        await s.close();
        fs.crashAfter = undefined;
        fs.crashed = false;

        const recovered = await openSpool(options());
        cleanup.push(recovered);
        const place = placesOf(root, id);
        if (sc.name === 'put' && place.length === 0) {
          // Cut off before the link: nothing was stored, and nothing was acknowledged.
          assert.equal(await recovered.get(id), undefined);
        } else {
          const only = onlyPlace(root, id);
          assert.ok([sc.before, sc.after].includes(only.state), `k=${k}: ${only.rel}`);
          assert.deepEqual(payloadBytesOf(only.bytes), Buffer.from(ctx.text), `k=${k}: payload bytes intact`);
          if (only.state !== 'pending') {
            assert.ok(only.bytes.toString().startsWith(`{"relay":{"state":"${only.state}"`), `k=${k}: ${only.rel} is an up-to-date envelope`);
          }
          assert.equal((await recovered.get(id))?.state, only.state);
        }
        assert.deepEqual(tmpFiles(root), [], `k=${k}: tmp/ is clean`);
        const audit = await verifyAudit(path.join(root, 'events'));
        assert.equal(audit.ok, true, `k=${k}: ${JSON.stringify(audit.firstBad)}`);
        const tree = listTree(root);
        const again = await recovered.recover({ full: true });
        assert.deepEqual(again, { tmpRemoved: 0, duplicatesResolved: 0, rolledForward: 0, adopted: 0, invalid: 0, deferred: 0, skipped: 0 }, `k=${k}: recovery is idempotent`);
        assert.deepEqual(listTree(root), tree);
        // Finish what the crash left (an expired handoff, a stale claim) before the next round.
        await recovered.sweep(clock.now + 60 * 60_000);
        await recovered.close();
      }
    });
  }
});

test('a claim repeated with the proposed token returns the same claim; another token loses', async (t) => {
  const h = await harness(t);
  const p = makePayload({ id: 'proposed-1', nowMs: T0 });
  await h.spool.put(p.text);
  const token = 'client-chosen-token-0123456789abcdefABCDEF';
  const first = await h.spool.claim(p.id, 'alice', { token });
  assert.equal(first.token, token);
  const again = await h.spool.claim(p.id, 'alice', { token });
  assert.equal(again.token, token);
  assert.equal(again.leaseUntil, first.leaseUntil, 'the same claim, not a new one');
  await rejectsWith(h.spool.claim(p.id, 'alice', { token: 'another-token-0123456789abcdefABCDEFGH' }), 'ALREADY_CLAIMED');
  await rejectsWith(h.spool.claim(p.id, 'alice'), 'ALREADY_CLAIMED');
  await rejectsWith(h.spool.claim(p.id, 'alice', { token: 'short' }), 'BAD_REQUEST');
  const done = await h.spool.complete(p.id, token, { outcome: 'connected' });
  assert.equal(done.state, 'archived');
  await rejectsWith(h.spool.claim(p.id, 'alice', { token }), 'ALREADY_CLAIMED');
});
