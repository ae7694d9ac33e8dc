import { readdir, writeFile, chmod, mkdir, stat } from 'node:fs/promises';
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { keyFilePath, signPayload, isoMillis, writeKeyFile } from '../../protocol/index.js';
import { startHub, tokenSha256, createHubLogger, type RunningHub, type StartHubOptions } from '../../hub/index.js';
import { tmpDir } from './tmp.js';

/** A pair secret for tests (the hub never sees it; listeners would verify with it). */
export const TEST_SECRET = 'test-pair-secret-0123456789abcdef0123456789';

/** Fixed tokens per agent, so that tests can also look for them in logs. */
export const TEST_TOKENS: Readonly<Record<string, string>> = Object.freeze({
  alice: 'alice-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  bob: 'bob-token-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB',
  gordon: 'gordon-token-GGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG',
});

/** Writes a hub config (mode 0600) registering `agents` with their TEST_TOKENS. */
export async function writeTestConfig(file: string, agents: readonly string[] = Object.keys(TEST_TOKENS)): Promise<void> {
  const config = { agents: Object.fromEntries(agents.map((name) => [name, { token_sha256: tokenSha256(TEST_TOKENS[name] ?? name) }])) };
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(config), { mode: 0o600 });
  await chmod(file, 0o600);
}

/**
 * Writes what a real `handoff listen` process for alice needs under `dir`: bob's pair secret
 * (`secret`) in `dir/keys`, alice's hub token in a 0600 file, and a config naming them, with its
 * bootstrap and state directories under `dir`. `extra` adds or overrides config fields (dialer,
 * contacts, …). Returns the config file's path.
 */
export async function writeAliceListenerFiles(dir: string, hubUrl: string, secret: string, extra: Record<string, unknown>): Promise<string> {
  await writeKeyFile(keyFilePath(path.join(dir, 'keys'), 'bob'), secret);
  const tokenFile = path.join(dir, 'hub-token');
  await writeFile(tokenFile, TEST_TOKENS.alice as string, { mode: 0o600 });
  const configFile = path.join(dir, 'alice.json');
  const config = {
    agent: 'alice',
    hub: { url: hubUrl, token_file: tokenFile },
    keys_dir: path.join(dir, 'keys'),
    bootstrap_dir: path.join(dir, 'voice', 'handoffs'),
    state_dir: path.join(dir, 'state'),
    target: { kind: 'stream', url: 'wss://alice.example.com/twilio' },
    call: { poll_interval_sec: 0.05, complete_after_sec: 0 },
    ...extra,
  };
  await writeFile(configFile, JSON.stringify(config));
  return configFile;
}

/** A pino destination that keeps every line in memory. */
export function logCollector(): { lines: string[]; destination: { write(line: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (line: string) => void lines.push(line) } };
}

export interface TestHub {
  hub: RunningHub;
  url: string;
  dir: string;
  spoolDir: string;
  configFile: string;
  logs: string[];
  /** Starts a new hub on the same spool and config (after `hub.close()`), for restart tests. */
  restart(): Promise<TestHub>;
}

/** A real hub on 127.0.0.1:0 over a fresh spool in a temp dir; closed when the test ends. */
export async function startTestHub(t: TestContext, options: Partial<StartHubOptions> = {}, dir?: string): Promise<TestHub> {
  const root = dir ?? (await tmpDir(t, 'handoff-hub-'));
  const spoolDir = path.join(root, 'spool');
  const configFile = path.join(root, 'hub.json');
  if (dir === undefined) await writeTestConfig(configFile);
  const logs = logCollector();
  const hub = await startHub({
    spoolDir,
    configFile,
    host: '127.0.0.1',
    port: 0,
    logger: createHubLogger({ level: 'debug', destination: logs.destination }),
    shutdownGraceMs: 1000,
    ...options,
  });
  t.after(() => hub.close());
  return {
    hub,
    url: hub.url,
    dir: root,
    spoolDir,
    configFile,
    logs: logs.lines,
    restart: () => startTestHub(t, options, root),
  };
}

export interface PayloadSpec {
  from?: string;
  to?: string;
  id?: string;
  /** Time to live from `nowMs`; default 60 s. */
  ttlMs?: number;
  nowMs?: number;
  extra?: Record<string, unknown>;
}

let sequence = 0;

/** A signed v1 payload in compact canonical form, with a unique id unless one is given. */
export function makePayload(spec: PayloadSpec = {}): { text: string; id: string; expiresAt: string } {
  const from = spec.from ?? 'bob';
  const to = spec.to ?? 'alice';
  const now = spec.nowMs ?? Date.now();
  const id = spec.id ?? `${Math.floor(now / 1000)}-${from}-${to}-${(++sequence).toString(16).padStart(4, '0')}${process.pid}`;
  const expiresAt = isoMillis(now + (spec.ttlMs ?? 60_000));
  const signed = signPayload(
    {
      protocol_version: 1,
      handoff_id: id,
      caller_hash: '8a59780bb8cd2ba0',
      from_agent: from,
      to_agent: to,
      reason: 'scheduling_capability',
      initiated_at: isoMillis(now),
      expires_at: expiresAt,
      transcript: [
        { role: 'user', text: 'Can Alice set up a standup with Patrik?' },
        { role: 'assistant', text: 'Sure, I will hand you to Alice.' },
      ],
      ...spec.extra,
    },
    TEST_SECRET,
  );
  return { text: signed.text, id, expiresAt };
}

/** Every path under `dir`, relative, sorted (directories end with `/`, files carry their size). */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(path.join(dir, rel), { withFileTypes: true });
    for (const entry of entries) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        out.push(`${child}/`);
        await walk(child);
      } else out.push(`${child} ${(await stat(path.join(dir, child))).size}`);
    }
  };
  await walk('');
  return out.sort();
}

/** Headers of an authenticated request as `agent`. */
export function authHeaders(agent: string, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${TEST_TOKENS[agent] ?? ''}`, ...extra };
}

/** POSTs JSON text as `agent` and returns status and parsed body (undefined when empty). */
export async function postJson(url: string, agent: string, body: string): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, { method: 'POST', headers: authHeaders(agent, { 'content-type': 'application/json' }), body });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text), headers: res.headers };
}

/** GETs as `agent` and returns status and raw text. */
export async function getText(url: string, agent: string, init: RequestInit = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { ...init, headers: authHeaders(agent) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

export interface RawReply {
  status: number;
  body: string;
}

/**
 * A request with an exact, un-normalised path (fetch would resolve `%2e%2e`) and full control of
 * the body: a string/Buffer, or chunks written one by one (chunked encoding) with a pause between.
 */
export function rawRequest(
  url: string,
  options: { method?: string; path: string; headers?: OutgoingHttpHeaders; body?: string | Buffer; chunks?: Buffer[]; pauseMs?: number },
): Promise<RawReply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let answered = false;
    let status = 0;
    let body = '';
    const req = httpRequest({ hostname, port, method: options.method ?? 'GET', path: options.path, headers: options.headers });
    const finish = (): void => {
      answered = true;
      resolve({ status, body });
    };
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', finish);
      res.on('error', finish);
    });
    req.on('error', (err) => {
      // The hub may close the connection after answering early (413 while we were still sending).
      if (answered) return;
      if (status !== 0) finish();
      else reject(err);
    });
    if (options.chunks !== undefined) {
      const chunks = [...options.chunks];
      const next = (): void => {
        if (req.destroyed || answered) return;
        const chunk = chunks.shift();
        if (chunk === undefined) {
          req.end();
          return;
        }
        req.write(chunk, () => setTimeout(next, options.pauseMs ?? 0));
      };
      next();
    } else req.end(options.body);
  });
}
