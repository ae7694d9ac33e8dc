/**
 * An exclusive spool (a hub's) records its owner; no other process opens the spool while that
 * owner is alive, and a dead owner (killed, or a pid reused since) does not lock anyone out.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { HandoffError } from '../protocol/index.js';
import { openSpool, type Spool } from '../spool/index.js';
import { runCli } from './helpers/cli.js';
import { readyChild } from './helpers/ready-child.js';
import { makePayload } from './helpers/spool-fixtures.js';
import { treeSnapshot } from './helpers/spool-inspect.js';
import { tmpDir } from './helpers/tmp.js';

/** A child process holding the spool at `root` open, exclusive, as a hub would. */
function ownerProcess(t: TestContext, root: string): Promise<ChildProcess> {
  return readyChild(t, 'spool-owner.ts', [root], 'open');
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

async function refused(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof HandoffError, String(err));
    assert.equal(err.code, 'UNAVAILABLE');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('spool: the owner of an exclusive spool', () => {
  test('while a hub holds the spool, no other process opens it, shared or exclusive', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    const hub = await ownerProcess(t, root);
    await refused(openSpool({ root }), new RegExp(`owned by a running hub \\(pid ${hub.pid}\\)`));
    await refused(openSpool({ root, exclusive: true }), /owned by a running hub/);
    hub.kill('SIGTERM');
    await exited(hub);
    assert.equal(existsSync(path.join(root, '.owner')), false, 'a hub closing its spool removes the record');
    await (await openSpool({ root })).close();
  });

  test('a hub killed -9 leaves its record, which locks nobody out', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    const hub = await ownerProcess(t, root);
    hub.kill('SIGKILL');
    await exited(hub);
    assert.equal(JSON.parse(readFileSync(path.join(root, '.owner'), 'utf8')).pid, hub.pid);
    const next = await openSpool({ root, exclusive: true });
    assert.equal(JSON.parse(readFileSync(path.join(root, '.owner'), 'utf8')).pid, process.pid);
    await next.close();
    assert.equal(existsSync(path.join(root, '.owner')), false);
  });

  test('a live process with the recorded pid but another start time is not the owner (pid reused)', async (t) => {
    if (!existsSync('/proc/self/stat')) return t.skip('no /proc on this system');
    const root = path.join(await tmpDir(t), 'spool');
    await (await openSpool({ root })).close();
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    t.after(() => other.kill('SIGKILL'));
    const started = readFileSync(`/proc/${other.pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19];
    const here = { host: os.hostname(), boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(), pidns: readlinkSync('/proc/self/ns/pid') };
    writeFileSync(path.join(root, '.owner'), JSON.stringify({ pid: other.pid, ...here, started: '1' }));
    await (await openSpool({ root })).close();
    writeFileSync(path.join(root, '.owner'), JSON.stringify({ pid: other.pid, ...here, started }));
    await refused(openSpool({ root }), new RegExp(`pid ${other.pid}\\)`));
  });

  test('an owner that cannot be checked (another host, pid namespace or boot) does not lock a hub out', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    await (await openSpool({ root })).close();
    const file = path.join(root, '.owner');
    for (const record of [
      { pid: process.ppid, host: 'elsewhere.example', started: '1' },
      { pid: 1, host: os.hostname(), started: '1', pidns: 'pid:[1]' },
      { pid: '7' },
    ]) {
      writeFileSync(file, JSON.stringify(record));
      const spool = await openSpool({ root, exclusive: true });
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
      await spool.close();
    }
  });

  test('hubs starting at the same moment: exactly one takes the spool', async (t) => {
    for (let round = 0; round < 3; round++) {
      const root = path.join(await tmpDir(t), 'spool');
      await (await openSpool({ root })).close();
      const outcomes = await Promise.all(
        [0, 1, 2].map((i) =>
          readyChild(t, 'spool-owner.ts', [root], 'open').then(
            () => 'open',
            (err: Error) => (/exited \(34\)/.test(err.message) ? 'refused' : `other: ${err.message} ${i}`),
          ),
        ),
      );
      assert.deepEqual(outcomes.sort(), ['open', 'refused', 'refused'], `round ${round}`);
    }
  });

  test('a second open in the owning process is refused too, also two started together; after close it opens', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    const refused = (err: unknown) => err instanceof HandoffError && err.code === 'UNAVAILABLE' && /already open exclusively in this process/.test(err.message);
    const both = await Promise.allSettled([openSpool({ root, exclusive: true }), openSpool({ root, exclusive: true })]);
    const opened = both.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    assert.equal(opened.length, 1);
    assert.ok(both.some((r) => r.status === 'rejected' && refused(r.reason)), "both.some((r) => r.status === 'rejected' && refused(r.reason))");
    const [a] = opened as [Spool];
    await assert.rejects(openSpool({ root }), refused);
    assert.equal(existsSync(path.join(root, '.owner')), true, 'a refused open leaves the owner its record');
    await a.close();
    assert.equal(existsSync(path.join(root, '.owner')), false);
    const b = await openSpool({ root, exclusive: true });
    await b.close();
  });

  test('the same root reached through a symlink is the same spool: refused while held', async (t) => {
    const dir = await tmpDir(t);
    const root = path.join(dir, 'spool');
    const a = await openSpool({ root, exclusive: true });
    symlinkSync(root, path.join(dir, 'alias'));
    const alias = path.join(dir, 'alias');
    await refused(openSpool({ root: alias, exclusive: true }), /already open exclusively in this process/);
    await refused(openSpool({ root: alias }), /already open exclusively in this process/);
    assert.equal(existsSync(path.join(root, '.owner')), true, 'the refused opens left the record alone');
    await a.close();
    await (await openSpool({ root: alias, exclusive: true })).close();
  });
});

describe('spool: read-only', () => {
  test('reads a running hub\'s spool as it is: no recovery, nothing adopted, moved or written; writes are refused', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    const p = makePayload({ id: 'ro-pending', nowMs: Date.now() });
    const setup = await openSpool({ root });
    await setup.put(p.text);
    await setup.close();
    await ownerProcess(t, root);
    // Dropped in after the hub's start: what a recovery or a scan would change, a dead writer's
    // tmp file, a foreign name, a broken file.
    const old = (Date.now() - 86_400_000) / 1000;
    writeFileSync(path.join(root, 'tmp', '12345.1.1'), 'half');
    utimesSync(path.join(root, 'tmp', '12345.1.1'), old, old);
    writeFileSync(path.join(root, 'handoff', 'caller-1.json'), makePayload({ id: 'ro-foreign', nowMs: Date.now() }).text);
    writeFileSync(path.join(root, 'handoff', 'broken.json'), '{"protocol_version":');
    for (const name of ['caller-1.json', 'broken.json']) utimesSync(path.join(root, 'handoff', name), old, old);
    const before = treeSnapshot(root);

    const reader = await openSpool({ root, readOnly: true });
    t.after(() => reader.close());
    assert.equal((await reader.get('ro-pending'))?.state, 'pending');
    assert.deepEqual((await reader.listPending()).map((e) => e.id).sort(), ['ro-foreign', 'ro-pending'], 'the foreign file is read where it is; the broken one is skipped');
    assert.deepEqual((await reader.list('pending')).map((r) => path.relative(root, r.path)).sort(), ['handoff/caller-1.json', 'handoff/ro-pending.json']);
    const foreign = await reader.get('ro-foreign');
    assert.deepEqual([foreign?.state, foreign && path.relative(root, foreign.path)], ['pending', 'handoff/caller-1.json']);
    await refused(reader.put(makePayload({ id: 'ro-new', nowMs: Date.now() }).text), /read-only/);
    await refused(reader.claim('ro-pending', 'alice'), /read-only/);
    await refused(reader.auditRead('ro-pending', 'alice'), /read-only/);
    await refused(reader.sweep(), /read-only/);
    await refused(reader.purge({ beforeMs: Date.now() }), /read-only/);
    assert.deepEqual(treeSnapshot(root), before, 'not one file changed');

    await assert.rejects(openSpool({ root: path.join(root, 'nope'), readOnly: true }), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
    assert.equal(existsSync(path.join(root, 'nope')), false);
    await assert.rejects(openSpool({ root, readOnly: true, exclusive: true }), (err: unknown) => err instanceof HandoffError && err.code === 'CONFIG');
  });

  test('`handoff show` and `list` work beside a running hub; `show --payload`, which records a read, is refused', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    const setup = await openSpool({ root });
    await setup.put(makePayload({ id: 'ro-cli', nowMs: Date.now() }).text);
    await setup.close();
    await ownerProcess(t, root);
    const show = await runCli(['show', 'ro-cli', '--spool', root, '--json']);
    assert.equal(show.code, 0, show.stderr);
    assert.equal(JSON.parse(show.stdout).state, 'pending');
    const list = await runCli(['list', '--spool', root, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout).handoffs.map((h: { handoff_id: string }) => h.handoff_id), ['ro-cli']);
    const payload = await runCli(['show', 'ro-cli', '--spool', root, '--payload']);
    assert.equal(payload.code, 34, payload.stderr);
    assert.match(payload.stderr, /owned by a running hub/);
  });
});
