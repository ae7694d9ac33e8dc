/**
 * Prism serving Twilio's own OpenAPI description (DESIGN.md §8), for contract tests of the SDK.
 *
 * The spec shipped in @twilio-alpha/mcp is copied into the test's temp dir and patched so that
 * the Calls create body declares `StatusCallbackEvent` as a repeated form key (style form,
 * explode) — which is how the SDK sends it and what Twilio accepts. Prism runs with `--errors`,
 * so an invalid request gets a 422 instead of a mock answer, and every validator complaint is
 * collected from its log so that a test can fail on a violation even when the SDK would not.
 * One Prism per test file: start-up takes a couple of seconds.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { tmpDir } from './tmp.js';

const require = createRequire(import.meta.url);
const SPEC_PATH = require.resolve('@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json');
const PRISM_CLI = require.resolve('@stoplight/prism-cli/dist/index.js');
const CALLS_PATH = '/2010-04-01/Accounts/{AccountSid}/Calls.json';
const START_TIMEOUT_MS = 30_000;

export interface PrismMock {
  /** http://127.0.0.1:PORT — the value for the dialer's `apiBaseUrl`. */
  baseUrl: string;
  /** Path of the patched spec copy. */
  specPath: string;
  /** Number of requests Prism has received so far. */
  requestCount(): number;
  /** Waits until every received request has been answered in the log, then returns the count. */
  settled(atLeast?: number): Promise<number>;
  /** Validator complaints (errors and warnings) logged for the requests after `sinceRequest`. */
  violations(sinceRequest?: number): string[];
}

/** A free TCP port on 127.0.0.1 (bound to port 0, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Writes the patched copy of Twilio's v2010 spec into `dir` and returns its path. */
export async function writePatchedSpec(dir: string): Promise<string> {
  const spec = JSON.parse(await readFile(SPEC_PATH, 'utf8')) as {
    paths: Record<string, { post?: { requestBody?: { content?: Record<string, Record<string, unknown>> } } }>;
  };
  const form = spec.paths[CALLS_PATH]?.post?.requestBody?.content?.['application/x-www-form-urlencoded'];
  if (form === undefined) throw new Error('Calls create request body not found in the spec');
  form['encoding'] = { StatusCallbackEvent: { style: 'form', explode: true } };
  const specPath = path.join(dir, 'twilio_api_v2010.json');
  await writeFile(specPath, JSON.stringify(spec));
  return specPath;
}

/** Starts Prism on a free port of 127.0.0.1 and stops it when `t` ends. */
export async function startPrism(t: TestContext): Promise<PrismMock> {
  const dir = await tmpDir(t, 'handoff-prism-');
  const specPath = await writePatchedSpec(dir);
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [PRISM_CLI, 'mock', '-p', String(port), '-h', '127.0.0.1', '--errors', specPath],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } },
  );
  const lines: string[] = [];
  let partial = '';
  const collect = (chunk: Buffer): void => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!lines.some((l) => l.includes('Prism is listening on'))) {
    if (child.exitCode !== null) throw new Error(`prism exited early:\n${lines.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`prism did not start in time:\n${lines.slice(-20).join('\n')}`);
    await delay(50);
  }
  const startLine = lines.length;

  // Each request's log starts with "[HTTP SERVER] … Request received" and ends with either
  // "Responding with" or "Request terminated with error".
  const requestStarts = (): number[] =>
    lines.flatMap((l, i) => (i >= startLine && l.includes('[HTTP SERVER]') && l.includes('Request received') ? [i] : []));
  const answered = (): number =>
    lines.filter(
      (l, i) => i >= startLine && (l.includes('> Responding with') || l.includes('Request terminated with error')),
    ).length;

  return {
    baseUrl: `http://127.0.0.1:${port}`,
    specPath,
    requestCount: () => requestStarts().length,
    async settled(atLeast = 0): Promise<number> {
      // Prism logs asynchronously: under load the last request's lines can arrive after the
      // client already has its answer, so wait for the expected count as well as the answers.
      const until = Date.now() + 5_000;
      while (requestStarts().length < atLeast || answered() < requestStarts().length) {
        if (Date.now() > until) throw new Error('prism did not log an answer for every request');
        await delay(10);
      }
      return requestStarts().length;
    },
    violations(sinceRequest = 0): string[] {
      const from = requestStarts()[sinceRequest] ?? lines.length;
      return lines
        .slice(from)
        .filter(
          (l) =>
            (l.includes('[VALIDATOR]') && (l.includes('✖') || l.includes('⚠'))) ||
            l.includes('Request terminated with error'),
        );
    },
  };
}
