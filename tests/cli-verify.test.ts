import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { ERROR_CODES, keyFilePath } from '../protocol/index.js';
import { runCli } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';
import { loadVectors, writeVectorFiles } from './helpers/vectors.js';

test('handoff verify gives every reference vector its expected result and exit code', async (t) => {
  const dir = await tmpDir(t);
  const vectors = loadVectors();
  const results = await Promise.all(
    vectors.map(async (v) => {
      const keys = path.join(dir, v.name);
      const file = await writeVectorFiles(keys, v);
      return { v, r: await runCli(['verify', file, '--agent', v.listener_agent, '--keys', keys, '--at', v.validate_at, '--json']) };
    }),
  );
  for (const { v, r } of results) {
    const out = JSON.parse(r.stdout) as { valid: boolean; code?: string };
    if (v.expect_valid) {
      assert.equal(out.valid, true, `${v.name}: ${r.stdout}`);
      assert.equal(r.code, 0);
    } else {
      assert.equal(out.code?.toLowerCase(), v.expect_reason_class, v.name);
      assert.equal(r.code, ERROR_CODES[out.code as keyof typeof ERROR_CODES].exit, `${v.name} exits with its class's code`);
    }
  }
});

test('handoff verify prints "valid" for a good file and CODE: reason for a bad one', async (t) => {
  const dir = await tmpDir(t);
  const [v] = loadVectors();
  assert.ok(v, 'v');
  const file = await writeVectorFiles(dir, v);
  const ok = await runCli(['verify', file, '--agent', 'alice', '--keys', dir, '--at', v.validate_at]);
  assert.equal(ok.stdout.trim(), 'valid');
  const late = await runCli(['verify', file, '--agent', 'alice', '--keys', dir, '--at', '2030-01-01T00:00:00Z']);
  assert.match(late.stdout.trim(), /^EXPIRED: handoff expired at/);
  assert.equal(late.stderr, '', 'the outcome is printed once');
  assert.equal(late.code, ERROR_CODES.EXPIRED.exit);
  const emptyDir = path.join(dir, 'empty');
  await mkdir(emptyDir);
  const noKey = await runCli(['verify', file, '--agent', 'alice', '--keys', emptyDir, '--at', v.validate_at]);
  assert.match(noKey.stdout, /^ADDRESSING: no pair secret for peer bob/, 'no key file for the sender: an unknown peer');
  const noDir = await runCli(['verify', file, '--agent', 'alice', '--keys', path.join(dir, 'none'), '--at', v.validate_at]);
  assert.equal(noDir.code, ERROR_CODES.KEY_FILE.exit, 'a mistyped key directory is a key problem, not the peer\'s');
  assert.match(noDir.stderr, /^error \[KEY_FILE\]: cannot read key directory/);
  await symlink(path.join(dir, 'gone.key'), keyFilePath(emptyDir, 'bob'));
  const dangling = await runCli(['verify', file, '--agent', 'alice', '--keys', emptyDir, '--at', v.validate_at]);
  assert.equal(dangling.code, ERROR_CODES.KEY_FILE.exit, 'a dangling symlink is refused as a key file');
  const badAt = await runCli(['verify', file, '--agent', 'alice', '--at', 'yesterday']);
  assert.equal(badAt.code, ERROR_CODES.USAGE.exit);
  assert.match(badAt.stderr, /^error \[USAGE\]: --at must be/);
  const missing = await runCli(['verify', file]);
  assert.equal(missing.code, ERROR_CODES.USAGE.exit, 'a missing required option is a usage error');
  assert.match(missing.stderr, /--agent/);
});

test('handoff keys gen writes a 0600 file once and keys list checks it without printing it', async (t) => {
  const dir = await tmpDir(t);
  const gen = await runCli(['keys', 'gen', '--peer', 'alice', '--keys', dir]);
  assert.equal(gen.code, 0, gen.stderr);
  const file = keyFilePath(dir, 'alice');
  const secret = (await readFile(file, 'utf8')).trim();
  assert.equal(secret.length, 43);
  const again = await runCli(['keys', 'gen', '--peer', 'alice', '--keys', dir]);
  assert.equal(again.code, ERROR_CODES.KEY_FILE.exit);
  assert.equal((await readFile(file, 'utf8')).trim(), secret, 'the existing secret is untouched');
  const imp = await runCli(['keys', 'import', '--peer', 'carol', '--keys', dir], { input: 'carol-alice-shared-secret-0123456789\n' });
  assert.equal(imp.code, 0, imp.stderr);
  const binary = await runCli(['keys', 'import', '--peer', 'dave', '--keys', dir], { input: Buffer.from([...Array(33).keys()].map((i) => 0x80 + i)) });
  assert.equal(binary.code, ERROR_CODES.KEY_FILE.exit, 'bytes that are not UTF-8 are refused, not replaced');
  assert.match(binary.stderr, /standard input: not UTF-8/);
  await assert.rejects(readFile(keyFilePath(dir, 'dave')), { code: 'ENOENT' });
  const list = await runCli(['keys', 'list', '--keys', dir, '--json']);
  const rows = (JSON.parse(list.stdout) as { keys: Array<{ peer: string; ok: boolean; secrets: number }> }).keys;
  assert.deepEqual(rows.map((r) => [r.peer, r.ok, r.secrets]), [['alice', true, 1], ['carol', true, 1]]);
  assert.ok(!list.stdout.includes(secret), 'secrets are never printed');
});

test('keys and verify take the key directory from HANDOFF_KEYS_DIR like every other command', async (t) => {
  const dir = await tmpDir(t);
  const keys = path.join(dir, 'from-env');
  const gen = await runCli(['keys', 'gen', '--peer', 'bob', '--json'], { cwd: dir, env: { HOME: dir, HANDOFF_KEYS_DIR: keys } });
  assert.equal(gen.code, 0, gen.stderr);
  assert.equal((JSON.parse(gen.stdout) as { file: string }).file, keyFilePath(keys, 'bob'));
  const list = await runCli(['keys', 'list', '--json'], { cwd: dir, env: { HOME: dir, HANDOFF_KEYS_DIR: keys } });
  assert.deepEqual((JSON.parse(list.stdout) as { keys: Array<{ peer: string }> }).keys.map((k) => k.peer), ['bob']);
  const [v] = loadVectors();
  assert.ok(v, 'v');
  const file = path.join(dir, 'p.json');
  await writeFile(file, v.file_text);
  const verdict = await runCli(['verify', file, '--agent', 'alice', '--at', v.validate_at], { cwd: dir, env: { HOME: dir, HANDOFF_KEYS_DIR: keys } });
  assert.match(verdict.stdout, /^SIGNATURE/, 'the key found through the environment was used (a different secret than the vector\'s)');
});
