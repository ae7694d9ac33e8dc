/**
 * Module boundaries (STYLE.md), checked from the import lines of every source file:
 * protocol imports nothing of ours; spool imports protocol; hub imports protocol and spool;
 * agent-listener imports protocol and spool, never hub; policy imports protocol; nothing imports
 * cli. Cross-folder imports go through the folder's index.ts — except `protocol/errors.js`, which
 * has no dependencies and keeps light modules (command registration) light,
 * `agent-listener/hub-client.js` from cli/, whose one-shot commands need it without the listener's
 * webhook server and watcher that index.ts also loads, and the two
 * agent-listener modules that index.ts leaves out because they load heavy packages (twilio-dialer,
 * metrics), imported lazily. Only agent-listener/twilio-dialer.ts imports twilio, and command
 * modules load heavy code lazily.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO_ROOT } from './helpers/cli.js';

const FOLDERS = ['protocol', 'spool', 'hub', 'agent-listener', 'policy', 'cli'] as const;
type Folder = (typeof FOLDERS)[number] | 'index.ts';

const ALLOWED: Record<Folder, readonly string[]> = {
  protocol: [],
  spool: ['protocol'],
  hub: ['protocol', 'spool'],
  'agent-listener': ['protocol', 'spool'],
  policy: ['protocol'],
  cli: ['protocol', 'spool', 'hub', 'agent-listener', 'policy'],
  'index.ts': ['protocol', 'agent-listener'],
};

interface Edge {
  file: string;
  spec: string;
  dynamic: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(REPO_ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => path.relative(REPO_ROOT, path.join(e.parentPath, e.name)));
}

function importsOf(file: string): Edge[] {
  const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
  const edges: Edge[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)) edges.push({ file, spec: m[1] as string, dynamic: false });
  for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) edges.push({ file, spec: m[1] as string, dynamic: true });
  return edges;
}

const ALL = [...FOLDERS.flatMap(sourceFiles), 'index.ts'];
const EDGES = ALL.flatMap(importsOf);

function folderOf(file: string): Folder {
  return file === 'index.ts' ? 'index.ts' : (file.split(path.sep)[0] as Folder);
}

test('the scan finds the source files and their imports', () => {
  assert.ok(ALL.length > 40, `${ALL.length} files`);
  assert.ok(EDGES.some((e) => e.file === path.join('hub', 'app.ts') && e.spec === '../spool/index.js'));
});

test('no import crosses a forbidden module boundary, and nothing imports cli/', () => {
  const bad: string[] = [];
  for (const e of EDGES) {
    if (!e.spec.startsWith('.')) continue;
    const target = path.relative(REPO_ROOT, path.resolve(REPO_ROOT, path.dirname(e.file), e.spec));
    const to = folderOf(target);
    const from = folderOf(e.file);
    if (to === from) continue;
    if (to === 'cli' || !(ALLOWED[from] ?? []).includes(to)) bad.push(`${e.file} → ${target}`);
  }
  assert.deepEqual(bad, []);
});

test('cross-folder imports go through index.ts (protocol/errors.js, agent-listener/hub-client.js and the lazily loaded twilio-dialer and metrics excepted)', () => {
  const bad = EDGES.filter((e) => {
    if (!e.spec.startsWith('.')) return false;
    const target = path.relative(REPO_ROOT, path.resolve(REPO_ROOT, path.dirname(e.file), e.spec));
    if (folderOf(target) === folderOf(e.file)) return false;
    const base = path.basename(target);
    if (base === 'index.js') return false;
    if (target === path.join('protocol', 'errors.js')) return false;
    if (target === path.join('agent-listener', 'hub-client.js') && folderOf(e.file) === 'cli') return false;
    if (e.dynamic && [path.join('agent-listener', 'twilio-dialer.js'), path.join('agent-listener', 'metrics.js')].includes(target)) return false;
    return true;
  }).map((e) => `${e.file} → ${e.spec}`);
  assert.deepEqual(bad, []);
});

test('only agent-listener/twilio-dialer.ts imports twilio', () => {
  const importers = EDGES.filter((e) => e.spec === 'twilio' || e.spec.startsWith('twilio/')).map((e) => e.file);
  assert.deepEqual([...new Set(importers)], [path.join('agent-listener', 'twilio-dialer.ts')]);
});

test('command registration modules import nothing heavy statically', () => {
  const light = new Set(['commander', '../output.js', '../../protocol/errors.js']);
  const bad = EDGES.filter(
    (e) =>
      e.file.startsWith(path.join('cli', 'commands')) &&
      !e.file.endsWith('-impl.ts') &&
      !e.dynamic &&
      !light.has(e.spec) &&
      !/^\.\/[a-z-]+\.js$/.test(e.spec),
  ).map((e) => `${e.file} → ${e.spec}`);
  assert.deepEqual(bad, []);
});

test('only cli/ reads process.env or sets process.exitCode', () => {
  const bad = ALL.filter((f) => !f.startsWith(`cli${path.sep}`) && f !== 'index.ts').filter((f) => /process\.env|process\.exitCode|process\.exit\(/.test(readFileSync(path.join(REPO_ROOT, f), 'utf8')));
  assert.deepEqual(bad, []);
});
