import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { readSecret, required, resolveConfig, type ResolveInput } from '../cli/config.js';
import { HandoffError } from '../protocol/index.js';
import { tmpDir } from './helpers/tmp.js';

test('precedence: flag > HANDOFF_* env > config file > default, with the source of each', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'handoff.config.json');
  await writeFile(file, JSON.stringify({ agent: 'filey', ttl_sec: 30, keys_dir: '~/keys-from-file', call: { ring_timeout_sec: 40, lead_in: true } }));
  const home = path.join(dir, 'home');
  const rows: Array<{ input: ResolveInput; expect: Record<string, unknown>; sources: Record<string, string> }> = [
    {
      input: { cwd: dir, home },
      expect: { agent: 'filey', ttlSec: 30, keysDir: path.join(home, 'keys-from-file'), ringTimeoutSec: 40, leadIn: true, port: 8787 },
      sources: { agent: 'file', ttlSec: 'file', keysDir: 'file', port: 'default' },
    },
    {
      input: { cwd: dir, home, env: { HANDOFF_AGENT: 'envy', HANDOFF_TTL_SEC: '20', HANDOFF_LEAD_IN: 'false' } },
      expect: { agent: 'envy', ttlSec: 20, leadIn: false, ringTimeoutSec: 40 },
      sources: { agent: 'env', ttlSec: 'env', leadIn: 'env', ringTimeoutSec: 'file' },
    },
    {
      input: { cwd: dir, home, env: { HANDOFF_AGENT: 'envy', HANDOFF_TTL_SEC: '20' }, flags: { agent: 'flaggy', ttl: '5' } },
      expect: { agent: 'flaggy', ttlSec: 5 },
      sources: { agent: 'flag', ttlSec: 'flag' },
    },
    {
      input: { cwd: path.join(dir, 'elsewhere'), home, flags: { port: '0' } },
      expect: { agent: undefined, ttlSec: 15, port: 0, keysDir: path.join(home, '.secrets') },
      sources: { ttlSec: 'default', port: 'flag' },
    },
  ];
  for (const { input, expect, sources } of rows) {
    const r = resolveConfig(input);
    for (const [k, v] of Object.entries(expect)) assert.deepEqual(r.config[k as keyof typeof r.config], v, `${k} for ${JSON.stringify(input.flags ?? input.env ?? {})}`);
    for (const [k, v] of Object.entries(sources)) assert.equal(r.sources[k as keyof typeof r.sources], v, `source of ${k}`);
  }
});

test('a legitimate 0 or false from a flag is kept (?? not ||)', () => {
  const r = resolveConfig({ cwd: '/nonexistent', home: '/nonexistent', flags: { port: 0 }, env: { HANDOFF_FALLBACK_SMS: '0' } });
  assert.equal(r.config.port, 0);
  assert.equal(r.config.fallbackSms, false);
});

test('the home config is read when there is none in the working directory', async (t) => {
  const dir = await tmpDir(t);
  await mkdir(path.join(dir, 'home', '.config', 'handoff'), { recursive: true });
  await writeFile(path.join(dir, 'home', '.config', 'handoff', 'config.json'), '{"agent":"homer"}');
  const r = resolveConfig({ cwd: dir, home: path.join(dir, 'home') });
  assert.equal(r.config.agent, 'homer');
  assert.equal(r.file, path.join(dir, 'home', '.config', 'handoff', 'config.json'));
});

test('errors name the setting, its source and what is wrong', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'c.json');
  await writeFile(file, JSON.stringify({ agent: 'Alice', twilio: { from_number: '555' } }));
  const cases: Array<[ResolveInput, RegExp]> = [
    [{ configFile: file, home: dir }, /^agent \(from config file .*c\.json key "agent"\): must match/],
    [{ configFile: file, home: dir, flags: { agent: 'alice' } }, /^fromNumber \(from config file .* key "twilio.from_number"\): must be an E\.164/],
    [{ home: dir, cwd: dir, env: { HANDOFF_TTL_SEC: 'soon' } }, /^ttlSec \(from environment HANDOFF_TTL_SEC\): must be a number/],
    [{ home: dir, cwd: dir, flags: { port: '70000' } }, /^port \(from --port\): must be a port number/],
    [{ home: dir, cwd: dir, env: { HANDOFF_HUB_URL: 'ftp://x' } }, /^hubUrl \(from environment HANDOFF_HUB_URL\): must be a http:\/\/ or https:\/\/ URL/],
    [{ home: dir, configFile: path.join(dir, 'missing.json') }, /^config file .*missing\.json does not exist$/],
  ];
  for (const [input, pattern] of cases) {
    assert.throws(() => resolveConfig(input), (e: unknown) => e instanceof HandoffError && e.code === 'CONFIG' && pattern.test(e.message), String(pattern));
  }
  await writeFile(path.join(dir, 'bad.json'), '{"agent": ');
  assert.throws(() => resolveConfig({ configFile: path.join(dir, 'bad.json') }), /is not valid/);
});

test('a config file key that no setting reads, or a section that is not an object, is an error', async (t) => {
  const dir = await tmpDir(t);
  const cases: Array<[unknown, RegExp]> = [
    [{ keysdir: '/k' }, /unknown key "keysdir" \(did you mean "keys_dir"\?\)/],
    [{ twilio: { acount_sid: `AC${'0'.repeat(32)}` } }, /unknown key "twilio.acount_sid" \(did you mean "twilio.account_sid"\?\)/],
    [{ hub: 'http://127.0.0.1:8787' }, /key "hub" must be an object \(with url, token_file\)/],
    [{ call: { ring_timeout: 20 } }, /unknown key "call.ring_timeout" \(did you mean "call.ring_timeout_sec"\?\)/],
    [{ wholly_unrelated: 1 }, /unknown key "wholly_unrelated"$/],
    [{ 'twilio.account_sid': `AC${'0'.repeat(32)}` }, /key "twilio.account_sid": write it nested, as \{"twilio": \{"account_sid": …\}\}/],
    [{ hub: { 'x.y': 1 } }, /key "hub.x.y": write it nested/],
  ];
  const protoFile = path.join(dir, 'proto.json');
  await writeFile(protoFile, '{"__proto__": {"agent": "mallory"}}');
  assert.throws(() => resolveConfig({ configFile: protoFile, home: dir }), /key "__proto__", which is not a setting/);
  for (const [doc, pattern] of cases) {
    const file = path.join(dir, 'c.json');
    await writeFile(file, JSON.stringify(doc));
    assert.throws(() => resolveConfig({ configFile: file, home: dir }), (e: unknown) => e instanceof HandoffError && e.code === 'CONFIG' && pattern.test(e.message), String(pattern));
  }
  // Notes for people and editors are allowed, and every documented key is known.
  const file = path.join(dir, 'ok.json');
  await writeFile(file, JSON.stringify({ $schema: 'x', _comment: 'alice', agent: 'alice', hub: { url: 'http://127.0.0.1:1', token_file: '/t' }, call: { ring_timeout_sec: 20 }, hub_server: { port: 1 } }));
  assert.equal(resolveConfig({ configFile: file, home: dir }).config.ringTimeoutSec, 20);
});

test('the ring timeout is whole seconds (Twilio refuses a fraction at every dial); errors name the flag as typed', async (t) => {
  const dir = await tmpDir(t);
  assert.throws(() => resolveConfig({ cwd: dir, home: dir, env: { HANDOFF_RING_TIMEOUT_SEC: '20.5' } }), /ringTimeoutSec \(from environment HANDOFF_RING_TIMEOUT_SEC\): must be whole seconds/);
  assert.throws(() => resolveConfig({ cwd: dir, home: dir, flags: { pollWait: '40' } }), /pollWaitSec \(from --wait\): must be at most 30/);
  assert.throws(() => required(resolveConfig({ cwd: dir, home: dir }), 'agent'), /set --agent, or HANDOFF_AGENT=…/);
});

test('required() says every way to provide a missing setting', () => {
  const r = resolveConfig({ cwd: '/nonexistent', home: '/nonexistent' });
  assert.throws(() => required(r, 'hubUrl'), /hubUrl is required: set --hub, or HANDOFF_HUB_URL=…, or "hub.url" in the config file/);
});

test('secrets come from the environment or a private file only', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'token');
  await writeFile(file, 'tok-123\n', { mode: 0o600 });
  assert.equal(readSecret('hub token', undefined, file), 'tok-123');
  assert.equal(readSecret('hub token', 'from-env', file), 'from-env');
  await chmod(file, 0o644);
  assert.throws(() => readSecret('hub token', undefined, file), /hub token file .*token has mode 0644; others can read it \(run chmod 600\)$/);
  assert.throws(() => readSecret('hub token', undefined, undefined), /hub token is not configured/);
});

test('metrics.listen resolves from flag, env or file and must be HOST:PORT with a real port', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'c.json');
  await writeFile(file, JSON.stringify({ metrics: { listen: '127.0.0.1:9464' } }));
  const fromFile = resolveConfig({ configFile: file, home: dir });
  assert.equal(fromFile.config.metricsListen, '127.0.0.1:9464');
  assert.equal(fromFile.sources.metricsListen, 'file');
  const fromEnv = resolveConfig({ configFile: file, home: dir, env: { HANDOFF_METRICS_LISTEN: 'localhost:9100' } });
  assert.deepEqual([fromEnv.config.metricsListen, fromEnv.sources.metricsListen], ['localhost:9100', 'env']);
  const fromFlag = resolveConfig({ configFile: file, home: dir, env: { HANDOFF_METRICS_LISTEN: 'localhost:9100' }, flags: { metricsListen: '127.0.0.1:0' } });
  assert.deepEqual([fromFlag.config.metricsListen, fromFlag.sources.metricsListen], ['127.0.0.1:0', 'flag']);
  assert.equal(resolveConfig({ cwd: dir, home: dir }).config.metricsListen, undefined, 'off unless asked for');
  const bad: Array<[ResolveInput, RegExp]> = [
    [{ cwd: dir, home: dir, flags: { metricsListen: '9464' } }, /^metricsListen \(from --metrics-listen\): must be HOST:PORT/],
    [{ cwd: dir, home: dir, env: { HANDOFF_METRICS_LISTEN: '[::1]:9464' } }, /^metricsListen \(from environment HANDOFF_METRICS_LISTEN\): must be HOST:PORT/],
    [{ cwd: dir, home: dir, flags: { metricsListen: '127.0.0.1:70000' } }, /^metricsListen \(from --metrics-listen\): port must be at most 65535/],
  ];
  for (const [input, pattern] of bad) {
    assert.throws(() => resolveConfig(input), (e: unknown) => e instanceof HandoffError && e.code === 'CONFIG' && pattern.test(e.message), String(pattern));
  }
});
