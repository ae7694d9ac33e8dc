/**
 * An exclusive spool (a hub's) records its owner; no other process opens the spool while that
 * owner is alive, and a dead owner (killed, or a pid reused since) does not lock anyone out.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { HandoffError } from '../protocol/index.js';
import { openSpool } from '../spool/index.js';
import { readyChild } from './helpers/ready-child.js';
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
    writeFileSync(path.join(root, '.owner'), JSON.stringify({ pid: other.pid, host: os.hostname(), started: '1' }));
    await (await openSpool({ root })).close();
    writeFileSync(path.join(root, '.owner'), JSON.stringify({ pid: other.pid, host: os.hostname(), started }));
    await refused(openSpool({ root }), new RegExp(`pid ${other.pid}\\)`));
  });

  test('an owner recorded by another host cannot be checked: refused, naming the file to delete', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    await (await openSpool({ root })).close();
    const file = path.join(root, '.owner');
    writeFileSync(file, JSON.stringify({ pid: 4242, host: 'elsewhere.example' }));
    await refused(openSpool({ root }), new RegExp(`on host elsewhere\\.example.*delete ${file.replace(/[.]/g, '\\.')}`));
    writeFileSync(file, '{"pid":"not a number"}');
    await (await openSpool({ root })).close();
  });

  test('two exclusive spools of one process: the record stays until the last one closes', async (t) => {
    const root = path.join(await tmpDir(t), 'spool');
    const a = await openSpool({ root, exclusive: true });
    const b = await openSpool({ root, exclusive: true });
    await a.close();
    assert.equal(existsSync(path.join(root, '.owner')), true);
    await b.close();
    assert.equal(existsSync(path.join(root, '.owner')), false);
  });
});
