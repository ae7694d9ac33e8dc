/**
 * Every command's `--json` output is one JSON document of a stable shape (or JSON lines for
 * streams), and errors come as `{"error":{"code","message"}}` on stderr with the code's exit
 * status. Local mode, real child processes, one shared spool.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, keyFilePath, parseJsonDocument, writeKeyFile } from '../protocol/index.js';
import { openSpool } from '../spool/index.js';
import { runCli } from './helpers/cli.js';
import { auditEvents } from './helpers/spool-inspect.js';
import { tmpDir } from './helpers/tmp.js';

const SECRET = 'bob-alice-pair-secret-0123456789abcdef';

function json(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, `one JSON document, got: ${stdout}`);
  return JSON.parse(lines[0] as string) as Record<string, unknown>;
}

/** A spool path in `dir`, and bob's and alice's key directories holding their pair secret. */
async function bobAndAlice(dir: string): Promise<{ spool: string; bobKeys: string; aliceKeys: string }> {
  const bobKeys = path.join(dir, 'bob-keys');
  const aliceKeys = path.join(dir, 'alice-keys');
  await writeKeyFile(keyFilePath(bobKeys, 'alice'), SECRET);
  await writeKeyFile(keyFilePath(aliceKeys, 'bob'), SECRET);
  return { spool: path.join(dir, 'spool'), bobKeys, aliceKeys };
}

function keysOf(doc: Record<string, unknown>): string[] {
  return Object.keys(doc).sort();
}

test('--json on the lifecycle, maintenance and key commands prints one document of a stable shape', async (t) => {
  const dir = await tmpDir(t);
  const { spool, bobKeys, aliceKeys } = await bobAndAlice(dir);
  const env = { HOME: dir };
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env });
  const transcript = path.join(dir, 't.json');
  await writeFile(transcript, JSON.stringify([{ role: 'user', text: 'Can Alice book the standup?' }]));

  const start = await cli('start', '--spool', spool, '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'scheduling', '--transcript', transcript, '--keys', bobKeys, '--ttl', '300', '--json');
  assert.equal(start.code, 0, start.stderr);
  const started = json(start.stdout);
  assert.deepEqual(keysOf(started), ['expires_at', 'handoff_id', 'status']);
  const id = String(started.handoff_id);

  const list = json((await cli('list', '--spool', spool, '--json')).stdout);
  assert.deepEqual(keysOf((list.handoffs as Array<Record<string, unknown>>)[0] ?? {}), ['detail', 'from_agent', 'handoff_id', 'state', 'to_agent']);

  const poll = await cli('poll', '--spool', spool, '--agent', 'alice', '--wait', '0', '--json');
  const polled = poll.stdout.trim().split('\n').map((l) => JSON.parse(l) as { handoff_id: string });
  assert.deepEqual(polled.map((p) => p.handoff_id), [id], 'poll prints one payload per JSON line');

  const accepted = json((await cli('accept', id, '--spool', spool, '--agent', 'alice', '--json')).stdout);
  assert.deepEqual(keysOf(accepted), ['claim_token', 'handoff_id', 'lease_until', 'state']);

  const shown = json((await cli('show', id, '--spool', spool, '--json')).stdout);
  assert.equal(shown.state, 'claimed');
  assert.equal(shown.claim_token_sha256, undefined, 'show never prints the token hash');

  const completed = await runCli(['complete', id, '--outcome', 'resolved', '--spool', spool, '--agent', 'alice', '--json'], { cwd: dir, env: { ...env, HANDOFF_CLAIM_TOKEN: String(accepted.claim_token) } });
  assert.deepEqual(json(completed.stdout), { handoff_id: id, state: 'archived', outcome: 'resolved' });

  const archived = json((await cli('show', id, '--spool', spool, '--json')).stdout);
  const verified = json((await cli('verify', String(archived.file), '--agent', 'alice', '--keys', aliceKeys, '--json')).stdout);
  assert.deepEqual(keysOf(verified), ['expires_at', 'from_agent', 'handoff_id', 'to_agent', 'valid']);
  assert.equal(verified.valid, true, 'the archived envelope still verifies');

  const audit = json((await cli('audit', 'verify', '--spool', spool, '--json')).stdout);
  assert.deepEqual(keysOf(audit), ['lastHash', 'lines', 'ok']);
  assert.equal(audit.ok, true);

  const recovered = json((await cli('spool', 'recover', '--spool', spool, '--json')).stdout);
  assert.ok(['tmpRemoved', 'adopted', 'rolledForward', 'duplicatesResolved'].every((k) => k in recovered));

  const gen = json((await cli('keys', 'gen', '--peer', 'carol', '--keys', bobKeys, '--json')).stdout);
  assert.deepEqual(keysOf(gen), ['file', 'peer']);

  const hubConfig = path.join(dir, 'hub.json');
  const added = json((await cli('hub', 'add-agent', 'alice', '--config', hubConfig, '--json')).stdout);
  assert.deepEqual(keysOf(added), ['agent', 'config', 'token']);

  const doctor = await cli('doctor', '--agent', 'alice', '--spool', spool, '--keys', aliceKeys, '--bootstrap-dir', path.join(dir, 'boot'), '--json');
  const report = json(doctor.stdout);
  assert.deepEqual(keysOf(report), ['checks', 'ok']);
  assert.equal(doctor.code, 0, doctor.stdout);
});

test('errors with --json are one JSON document on stderr, with the exit status of the code', async (t) => {
  const dir = await tmpDir(t);
  await (await openSpool({ root: path.join(dir, 'spool') })).close();
  await mkdir(path.join(dir, 'not-a-spool'));
  const cases: Array<[string[], keyof typeof ERROR_CODES]> = [
    [['show', 'no-such-id', '--spool', path.join(dir, 'spool'), '--json'], 'NOT_FOUND'],
    [['show', 'no-such-id', '--spool', path.join(dir, 'not-a-spool'), '--json'], 'CONFIG'],
    [['show', '../etc', '--spool', path.join(dir, 'spool'), '--json'], 'INVALID_ID'],
    [['start', '--to', 'alice', '--json'], 'USAGE'],
    [['list', '--json'], 'CONFIG'],
    [['start', '--agent', 'bob', '--to', 'alice', '--caller', '+1555', '--reason', 'r', '--spool', path.join(dir, 'spool'), '--keys', path.join(dir, 'none'), '--json'], 'KEY_FILE'],
  ];
  for (const [args, code] of cases) {
    const r = await runCli(args, { cwd: dir, env: { HOME: dir } });
    assert.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`);
    const err = JSON.parse(r.stderr.trim()) as { error: { code: string; message: string } };
    assert.equal(err.error.code, code, `${args.join(' ')} → ${r.stderr}`);
    assert.equal(r.code, ERROR_CODES[code].exit);
  }
});

test('start signs the transcript as written and checks --caller and --hop; show --payload prints bytes that verify', async (t) => {
  const dir = await tmpDir(t);
  const { spool, bobKeys, aliceKeys } = await bobAndAlice(dir);
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env: { HOME: dir } });
  const startArgs = ['start', '--spool', spool, '--agent', 'bob', '--to', 'alice', '--reason', 'scheduling', '--keys', bobKeys, '--ttl', '300', '--json'];
  for (const [flag, value] of [['--caller', ''], ['--caller', 'not a number'], ['--caller', '+1 555 123 4567'], ['--hop', '0x10'], ['--hop', ''], ['--hop', '5000'], ['--hop', '-1']]) {
    const args = flag === '--caller' ? [...startArgs, flag, value as string] : [...startArgs, '--caller', '+15551234567', flag as string, value as string];
    const r = await cli(...args);
    assert.equal(r.code, ERROR_CODES.USAGE.exit, `${flag} ${JSON.stringify(value)}: ${r.stderr}`);
  }
  await assert.rejects(readdir(spool), { code: 'ENOENT' }, 'a refused start touched nothing');

  // Numbers a JavaScript value cannot hold: Python's json.dumps keeps them as written.
  const transcript = path.join(dir, 't.json');
  await writeFile(transcript, '[{"role":"user","text":"hi","score":3.0,"n":12345678901234567890}]');
  const start = await cli(...startArgs, '--caller', '+15551234567', '--hop', '2', '--transcript', transcript);
  assert.equal(start.code, 0, start.stderr);
  const id = String(json(start.stdout).handoff_id);
  const stored = await readFile(path.join(spool, 'handoff', `${id}.json`), 'utf8');
  assert.ok(stored.includes('"n":12345678901234567890,"role":"user","score":3.0,"text":"hi"'), stored);
  assert.ok(stored.includes('"hop":2'), stored);

  const shown = await cli('show', id, '--spool', spool, '--payload', '--json');
  const doc = parseJsonDocument(shown.stdout.trim());
  const span = doc.spans.get('payload');
  assert.ok(span, shown.stdout);
  assert.equal(doc.text.slice(span.start, span.end), stored, 'the payload is printed byte for byte');
  const file = path.join(dir, 'shown.json');
  await writeFile(file, doc.text.slice(span.start, span.end));
  const verified = json((await cli('verify', file, '--agent', 'alice', '--keys', aliceKeys, '--json')).stdout);
  assert.equal(verified.valid, true, 'what show prints still verifies');
});

test('handoff with no command (or a command group alone) prints the help once and exits with USAGE', async (t) => {
  const dir = await tmpDir(t);
  for (const args of [[], ['keys'], ['hub']]) {
    const r = await runCli(args, { cwd: dir, env: { HOME: dir } });
    assert.equal(r.code, ERROR_CODES.USAGE.exit, args.join(' '));
    assert.match(r.stderr, /^Usage: handoff/m, 'the help is shown');
    assert.doesNotMatch(r.stderr, /error \[/, 'and no error line about it');
  }
});

test('demo --keep --json leaves a spool with one archived handoff whose payload verifies', async (t) => {
  const dir = await tmpDir(t);
  const r = await runCli(['demo', '--keep', '--json'], { cwd: dir, env: { HOME: dir } });
  assert.equal(r.code, 0, r.stderr);
  const doc = json(r.stdout);
  t.after(() => rm(String(doc.dir), { recursive: true, force: true }));
  assert.match(String(doc.outcome), /^archived/);
  assert.ok((doc.steps as unknown[]).length >= 8, '(doc.steps as unknown[]).length >= 8');
  const spool = path.join(String(doc.dir), 'spool');
  const archived = (await readdir(path.join(spool, 'archive'), { recursive: true })).filter((f) => f.endsWith('.json'));
  assert.equal(archived.length, 1, 'one archived handoff');
  for (const state of ['handoff', 'claimed']) assert.deepEqual(await readdir(path.join(spool, state)), [], `${state}/ is empty`);
  const file = path.join(spool, 'archive', archived[0] as string);
  const at = (JSON.parse(await readFile(file, 'utf8')) as { payload: { initiated_at: string } }).payload.initiated_at;
  const verified = await runCli(['verify', file, '--agent', 'alice', '--keys', path.join(String(doc.dir), 'alice', 'keys'), '--at', at, '--json'], { cwd: dir });
  assert.equal(JSON.parse(verified.stdout).valid, true, verified.stdout);
});

test("complete finds the claim token in the listener's journal under the default state directory", async (t) => {
  const dir = await tmpDir(t);
  const { spool, bobKeys } = await bobAndAlice(dir);
  const env = { HOME: dir, HANDOFF_CLAIM_TOKEN: '', HANDOFF_STATE_DIR: '' };
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env });
  const transcript = path.join(dir, 't.json');
  await writeFile(transcript, JSON.stringify([{ role: 'user', text: 'Can Alice book the standup?' }]));
  const id = String(json((await cli('start', '--spool', spool, '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'scheduling', '--transcript', transcript, '--keys', bobKeys, '--ttl', '300', '--json')).stdout).handoff_id);
  const accepted = json((await cli('accept', id, '--spool', spool, '--agent', 'alice', '--json')).stdout);

  const without = await cli('complete', id, '--outcome', 'resolved', '--spool', spool, '--agent', 'alice');
  assert.equal(without.code, ERROR_CODES.FENCED.exit, 'no token anywhere yet');
  // Where `handoff listen --agent alice` keeps its journal when no state directory is set.
  const journals = path.join(dir, '.local', 'state', 'handoff', 'alice', 'handoffs');
  await mkdir(journals, { recursive: true });
  await writeFile(path.join(journals, `${id}.json`), JSON.stringify({ handoff_id: id, claim_token: accepted.claim_token }));
  const done = await cli('complete', id, '--outcome', 'resolved', '--spool', spool, '--agent', 'alice', '--json');
  assert.equal(done.code, 0, done.stderr);
  assert.deepEqual(json(done.stdout), { handoff_id: id, state: 'archived', outcome: 'resolved' });
});

test('a payload read from a local spool (poll, show --payload) is in the audit log, as through a hub', async (t) => {
  const dir = await tmpDir(t);
  const { spool, bobKeys } = await bobAndAlice(dir);
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env: { HOME: dir } });
  const transcript = path.join(dir, 't.json');
  await writeFile(transcript, JSON.stringify([{ role: 'user', text: 'Can Alice book the standup?' }]));
  const id = String(json((await cli('start', '--spool', spool, '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'scheduling', '--transcript', transcript, '--keys', bobKeys, '--ttl', '300', '--json')).stdout).handoff_id);
  const reads = () => auditEvents(spool).filter((e) => e.event === 'read' && e.id === id).map((e) => e.by);
  assert.equal((await cli('show', id, '--spool', spool)).code, 0);
  assert.deepEqual(reads(), [], 'the relay facts alone are no read of the payload');
  assert.equal((await cli('poll', '--spool', spool, '--agent', 'alice', '--wait', '0')).code, 0);
  assert.deepEqual(reads(), ['alice']);
  assert.equal((await cli('show', id, '--spool', spool, '--payload')).code, 0);
  assert.deepEqual(reads(), ['alice', 'operator']);
  const verified = await cli('audit', 'verify', '--spool', spool);
  assert.equal(verified.code, 0, verified.stdout);
});

test('complete --transcript stores the final transcript as written (numbers too), and refuses entries that are not entries', async (t) => {
  const dir = await tmpDir(t);
  const { spool, bobKeys } = await bobAndAlice(dir);
  const cli = (...args: string[]) => runCli(args, { cwd: dir, env: { HOME: dir, HANDOFF_CLAIM_TOKEN: '' } });
  const transcript = path.join(dir, 't.json');
  await writeFile(transcript, JSON.stringify([{ role: 'user', text: 'Can Alice book the standup?' }]));
  const id = String(json((await cli('start', '--spool', spool, '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'scheduling', '--transcript', transcript, '--keys', bobKeys, '--ttl', '300', '--json')).stdout).handoff_id);
  const token = String(json((await cli('accept', id, '--spool', spool, '--agent', 'alice', '--json')).stdout).claim_token);
  const complete = (file: string) => runCli(['complete', id, '--outcome', 'resolved', '--spool', spool, '--agent', 'alice', '--transcript', file], { cwd: dir, env: { HOME: dir, HANDOFF_CLAIM_TOKEN: token } });

  const bad = path.join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify([{ role: 'robot', text: 'beep' }]));
  const refused = await complete(bad);
  assert.equal(refused.code, ERROR_CODES.USAGE.exit, refused.stderr);
  assert.match(refused.stderr, /entry 0\.role must be user\/assistant\/system/);

  const final = path.join(dir, 'final.json');
  await writeFile(final, '[{"role":"assistant","text":"Booked for 9:30.","confidence":0.5}]');
  const done = await complete(final);
  assert.equal(done.code, 0, done.stderr);
  const stored = JSON.parse(await readFile(String(json((await cli('show', id, '--spool', spool, '--json')).stdout).file), 'utf8')) as { relay: { final_transcript: unknown } };
  assert.deepEqual(stored.relay.final_transcript, [{ role: 'assistant', text: 'Booked for 9:30.', confidence: 0.5 }]);
});
