import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { addAgent, HubAuth, loadHubConfig, removeAgent, startHub, tokenSha256 } from '../hub/index.js';
import { HandoffError } from '../protocol/index.js';
import { startTestHub, TEST_TOKENS } from './helpers/hub.js';
import { tmpDir } from './helpers/tmp.js';

const isConfig = (pattern: RegExp) => (e: unknown) => e instanceof HandoffError && e.code === 'CONFIG' && pattern.test(e.message);
const BOB = tokenSha256(TEST_TOKENS.bob as string);
const ALICE = tokenSha256(TEST_TOKENS.alice as string);
const ZEROS = '0'.repeat(64);

/** Replaces `file` atomically with `text` (mode 0600), as an editor or add-agent would. */
async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.new`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}

async function whoami(url: string, token: string): Promise<unknown> {
  const res = await fetch(`${url}/api/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
  return res.status === 200 ? ((await res.json()) as { agent: string }).agent : res.status;
}

test('a hub config with a duplicate key → CONFIG naming the file and the key (JSON.parse would keep the last one)', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'hub.json');
  await writeFile(file, `{"agents":{"bob":{"token_sha256":"${BOB}"},"carol":{"token_sha256":"${ALICE}"},"bob":{"token_sha256":"${ZEROS}"}}}`, { mode: 0o600 });
  await assert.rejects(loadHubConfig(file), isConfig(/^hub config .*hub\.json is not valid JSON: invalid JSON: duplicate key "bob" at offset \d+$/));
  await writeFile(file, `{"agents":{"bob":{"token_sha256":"${BOB}"}},"agents":{}}`, { mode: 0o600 });
  await assert.rejects(loadHubConfig(file), isConfig(/duplicate key "agents"/));
  await assert.rejects(addAgent(file, 'dave'), isConfig(/duplicate key "agents"/), 'add-agent does not rewrite it into something else');
});

test('two agents with the same token hash → CONFIG naming the file and both agents; the hub does not start', async (t) => {
  const dir = await tmpDir(t);
  const file = path.join(dir, 'hub.json');
  await writeFile(file, JSON.stringify({ agents: { alice: { token_sha256: ALICE }, bob: { token_sha256: BOB }, carol: { token_sha256: BOB } } }), { mode: 0o600 });
  const shared = /^hub config .*hub\.json: agents "bob" and "carol" have the same token_sha256/;
  await assert.rejects(loadHubConfig(file), isConfig(shared));
  await assert.rejects(startHub({ spoolDir: path.join(dir, 'spool'), configFile: file, port: 0 }), isConfig(shared));
  assert.throws(() => new HubAuth({ agents: { bob: { token_sha256: BOB }, carol: { token_sha256: BOB } } }), isConfig(/agents "bob" and "carol" have the same token_sha256/));
  // Adding someone else keeps the file as it is; giving one of the two a new token (or removing
  // it) is the way out.
  await assert.rejects(addAgent(file, 'dave'), isConfig(shared));
  assert.ok(!(await readFile(file, 'utf8')).includes('dave'));
  assert.equal(await removeAgent(file, 'carol'), true);
  assert.deepEqual(Object.keys((await loadHubConfig(file)).config.agents).sort(), ['alice', 'bob']);
});

test('a hub config that is a FIFO or a directory → CONFIG, at once', async (t) => {
  const dir = await tmpDir(t);
  const fifo = path.join(dir, 'fifo.json');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  await assert.rejects(loadHubConfig(fifo), isConfig(/^hub config .*fifo\.json is not a regular file \(a FIFO\)$/));
  const asDir = path.join(dir, 'dir.json');
  await mkdir(asDir, { mode: 0o700 });
  await assert.rejects(loadHubConfig(asDir), isConfig(/^hub config .*dir\.json is not a regular file \(a directory\)$/));
});

test('a reload that finds a duplicate key or a shared token hash keeps the old agents and says why', async (t) => {
  const hub = await startTestHub(t, { configReloadMs: 20 });
  assert.deepEqual([await whoami(hub.url, TEST_TOKENS.bob as string), await whoami(hub.url, TEST_TOKENS.alice as string)], ['bob', 'alice']);
  const waitForWarning = async (pattern: RegExp): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if (hub.logs.some((line) => line.includes('hub config not reloaded') && pattern.test(line))) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`no warning matching ${pattern}: ${hub.logs.join('')}`);
  };
  const bad: Array<[string, RegExp]> = [
    // carol takes bob's token; with JSON.parse the last "bob" would give bob a dead token.
    [`{"agents":{"bob":{"token_sha256":"${BOB}"},"carol":{"token_sha256":"${BOB}"},"bob":{"token_sha256":"${ZEROS}"}}}`, /duplicate key \\"bob\\"/],
    [JSON.stringify({ agents: { bob: { token_sha256: BOB }, carol: { token_sha256: BOB } } }), /agents \\"bob\\" and \\"carol\\" have the same token_sha256/],
  ];
  for (const [text, pattern] of bad) {
    await replaceFile(hub.configFile, text);
    await waitForWarning(pattern);
    assert.equal(await whoami(hub.url, TEST_TOKENS.bob as string), 'bob', 'bob is still bob');
    assert.equal(await whoami(hub.url, TEST_TOKENS.alice as string), 'alice', 'the old agents stay');
  }
  // A good file is taken again.
  await replaceFile(hub.configFile, JSON.stringify({ agents: { carol: { token_sha256: BOB } } }));
  let now: unknown;
  for (let i = 0; i < 200 && now !== 'carol'; i++) {
    await new Promise((r) => setTimeout(r, 20));
    now = await whoami(hub.url, TEST_TOKENS.bob as string);
  }
  assert.equal(now, 'carol');
  assert.equal(await whoami(hub.url, TEST_TOKENS.alice as string), 401);
});
