import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { readSecret, resolveConfig, type ResolveInput } from '../cli/config.js';
import { ERROR_CODES, HandoffError, keyFilePath, writeKeyFile } from '../protocol/index.js';
import { CLI_ENTRY, REPO_ROOT, TSX_LOADER, type CliResult } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

const isConfig = (pattern: RegExp) => (e: unknown) => e instanceof HandoffError && e.code === 'CONFIG' && pattern.test(e.message);

/**
 * Runs `handoff ARGS` in a child process, killed with SIGKILL after `timeoutMs` (a process stuck
 * in a blocking open ignores SIGTERM); `code` is then null and `hung` true.
 */
function runCliWithin(timeoutMs: number, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult & { hung: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, hung });
    });
  });
}

function errorOf(stderr: string): { code: string; message: string } {
  return (JSON.parse(stderr.trim().split('\n').at(-1) as string) as { error: { code: string; message: string } }).error;
}

test('a FIFO as the config file or the token file is refused at once, not waited on (doctor, start)', { timeout: 60_000 }, async (t) => {
  const dir = await tmpDir(t);
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  const keys = path.join(dir, 'keys');
  await writeKeyFile(keyFilePath(keys, 'alice'), 'a-pair-secret-for-the-fifo-test-0123456789');
  const env = { HOME: dir, HANDOFF_TOKEN: '', HANDOFF_CONFIG: '' };
  const [doctor, start] = await Promise.all([
    runCliWithin(20_000, ['doctor', '--config', fifo, '--json'], { cwd: dir, env }),
    runCliWithin(20_000, ['start', '--hub', 'http://127.0.0.1:9', '--token-file', fifo, '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'r', '--keys', keys, '--json'], {
      cwd: dir,
      env,
    }),
  ]);
  assert.equal(doctor.hung, false, 'doctor --config FIFO hung');
  assert.equal(start.hung, false, 'start --token-file FIFO hung');
  // doctor reports a bad configuration as a failed check (exit 1), not as an error.
  const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ check: string; status: string; detail: string }> }).checks;
  assert.deepEqual(checks[0]?.status, 'fail');
  assert.match(checks[0]?.detail ?? '', /^config file .*fifo is not a regular file \(a FIFO\)$/);
  assert.equal(start.code, ERROR_CODES.CONFIG.exit, start.stderr);
  assert.deepEqual(errorOf(start.stderr), { code: 'CONFIG', message: `hub token (HANDOFF_TOKEN or --token-file) file ${fifo} is not a regular file (a FIFO)` });
});

test('a directory or a non-UTF-8 token file → CONFIG (exit 3) naming the file, not INTERNAL or UNAVAILABLE', { timeout: 60_000 }, async (t) => {
  const dir = await tmpDir(t);
  const keys = path.join(dir, 'keys');
  await writeKeyFile(keyFilePath(keys, 'alice'), 'a-pair-secret-for-the-token-test-0123456789');
  const tokenDir = path.join(dir, 'token-dir');
  await mkdir(tokenDir, { mode: 0o700 });
  const binary = path.join(dir, 'binary-token');
  await writeFile(binary, Buffer.from([0x74, 0x6f, 0x6b, 0xff, 0xfe, 0x0a]), { mode: 0o600 });
  const run = (tokenFile: string) =>
    runCliWithin(20_000, ['start', '--hub', 'http://127.0.0.1:9', '--token-file', tokenFile, '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'r', '--keys', keys, '--json'], {
      cwd: dir,
      env: { HOME: dir, HANDOFF_TOKEN: '', HANDOFF_CONFIG: '' },
    });
  const [onDir, onBinary] = await Promise.all([run(tokenDir), run(binary)]);
  assert.equal(onDir.code, ERROR_CODES.CONFIG.exit, onDir.stderr);
  assert.match(errorOf(onDir.stderr).message, /token-dir is not a regular file \(a directory\)$/);
  assert.equal(onBinary.code, ERROR_CODES.CONFIG.exit, onBinary.stderr);
  assert.match(errorOf(onBinary.stderr).message, /binary-token is not UTF-8 text$/);
});

test('a token file that is a directory, not UTF-8, too big, or no token → CONFIG naming the file, never the content; a symlink to a private file is fine', async (t) => {
  const dir = await tmpDir(t);
  const good = path.join(dir, 'good');
  await writeFile(good, '  tok-123_ABC.def~\n', { mode: 0o600 });
  assert.equal(readSecret('hub token', undefined, good), 'tok-123_ABC.def~', 'trimmed');
  // Secret mounts (Kubernetes, some credential stores) are symlinks: the file they name is checked.
  const link = path.join(dir, 'link');
  await symlink(good, link);
  assert.equal(readSecret('hub token', undefined, link), 'tok-123_ABC.def~');
  const open = path.join(dir, 'open');
  await writeFile(open, 'tok\n', { mode: 0o644 });
  await symlink(open, path.join(dir, 'link-to-open'));
  const cases: Array<[string, (file: string) => Promise<void>, RegExp]> = [
    ['link-to-open', async () => undefined, /^hub token file .*link-to-open has mode 0644; others can read it/],
    ['directory', (f) => mkdir(f, { mode: 0o700 }), /^hub token file .*directory is not a regular file \(a directory\)$/],
    ['latin1', (f) => writeFile(f, Buffer.from('secr\xe9t-token\n', 'latin1'), { mode: 0o600 }), /^hub token file .*latin1 is not UTF-8 text$/],
    ['bom-ish', (f) => writeFile(f, Buffer.from([0xff, 0xfe, 0x74, 0x00]), { mode: 0o600 }), /^hub token file .*bom-ish is not UTF-8 text$/],
    ['accented', (f) => writeFile(f, 'secrét-token\n', { mode: 0o600 }), /^hub token file .*accented holds characters a token cannot have/],
    ['two-words', (f) => writeFile(f, 'secret token\n', { mode: 0o600 }), /^hub token file .*two-words holds characters a token cannot have/],
    ['two-lines', (f) => writeFile(f, 'secret\ntoken\n', { mode: 0o600 }), /^hub token file .*two-lines holds characters a token cannot have/],
    ['control', (f) => writeFile(f, 'secret\x00token', { mode: 0o600 }), /holds characters a token cannot have/],
    ['blank', (f) => writeFile(f, ' \n\t\n', { mode: 0o600 }), /^hub token file .*blank is empty$/],
    ['huge', (f) => writeFile(f, 'x'.repeat(64 * 1024 + 1), { mode: 0o600 }), /^hub token file .*huge is larger than 64 KiB/],
    ['missing', async () => undefined, /^hub token file .*missing does not exist$/],
  ];
  for (const [name, make, pattern] of cases) {
    const file = path.join(dir, name);
    await make(file);
    assert.throws(() => readSecret('hub token', undefined, file), (e: unknown) => isConfig(pattern)(e) && !(e as Error).message.includes('secr'), name);
  }
  // The environment is checked the same way (a bad byte would fail every request as UNAVAILABLE).
  assert.equal(readSecret('hub token', ' tok-env\n', undefined), 'tok-env');
  assert.throws(() => readSecret('hub token', 'tok\u00e9', undefined), isConfig(/^hub token from the environment holds characters a token cannot have/));
  assert.throws(() => readSecret('hub token', ' \n', undefined), isConfig(/^hub token from the environment is empty$/));
});

test('a config file that is a directory, too big, not UTF-8, or has a duplicate key → CONFIG naming the file; a symlinked one is fine', async (t) => {
  const dir = await tmpDir(t);
  const home = path.join(dir, 'home');
  const asDir = path.join(dir, 'as-dir.json');
  await mkdir(asDir);
  const big = path.join(dir, 'big.json');
  await writeFile(big, `{"agent":"alice","_pad":"${'x'.repeat(1024 * 1024)}"}`);
  const latin1 = path.join(dir, 'latin1.json');
  await writeFile(latin1, Buffer.from('{"_comment":"caf\xe9"}', 'latin1'));
  const dup = path.join(dir, 'dup.json');
  await writeFile(dup, '{"agent":"alice","agent":"mallory"}');
  const cases: Array<[string, RegExp]> = [
    [asDir, /^config file .*as-dir\.json is not a regular file \(a directory\)$/],
    [big, /^config file .*big\.json is larger than 1024 KiB/],
    [latin1, /^config file .*latin1\.json is not valid: invalid JSON: input is not valid UTF-8$/],
    [dup, /^config file .*dup\.json is not valid: invalid JSON: duplicate key "agent"/],
  ];
  for (const [file, pattern] of cases) assert.throws(() => resolveConfig({ configFile: file, home }), isConfig(pattern), file);
  const real = path.join(dir, 'real.json');
  await writeFile(real, '{"agent":"alice"}');
  await symlink(real, path.join(dir, 'handoff.config.json'));
  assert.equal(resolveConfig({ cwd: dir, home }).config.agent, 'alice', 'a dotfile manager may symlink the config');
});

test('an empty flag is an error naming the flag; an empty environment variable means unset', async (t) => {
  const dir = await tmpDir(t);
  const base: ResolveInput = { cwd: dir, home: dir };
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ port: '' }, /^port \(from --port\): is empty/],
    [{ ttl: '' }, /^ttlSec \(from --ttl\): is empty/],
    [{ agent: '' }, /^agent \(from --agent\): is empty/],
    [{ tokenFile: '' }, /^tokenFile \(from --token-file\): is empty/],
    [{ hubConfig: '' }, /^hubConfig \(from --config\): is empty/],
  ];
  for (const [flags, pattern] of cases) assert.throws(() => resolveConfig({ ...base, flags }), isConfig(pattern), JSON.stringify(flags));
  assert.throws(() => resolveConfig({ ...base, configFile: '' }), isConfig(/^--config is empty/));
  const unset = resolveConfig({ ...base, env: { HANDOFF_HUB_PORT: '', HANDOFF_TTL_SEC: '', HANDOFF_AGENT: '', HANDOFF_CONFIG: '' } });
  assert.deepEqual([unset.config.port, unset.config.ttlSec, unset.config.agent], [8787, 15, undefined]);
  assert.deepEqual([unset.sources.port, unset.sources.ttlSec], ['default', 'default']);
  assert.equal(resolveConfig({ ...base, flags: { port: '9000' }, env: { HANDOFF_HUB_PORT: '' } }).config.port, 9000);
  const file = path.join(dir, 'c.json');
  await writeFile(file, '{"hub": {"url": ""}}');
  assert.throws(() => resolveConfig({ ...base, configFile: file }), isConfig(/^hubUrl \(from config file .*c\.json key "hub\.url"\): is empty/));
});

test('a number from a flag or the environment is plain decimal: 0x10, 1e1, " 5" and the like → CONFIG', async (t) => {
  const dir = await tmpDir(t);
  const base: ResolveInput = { cwd: dir, home: dir };
  for (const bad of ['0x10', '1e1', ' 5', '5 ', '+5', '.5', '5.', 'Infinity', '0b1', '1_000', '٣']) {
    assert.throws(() => resolveConfig({ ...base, flags: { ttl: bad } }), isConfig(/^ttlSec \(from --ttl\): must be a number in plain decimal/), `--ttl ${JSON.stringify(bad)}`);
    assert.throws(() => resolveConfig({ ...base, env: { HANDOFF_HUB_PORT: bad } }), isConfig(/^port \(from environment HANDOFF_HUB_PORT\): must be a number in plain decimal/), `HANDOFF_HUB_PORT=${JSON.stringify(bad)}`);
  }
  assert.equal(resolveConfig({ ...base, flags: { ttl: '16' } }).config.ttlSec, 16);
  assert.equal(resolveConfig({ ...base, flags: { ttl: '016' } }).config.ttlSec, 16);
  assert.equal(resolveConfig({ ...base, env: { HANDOFF_TWILIO_CPS: '0.5' } }).config.cps, 0.5);
  // A negative or fractional value parses, and the schema says what is wrong with it.
  assert.throws(() => resolveConfig({ ...base, flags: { ttl: '-5' } }), isConfig(/^ttlSec \(from --ttl\): must be at least 1$/));
  assert.throws(() => resolveConfig({ ...base, flags: { ttl: '2.5' } }), isConfig(/^ttlSec \(from --ttl\): must be whole seconds$/));
});

test('hub serve --port "" and start --ttl 0x10 exit with CONFIG before doing anything', { timeout: 60_000 }, async (t) => {
  const dir = await tmpDir(t);
  const env = { HOME: dir, HANDOFF_TOKEN: '', HANDOFF_CONFIG: '', HANDOFF_HUB_CONFIG: '', HANDOFF_SPOOL: '' };
  const [serve, start] = await Promise.all([
    runCliWithin(20_000, ['hub', 'serve', '--port', '', '--spool', path.join(dir, 'spool'), '--json'], { cwd: dir, env }),
    runCliWithin(20_000, ['start', '--spool', path.join(dir, 'spool'), '--ttl', '0x10', '--agent', 'bob', '--to', 'alice', '--caller', '+15551234567', '--reason', 'r', '--json'], { cwd: dir, env }),
  ]);
  assert.equal(serve.hung, false, 'hub serve --port "" started serving');
  assert.equal(serve.code, ERROR_CODES.CONFIG.exit, serve.stderr);
  assert.match(errorOf(serve.stderr).message, /^port \(from --port\): is empty/);
  assert.equal(start.code, ERROR_CODES.CONFIG.exit, start.stderr);
  assert.match(errorOf(start.stderr).message, /^ttlSec \(from --ttl\): must be a number in plain decimal/);
});
