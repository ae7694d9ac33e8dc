/**
 * Hostile input, generated with fast-check.
 *
 * `httpFuzz`: requests to every endpoint of a real hub on 127.0.0.1 — malformed JSON, deep
 * nesting, huge strings, invalid UTF-8, lone surrogates, duplicate keys, wrong types, path-like ids
 * (`..`, `/`, `%2e%2e`, NUL), header abuse (duplicate Authorization, lowercase scheme, the token in
 * the query, lying Content-Length), odd methods and paths. Every answer must be below 500 and a
 * well-formed error; the token in the query never authenticates; nothing is written outside the
 * spool and nothing but handoff files inside it; the heap grows by a bounded amount; the hub
 * still answers at the end.
 *
 * `parserFuzz`: the payload parser and the verifier on arbitrary bytes, arbitrary JSON and
 * mutations of signed payloads: they refuse with a typed code and never throw anything else,
 * canonical form is a fixed point, and a changed character of a signed payload verifies only when
 * it spells the same document (the hex digits of a `\u` escape are case-insensitive).
 */
import { readdirSync, statSync } from 'node:fs';
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { createHubLogger, startHub } from '../../hub/index.js';
import {
  canonicalJson,
  HandoffError,
  isErrorCode,
  keyRingFromSecrets,
  MAX_DEPTH,
  parseJson,
  parsePayload,
  signPayload,
  verifyPayload,
  VERIFY_CODES,
} from '../../protocol/index.js';
import { makePayload, TEST_SECRET, TEST_TOKENS, writeTestConfig } from '../helpers/hub.js';
import { newResult, violate, type SuiteResult } from './report.js';
import { checkTree } from './spool-invariants.js';

const AGENTS = ['alice', 'bob', 'gordon'] as const;
const ACTIONS = ['accept', 'complete', 'reject', 'renew'] as const;

/** Runs a full garbage collection (exposing it first), so that heap readings compare like with like. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function heapUsed(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

// ------------------------------------------------------------------ request generation

interface FuzzRequest {
  method: string;
  path: string;
  /** A list sends the header once per value (Node's types allow only one Authorization). */
  headers: Record<string, string | string[]>;
  body?: Buffer;
  /** What the request is meant to probe, for the checks that apply to it only. */
  probe?: 'token-in-query' | 'duplicate-authorization' | 'lowercase-scheme' | 'lying-length';
  /**
   * Aim at a handoff the fuzzer created: `{known}` in the path becomes its id, and with `token` a
   * JSON body's `claim_token` becomes the token its accept returned.
   */
  known?: { index: number; token: boolean };
}

/** Handoffs the fuzzed hub stored (start → 201) and the claim tokens it gave out (accept → 200). */
interface Known {
  ids: string[];
  tokens: Map<string, string>;
}

const KNOWN = '{known}';

const hostileIds = fc.constantFrom(
  '..',
  '.',
  '%2e%2e',
  '%2E%2E%2F%2E%2E%2Fhub.json',
  '..%2F..%2Fhub.json',
  'a%2Fb',
  '%00',
  'a%00b',
  '%C3%A9',
  '%ff',
  '%',
  'x'.repeat(300),
  'poll',
  'start',
  '..%5C..%5Cetc%5Cpasswd',
  '%252e%252e',
);
const safeIds = fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/);
const anyIds = fc.string({ unit: 'binary', maxLength: 40 }).map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, 'x')));
const idArb = fc.oneof(hostileIds, safeIds, anyIds);

const wrongTypes = fc.constantFrom<Record<string, unknown>>(
  { protocol_version: '1' },
  { protocol_version: 1.0000001 },
  { protocol_version: 2 },
  { transcript: {} },
  { transcript: [{ role: 'robot', text: 'x' }] },
  { transcript: [{ role: 'user', text: 7 }] },
  { handoff_id: 12 },
  { handoff_id: '../../evil' },
  { handoff_id: 'a/b' },
  { handoff_id: 'a\u0000b' },
  { handoff_id: '' },
  { from_agent: 'alice' },
  { to_agent: 'bob' },
  { to_agent: 'nobody' },
  { expires_at: 'tomorrow' },
  { expires_at: '1970-01-01T00:00:00Z' },
  { caller_hash: 'XYZ' },
  { hmac: null },
  { consent: { granted: 'yes' } },
  { hop: -1 },
  { callback_number: '555' },
);

/** A signed payload from bob (to alice or gordon) with random extra fields, as text. */
const validPayload = fc
  .record({
    to: fc.constantFrom('alice', 'gordon'),
    extra: fc.dictionary(fc.stringMatching(/^x_[a-z]{1,8}$/), fc.jsonValue({ maxDepth: 3, stringUnit: 'grapheme' }), { maxKeys: 3 }),
    ttlMs: fc.constantFrom(600_000, 3600_000),
  })
  .map(({ to, extra, ttlMs }) => makePayload({ from: 'bob', to, ttlMs, extra }).text);

const mutation = fc.oneof(
  // Replace or insert characters anywhere (breaks structure, escapes, keys).
  fc.tuple(fc.nat(), fc.string({ unit: 'binary', maxLength: 4 })).map(([at, s]) => (text: string) => {
    const i = at % (text.length + 1);
    return text.slice(0, i) + s + text.slice(i + 1);
  }),
  // A duplicate key at the top level.
  fc.constant((text: string) => text.replace('{', '{"handoff_id":"dup",')),
  // A lone surrogate, escaped and raw.
  fc.constant((text: string) => text.replace('"reason":"', '"reason":"\\ud800')),
  fc.constant((text: string) => text.replace('"reason":"', '"reason":"\ud800')),
  // NUL and control characters inside a string.
  fc.constant((text: string) => text.replace('"reason":"', '"reason":"\u0000\u0001')),
  // Trailing garbage, a byte-order mark, whitespace.
  fc.constant((text: string) => `${text}x`),
  fc.constant((text: string) => `\ufeff${text}`),
  fc.constant((text: string) => ` \n${text}\n `),
  // Wrong types for required fields.
  wrongTypes.map((change) => (text: string) => {
    const obj = JSON.parse(text) as Record<string, unknown>;
    return JSON.stringify({ ...obj, ...change });
  }),
);

const bodyArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: validPayload.map((t) => Buffer.from(t)) },
  { weight: 4, arbitrary: fc.tuple(validPayload, mutation).map(([t, m]) => Buffer.from(m(t))) },
  { weight: 2, arbitrary: fc.json({ maxDepth: 4 }).map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
  // Invalid UTF-8 spliced into a payload.
  { weight: 1, arbitrary: fc.tuple(validPayload, fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80])).map(([t, bytes]) => Buffer.concat([Buffer.from(t.slice(0, 40)), Buffer.from(bytes), Buffer.from(t.slice(40))])) },
  // Deep nesting, arrays and objects, around the parser's limit and far beyond it.
  { weight: 1, arbitrary: fc.constantFrom(MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 20_000).chain((depth) => fc.constantFrom(`${'['.repeat(depth)}${']'.repeat(depth)}`, `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`).map((t) => Buffer.from(t))) },
  // Huge strings, under and over the body limit.
  { weight: 1, arbitrary: fc.constantFrom(200_000, 900_000, 1_100_000).map((n) => Buffer.from(`{"protocol_version":1,"reason":"${'a'.repeat(n)}"}`)) },
  { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) },
);

const codeLike = fc.oneof(fc.constantFrom('connected', 'no_answer', 'busy', 'SIGNATURE', 'voicemail'), fc.string());
const actionBody = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .record(
        {
          claim_token: fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9_-]{32,64}$/)),
          outcome: codeLike,
          reason: codeLike,
          notes: fc.string({ unit: 'binary', maxLength: 50 }),
          final_transcript: fc.jsonValue({ maxDepth: 3 }),
          lease_ms: fc.oneof(fc.integer(), fc.double(), fc.string()),
        },
        { requiredKeys: [] },
      )
      .map((o) => Buffer.from(JSON.stringify(o))),
  },
  { weight: 1, arbitrary: bodyArb },
);

const queryArb = fc
  .record(
    {
      agent: fc.oneof(fc.constantFrom(...AGENTS, '', 'ALICE', 'alice&agent=bob', '../alice'), fc.string({ maxLength: 10 })),
      wait: fc.oneof(fc.constantFrom('0', '0.05', '1e3', '-1', 'NaN', 'Infinity', '0x10', '999999999', ''), fc.string({ maxLength: 6 })),
      since: fc.oneof(fc.constantFrom('pending', 'claimed', 'archived', 'rejected', '__proto__', 'constructor'), fc.string({ maxLength: 8 })),
    },
    { requiredKeys: [] },
  )
  .map((q) => {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) params.append(k, v);
    // Long-polls are kept short: the fuzzer is after answers, not waits.
    if (params.has('wait')) params.set('wait', /^\d+(\.\d+)?$/.test(params.get('wait') ?? '') ? '0.01' : (params.get('wait') ?? ''));
    return params.toString();
  });

const authArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...AGENTS).map((a) => `Bearer ${TEST_TOKENS[a]}`) },
  { weight: 1, arbitrary: fc.constantFrom(...AGENTS).map((a) => `bearer ${TEST_TOKENS[a]}`) },
  { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'Basic YWxpY2U6c2VjcmV0', `Bearer ${'A'.repeat(600)}`, 'Bearer \u00e9t\u00e9-token-AAAAAAAAAAAAAAAA', `Token ${TEST_TOKENS.alice}`, `Bearer ${TEST_TOKENS.alice} extra`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')) },
);

const contentTypeArb = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-8', 'text/plain', 'application/json; charset=latin1', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '') },
);

/** Mostly a handoff the fuzzer created (so that transitions really happen), else any id. */
const targetArb = fc.oneof(
  { weight: 3, arbitrary: fc.record({ index: fc.nat(), token: fc.boolean() }).map((known) => ({ id: KNOWN, known })) },
  { weight: 2, arbitrary: idArb.map((id) => ({ id, known: undefined })) },
);

const routeArb: fc.Arbitrary<FuzzRequest> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({ auth: fc.oneof({ weight: 4, arbitrary: fc.constant(`Bearer ${TEST_TOKENS.bob}`) }, { weight: 1, arbitrary: authArb }), type: contentTypeArb, body: bodyArb })
      .map(({ auth, type, body }) => ({
        method: 'POST',
        path: '/api/v1/handoffs/start',
        headers: { authorization: auth, 'content-type': type },
        body,
      })),
  },
  { weight: 2, arbitrary: fc.record({ auth: authArb, q: queryArb }).map(({ auth, q }) => ({ method: 'GET', path: `/api/v1/handoffs/poll?${q}`, headers: { authorization: auth } })) },
  {
    weight: 5,
    arbitrary: fc.record({ auth: authArb, target: targetArb, action: fc.constantFrom(...ACTIONS), type: contentTypeArb, body: actionBody }).map(({ auth, target, action, type, body }) => ({
      method: 'POST',
      path: `/api/v1/handoffs/${target.id}/${action}`,
      headers: { authorization: auth, 'content-type': type },
      body,
      known: target.known,
    })),
  },
  {
    weight: 2,
    arbitrary: fc.record({ auth: authArb, target: targetArb, q: queryArb }).map(({ auth, target, q }) => ({
      method: 'GET',
      path: `/api/v1/handoffs/${target.id}?${q}`,
      headers: { authorization: auth },
      known: target.known,
    })),
  },
  fc.record({ method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), p: fc.constantFrom('/', '/healthz', '/metrics', '/api', '/api/v1', '/api/v1/', '/api/v1/handoffs', '/api/v1/handoffs/', '/api/v1/../../hub.json', '/%2e%2e/%2e%2e/etc/passwd', '/api/v1/handoffs/start/accept', '//api//v1//handoffs//poll') }).map(({ method, p }) => ({
    method,
    path: p,
    headers: { authorization: `Bearer ${TEST_TOKENS.alice}` },
  })),
  // The token in the query instead of the header must not authenticate.
  fc.record({ agent: fc.constantFrom(...AGENTS), name: fc.constantFrom('access_token', 'token', 'authorization', 'bearer') }).map(({ agent, name }) => ({
    method: 'GET',
    path: `/api/v1/handoffs/poll?agent=${agent}&${name}=${encodeURIComponent(TEST_TOKENS[agent] as string)}`,
    headers: {},
    probe: 'token-in-query' as const,
  })),
  // Two Authorization headers (the second for the agent polled) must not authenticate as the second.
  fc.tuple(fc.constantFrom(...AGENTS), fc.constantFrom(...AGENTS)).filter(([a, b]) => a !== b).map(([a, b]) => ({
    method: 'GET',
    path: `/api/v1/handoffs/poll?agent=${b}`,
    headers: { authorization: [`Bearer ${TEST_TOKENS[a]}`, `Bearer ${TEST_TOKENS[b]}`] },
    probe: 'duplicate-authorization' as const,
  })),
  // The scheme is case-insensitive (RFC 7235): a lowercase one authenticates its own agent only.
  fc.constantFrom(...AGENTS).map((a) => ({
    method: 'GET',
    path: `/api/v1/handoffs/poll?agent=${a}&wait=0`,
    headers: { authorization: `bearer ${TEST_TOKENS[a]}` },
    probe: 'lowercase-scheme' as const,
  })),
  // A Content-Length that lies about the body, on its own connection.
  fc.tuple(validPayload, fc.constantFrom(-10, 10, 1000)).map(([text, delta]) => ({
    method: 'POST',
    path: '/api/v1/handoffs/start',
    headers: { authorization: `Bearer ${TEST_TOKENS.bob}`, 'content-type': 'application/json', 'content-length': String(Math.max(0, Buffer.byteLength(text) + delta)) },
    body: Buffer.from(text),
    probe: 'lying-length' as const,
  })),
);

// ------------------------------------------------------------------ HTTP fuzzing

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Fills in a known handoff's id (and claim token) for a request aimed at one. */
function resolveKnown(req: FuzzRequest, known: Known): FuzzRequest {
  if (req.known === undefined) return req;
  const id = known.ids[req.known.index % Math.max(1, known.ids.length)] ?? 'no-such-handoff';
  let body = req.body;
  const token = known.tokens.get(id);
  if (req.known.token && token !== undefined && body !== undefined) {
    try {
      const obj = JSON.parse(body.toString('utf8')) as unknown;
      if (obj !== null && typeof obj === 'object' && !Array.isArray(obj)) body = Buffer.from(JSON.stringify({ ...obj, claim_token: token }));
    } catch {
      // Not a JSON object: sent as generated.
    }
  }
  return { ...req, path: req.path.replace(KNOWN, id), body };
}

/** Remembers what the hub stored and the claim tokens it gave out, for later requests. */
function learn(req: FuzzRequest, reply: Reply, known: Known): void {
  if (reply.status !== 200 && reply.status !== 201) return;
  let body: { handoff_id?: unknown; claim_token?: unknown };
  try {
    body = JSON.parse(reply.body) as typeof body;
  } catch {
    return;
  }
  if (typeof body.handoff_id !== 'string') return;
  if (req.path === '/api/v1/handoffs/start' && reply.status === 201) known.ids.push(body.handoff_id);
  if (req.path.endsWith('/accept') && typeof body.claim_token === 'string') known.tokens.set(body.handoff_id, body.claim_token);
}

function send(url: string, req: FuzzRequest): Promise<Reply> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const r = httpRequest({ hostname, port, method: req.method, path: req.path, headers: req.headers as OutgoingHttpHeaders, agent: false });
    r.setTimeout(20_000, () => r.destroy(new Error('no answer within 20 s')));
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    r.on('error', reject);
    if (req.probe === 'lying-length' && req.body) {
      // Write the body as it is, whatever the header claims.
      r.write(req.body.subarray(0, Math.min(req.body.length, Number(req.headers['content-length']))));
      r.end();
    } else r.end(req.body);
  });
}

/** Every file under `dir`, relative, with its size (directories end with `/`). */
function snapshot(dir: string, skip: (rel: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(dir, rel))) {
      const child = rel === '' ? name : path.join(rel, name);
      if (skip(child)) continue;
      const st = statSync(path.join(dir, child));
      if (st.isDirectory()) {
        out.push(`${child}/`);
        walk(child);
      } else out.push(`${child} ${st.size}`);
    }
  };
  walk('');
  return out.sort();
}

const ALLOWED_SPOOL_PATHS = [
  /^(handoff|claimed)\/[A-Za-z0-9_-]{1,128}\.json$/,
  /^(archive|rejected)\/[0-9a-f]{2}\/[A-Za-z0-9_-]{1,128}\.json$/,
  /^events\/\d{4}-\d{2}-\d{2}\.jsonl$/,
  /^events\/\.(audit|sweep)\.lock$/,
];

export interface HttpFuzzOptions {
  dir: string;
  runs: number;
  seed?: number;
  /** Allowed heap growth over the run, after a full collection; default 64 MiB. */
  heapBudgetBytes?: number;
}

/** Fuzzes every endpoint of a real hub; see the header. */
export async function httpFuzz(options: HttpFuzzOptions): Promise<SuiteResult> {
  const result = newResult('hostile HTTP input');
  // The hub's directory sits two levels below the checked one, so that an id like ../../x that
  // escaped would land where the snapshot sees it.
  const root = path.join(options.dir, 'a', 'b');
  const spoolDir = path.join(root, 'spool');
  const config = path.join(root, 'hub.json');
  await writeTestConfig(config);
  const errors: string[] = [];
  const hub = await startHub({
    spoolDir,
    configFile: config,
    port: 0,
    logger: createHubLogger({ level: 'error', destination: { write: (line: string) => void errors.push(line) } }),
    // Bounded pending index and a short body timeout, so that lying Content-Lengths end quickly.
    limits: { maxPendingPerTarget: 20, bodyTimeoutMs: 100 },
  });
  const inSpool = (rel: string): boolean => rel === path.join('a', 'b', 'spool') || rel.startsWith(path.join('a', 'b', 'spool') + path.sep);
  const before = snapshot(options.dir, inSpool);
  let heapStart = 0;
  const statuses = new Map<string, number>();
  const known: Known = { ids: [], tokens: new Map() };
  try {
    // Warm up (JIT, caches, connection handling) before the heap is measured.
    for (const req of fc.sample(routeArb, { numRuns: 50, seed: (options.seed ?? 42) + 1 })) await send(hub.url, resolveKnown(req, known)).catch(() => undefined);
    heapStart = heapUsed();
    await fc.assert(
      fc.asyncProperty(routeArb, async (generated) => {
        result.fuzzCases++;
        result.operations++;
        const req = resolveKnown(generated, known);
        let reply: Reply;
        try {
          reply = await send(hub.url, req);
        } catch (err) {
          // A lying Content-Length may get the connection closed by Node's HTTP parser.
          if (req.probe !== 'lying-length') violate(result, 'connection-error', `${req.method} ${req.path.slice(0, 80)}: ${(err as Error).message}`);
          return;
        }
        checkReply(req, reply, result);
        learn(req, reply, known);
        const key = `${req.probe ?? req.path.split('?')[0]?.replace(/\/api\/v1\/handoffs\/[^/]+\/(accept|complete|reject|renew)$/, '/{id}/$1').replace(/^\/api\/v1\/handoffs\/(?!start$|poll$)[^/]+$/, '/{id}')} ${reply.status}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
      }),
      { numRuns: options.runs, seed: options.seed ?? 42, endOnFailure: true },
    );
  } finally {
    const health = await send(hub.url, { method: 'GET', path: '/healthz', headers: {} }).catch((err: Error) => ({ status: 0, body: err.message, headers: {} }));
    if (health.status !== 200) violate(result, 'hub-down', `healthz → ${health.status} ${health.body}`);
    await hub.close();
  }
  const growth = heapUsed() - heapStart;
  const budget = options.heapBudgetBytes ?? 64 * 1024 * 1024;
  if (growth > budget) violate(result, 'memory', `heap grew by ${(growth / 1048576).toFixed(1)} MiB over ${options.runs} cases`);
  result.notes = [
    `heap growth ${(growth / 1048576).toFixed(1)} MiB over ${options.runs} cases`,
    `answers: ${[...statuses].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ×${n}`).join(', ')}`,
  ];
  for (const line of errors) violate(result, 'error-logged', line.slice(0, 300));

  const after = snapshot(options.dir, inSpool);
  if (JSON.stringify(after) !== JSON.stringify(before)) violate(result, 'write-outside-spool', `outside the spool: ${after.filter((x) => !before.includes(x)).join(', ')}`);
  for (const entry of snapshot(spoolDir, () => false)) {
    if (entry.endsWith('/')) continue;
    const rel = entry.slice(0, entry.lastIndexOf(' '));
    if (!ALLOWED_SPOOL_PATHS.some((re) => re.test(rel))) violate(result, 'unexpected-file', `spool/${rel}`);
  }
  await checkTree(spoolDir, result, 'after the fuzzing');
  return result;
}

function checkReply(req: FuzzRequest, reply: Reply, result: SuiteResult): void {
  const what = `${req.method} ${req.path.slice(0, 100)} (${req.body?.length ?? 0} bytes)`;
  if (reply.status >= 500) violate(result, 'server-error', `${what} → ${reply.status} ${reply.body.slice(0, 200)}`);
  if (reply.status === 401 && reply.headers['www-authenticate'] === undefined) violate(result, 'auth-header', `${what} → 401 without WWW-Authenticate`);
  if (reply.status >= 400 && req.method !== 'HEAD' && reply.body !== '') {
    let code: unknown;
    try {
      code = (JSON.parse(reply.body) as { error?: { code?: unknown } }).error?.code;
    } catch {
      // Node's own HTTP parser answers malformed requests (a lying Content-Length) in plain text.
      if (req.probe !== 'lying-length') violate(result, 'malformed-error', `${what} → ${reply.status} ${reply.body.slice(0, 100)}`);
      return;
    }
    if (!isErrorCode(code)) violate(result, 'malformed-error', `${what} → ${reply.status} without a known error code`);
  }
  if (req.probe === 'token-in-query' && reply.status !== 401) violate(result, 'token-in-query', `${what} → ${reply.status}: a token in the query authenticated`);
  if (req.probe === 'duplicate-authorization' && reply.status < 400) violate(result, 'duplicate-authorization', `${what} → ${reply.status}: the second Authorization header was used`);
  if (req.probe === 'lowercase-scheme' && reply.status !== 200 && reply.status !== 204) violate(result, 'lowercase-scheme', `${what} → ${reply.status}`);
}

// ------------------------------------------------------------------ parser fuzzing

export interface ParserFuzzOptions {
  runs: number;
  seed?: number;
}

const KEYS = keyRingFromSecrets({ bob: [TEST_SECRET] });
const NOW = Date.now();

function refusesCleanly(input: Uint8Array | string, result: SuiteResult, what: string): void {
  try {
    parsePayload(input);
  } catch (err) {
    if (!(err instanceof HandoffError) || (err.code !== 'SCHEMA' && err.code !== 'VERSION')) {
      violate(result, 'parser-threw', `${what}: ${err instanceof HandoffError ? err.code : String(err)}`);
    }
  }
  try {
    const verdict = verifyPayload(input, { agent: 'alice', keys: KEYS, nowMs: NOW });
    if (!verdict.ok && !(VERIFY_CODES as readonly string[]).includes(verdict.code)) violate(result, 'verifier-code', `${what}: ${verdict.code}`);
  } catch (err) {
    violate(result, 'verifier-threw', `${what}: ${String(err)}`);
  }
}

/** Fuzzes the payload parser and verifier; see the header. */
export async function parserFuzz(options: ParserFuzzOptions): Promise<SuiteResult> {
  const result = newResult('hostile payloads (parser)');
  const seed = options.seed ?? 7;
  const runs = options.runs;
  const count = () => {
    result.fuzzCases++;
    result.operations++;
  };

  // Arbitrary bytes, arbitrary text and every mutation of a signed payload: typed refusals only.
  fc.assert(
    fc.property(fc.oneof(bodyArb, fc.string({ unit: 'binary', maxLength: 300 })), (input) => {
      count();
      refusesCleanly(input, result, 'arbitrary input');
    }),
    { numRuns: runs, seed },
  );

  // Canonical form is a fixed point of parse ∘ canonical, for any JSON text the parser accepts.
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 6, stringUnit: 'binary' }), (value) => {
      count();
      const text = JSON.stringify(value);
      let once: string;
      try {
        once = canonicalJson(parseJson(text));
      } catch (err) {
        // Lone surrogates are refused on purpose; anything else JSON.stringify writes must parse.
        const lone = /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i.test(text);
        if (!lone || !(err instanceof HandoffError)) violate(result, 'parser-refused-json', `${text.slice(0, 120)}: ${String(err)}`);
        return;
      }
      if (canonicalJson(parseJson(once)) !== once) violate(result, 'canonical-unstable', text.slice(0, 120));
    }),
    { numRuns: runs, seed },
  );

  // A signed payload with arbitrary extra fields verifies; one changed character never does.
  fc.assert(
    fc.property(
      fc.dictionary(fc.stringMatching(/^x_[a-z]{1,6}$/), fc.jsonValue({ maxDepth: 3, stringUnit: 'grapheme' }), { maxKeys: 4 }),
      fc.nat(),
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
      (extra, at, ch) => {
        count();
        const signed = makeSigned(extra);
        if (!verifyPayload(signed, { agent: 'alice', keys: KEYS, nowMs: NOW }).ok) {
          violate(result, 'valid-refused', signed.slice(0, 120));
          return;
        }
        const i = at % signed.length;
        if (signed[i] === ch) return;
        const changed = signed.slice(0, i) + ch + signed.slice(i + 1);
        const verdict = verifyPayload(changed, { agent: 'alice', keys: KEYS, nowMs: NOW });
        // The signature covers the document, not its spelling: `\u00e9` and `\u00E9` are one
        // character (as for the reference implementation). Only a changed document is a forgery.
        if (verdict.ok && canonicalJson(verdict.tree) !== canonicalJson(parseJson(signed))) {
          violate(result, 'forgery-accepted', `changing offset ${i} (${JSON.stringify(signed.slice(Math.max(0, i - 12), i + 12))}) to ${JSON.stringify(ch)} still verifies`);
        }
      },
    ),
    { numRuns: runs, seed },
  );

  // Nesting at any depth up to far past the limit: refused with SCHEMA, never a stack overflow.
  for (const depth of [MAX_DEPTH + 1, 10_000, 200_000]) {
    count();
    for (const text of [`${'['.repeat(depth)}${']'.repeat(depth)}`, `{"a":${'{"a":'.repeat(depth)}1${'}'.repeat(depth + 1)}`]) {
      try {
        parseJson(text);
        violate(result, 'depth', `depth ${depth} accepted`);
      } catch (err) {
        if (!(err instanceof HandoffError) || err.code !== 'SCHEMA') violate(result, 'depth', `depth ${depth}: ${String(err)}`);
      }
    }
  }
  return result;
}

function makeSigned(extra: Record<string, unknown>): string {
  return signPayload(
    {
      protocol_version: 1,
      handoff_id: 'fuzz-1',
      caller_hash: '8a59780bb8cd2ba0',
      from_agent: 'bob',
      to_agent: 'alice',
      reason: 'scheduling_capability',
      initiated_at: new Date(NOW - 1000).toISOString(),
      expires_at: new Date(NOW + 600_000).toISOString(),
      transcript: [{ role: 'user', text: 'hi' }],
      ...extra,
    },
    TEST_SECRET,
  ).text;
}

