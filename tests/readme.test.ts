import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { SETTINGS } from '../cli/config.js';
import { buildProgram } from '../cli/program.js';
import { ERROR_CODES } from '../protocol/index.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test('the README lists every error code with its HTTP status and exit code', () => {
  for (const [code, e] of Object.entries(ERROR_CODES)) {
    assert.ok(README.includes(`| \`${code}\` | ${e.http} | ${e.exit} |`), `README row for ${code}`);
  }
});

test('the README documents every setting with its config key and environment variable', () => {
  for (const [name, s] of Object.entries(SETTINGS) as Array<[string, { file: string; env?: string }]>) {
    const row = README.split('\n').find((line) => line.startsWith(`| ${name} |`));
    assert.ok(row, `README row for ${name}`);
    assert.ok(row.includes(`\`${s.file}\``), `${name}: config key ${s.file}`);
    if (s.env) assert.ok(row.includes(`\`${s.env}\``), `${name}: environment ${s.env}`);
  }
});

test('the README quick start is exactly npm install, npm run demo, and npm test', () => {
  assert.match(README, /## Quick start\n\n```sh\nnpm install\nnpm run demo\n```/);
  assert.match(README, /```sh\nnpm test\n```/);
});

test('every top-level command is in the README command table', () => {
  for (const cmd of buildProgram().commands) {
    assert.ok(README.includes(`\`handoff ${cmd.name()}`), `README mentions handoff ${cmd.name()}`);
  }
});
