/**
 * Real `kill -9` of a hub: `handoff hub serve` runs as a child process while concurrent clients
 * start, accept (several racing for one handoff), complete and reject handoffs; it is killed with
 * SIGKILL at a random moment, and then:
 * - the spool as the dead hub left it is checked from the outside: every handoff is one complete
 *   file in one state directory, and every acknowledged operation is there;
 * - a new hub is started on the same spool, and every acknowledged operation is checked through
 *   its API; operations whose answer the kill swallowed are retried with the same token and
 *   outcome, and must be answered as idempotent repeats.
 * The last hub is stopped gracefully and the spool checked once more (tmp/ clean, audit intact).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Agent } from 'undici';
import { bucketOf, decodeStoredFile, verifyAudit } from '../../spool/index.js';
import { CLI_ENTRY, REPO_ROOT, TSX_LOADER } from '../helpers/cli.js';
import { makePayload, TEST_TOKENS, writeTestConfig } from '../helpers/hub.js';
import { prng } from './crash-suite.js';
import { newResult, violate, type SuiteResult } from './report.js';
import { checkTree, placesById, type Place } from './spool-invariants.js';

const TARGETS = ['alice', 'gordon'] as const;
const START_TIMEOUT_MS = 60_000;
/** A restart slower than this is reported with the locks the dead hub left behind. */
const SLOW_RESTART_MS = 5_000;

export interface HubKillOptions {
  /** A scratch directory for the spool and the hub config (the caller removes it). */
  dir: string;
  kills: number;
  /** Concurrent clients per round. */
  clients?: number;
  seed?: number;
  /** A kill lands this long after the clients start: uniform in [min, max] ms. */
  killAfterMs?: readonly [number, number];
  /** Called after every round (progress output of the long profile). */
  onRound?: (round: number, result: SuiteResult) => void;
}

interface Started {
  id: string;
  to: string;
  text: string;
}

/** An operation on a claim whose answer may have been lost; retried until answered. */
interface Settlement {
  id: string;
  to: string;
  token: string;
  how: 'complete' | 'reject';
  value: string;
}

interface Model {
  started: Map<string, Started>;
  /** Acknowledged claims: id → token. */
  claims: Map<string, string>;
  /** Settlements that were acknowledged. */
  settled: Map<string, Settlement>;
  /** Settlements decided but not (yet) acknowledged. */
  unsettled: Map<string, Settlement>;
  /** Pending rejections acknowledged: id → reason. */
  rejectedPending: Map<string, string>;
  acceptAttempts: Map<string, number>;
  maxRestartMs: number;
  slowRestarts: string[];
}

interface RunningHub {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

function spawnHub(spool: string, config: string, home: string): Promise<RunningHub> {
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI_ENTRY, 'hub', 'serve', '--spool', spool, '--config', config, '--port', '0', '--log-level', 'warn'], {
    cwd: REPO_ROOT,
    env: { ...process.env, HOME: home, HANDOFF_HUB_CONFIG: '', HANDOFF_SPOOL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`hub did not start within ${START_TIMEOUT_MS} ms: ${stderr}`));
    }, START_TIMEOUT_MS);
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)\n/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] as string, stderr: () => stderr });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hub exited with ${code} before listening: ${stderr}`));
    });
  });
}

interface Reply {
  status: number;
  body: Record<string, unknown> | undefined;
}

/** Runs `handoff hub serve` children, kills them, and checks every acknowledged operation. */
export async function hubKills(options: HubKillOptions): Promise<SuiteResult> {
  const result = newResult('kill -9 of the hub');
  const random = prng(options.seed ?? 7);
  const [minMs, maxMs] = options.killAfterMs ?? [80, 700];
  const spool = path.join(options.dir, 'spool');
  const config = path.join(options.dir, 'hub.json');
  await writeTestConfig(config);
  const model: Model = {
    started: new Map(),
    claims: new Map(),
    settled: new Map(),
    unsettled: new Map(),
    rejectedPending: new Map(),
    acceptAttempts: new Map(),
    maxRestartMs: 0,
    slowRestarts: [],
  };

  let hub = await spawnHub(spool, config, options.dir);
  try {
    for (let round = 0; round < options.kills; round++) {
      const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });
      const stop = { now: false };
      const clients = Array.from({ length: options.clients ?? 8 }, (_, i) => runClient(hub.url, agent, model, prng((options.seed ?? 7) * 1000 + round * 64 + i), stop, result));
      await new Promise((r) => setTimeout(r, minMs + Math.floor(random() * (maxMs - minMs))));
      hub.child.kill('SIGKILL');
      await once(hub.child, 'exit');
      result.kills++;
      result.crashes++;
      stop.now = true;
      await Promise.all(clients);
      await agent.destroy();

      await checkDeadHub(spool, model, result, `round ${round} (killed)`);
      const left = leftoverLocks(spool);
      const began = Date.now();
      hub = await spawnHub(spool, config, options.dir);
      const restartMs = Date.now() - began;
      model.maxRestartMs = Math.max(model.maxRestartMs, restartMs);
      if (restartMs > SLOW_RESTART_MS) model.slowRestarts.push(`round ${round}: ${restartMs} ms, left behind: ${left.join(', ') || 'nothing'}`);
      await checkThroughHub(hub.url, model, random, result, `round ${round} (restarted)`);
      options.onRound?.(round, result);
    }
  } finally {
    hub.child.kill('SIGTERM');
    const [code] = (await once(hub.child, 'exit')) as [number | null];
    if (code !== 0) violate(result, 'unclean-stop', `the last hub exited with ${code} on SIGTERM: ${hub.stderr()}`);
  }
  const places = await checkTree(spool, result, 'after the last hub stopped');
  checkAcknowledged(places, model, result, 'after the last hub stopped');
  const audit = await verifyAudit(path.join(spool, 'events'));
  if (!audit.ok) violate(result, 'audit-broken', JSON.stringify(audit.firstBad));
  result.races = [...model.acceptAttempts.values()].filter((n) => n > 1).length;
  result.notes = [`slowest restart ${model.maxRestartMs} ms`, `${model.started.size} handoffs started, ${model.claims.size} claims acknowledged`, ...model.slowRestarts];
  return result;
}

async function call(url: string, agent: Agent, as: string, method: 'GET' | 'POST', route: string, body?: string): Promise<Reply> {
  const res = await fetch(`${url}/api/v1/handoffs/${route}`, {
    method,
    headers: { authorization: `Bearer ${TEST_TOKENS[as]}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body,
    signal: AbortSignal.timeout(15_000),
    // @ts-expect-error undici's fetch takes its dispatcher in the init object
    dispatcher: agent,
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) };
}

async function runClient(url: string, agent: Agent, model: Model, random: () => number, stop: { now: boolean }, result: SuiteResult): Promise<void> {
  const pick = <T>(items: readonly T[]): T | undefined => items[Math.floor(random() * items.length)];
  while (!stop.now) {
    const roll = random();
    let request: () => Promise<void>;
    const retry = pick([...model.unsettled.values()]);
    if (retry !== undefined && roll < 0.15) {
      request = () => settle(url, agent, model, retry, result);
    } else if (roll < 0.45) {
      request = () => start(url, agent, model, random, result);
    } else if (roll < 0.75) {
      const candidates = [...model.started.values()].filter((s) => !model.claims.has(s.id) && !model.rejectedPending.has(s.id));
      const target = pick(candidates.slice(-20));
      if (target === undefined) continue;
      request = () => accept(url, agent, model, target, result);
    } else if (roll < 0.92) {
      const mine = [...model.claims].filter(([id]) => !model.settled.has(id) && !model.unsettled.has(id));
      const chosen = pick(mine);
      if (chosen === undefined) continue;
      const to = model.started.get(chosen[0])?.to ?? 'alice';
      const s: Settlement = random() < 0.6 ? { id: chosen[0], to, token: chosen[1], how: 'complete', value: 'connected' } : { id: chosen[0], to, token: chosen[1], how: 'reject', value: 'no_answer' };
      model.unsettled.set(s.id, s);
      request = () => settle(url, agent, model, s, result);
    } else {
      const target = pick([...model.started.values()].filter((s) => !model.claims.has(s.id)).slice(-20));
      if (target === undefined) continue;
      request = () => rejectPending(url, agent, model, target, result);
    }
    result.operations++;
    try {
      await request();
    } catch {
      // The hub died under this request: its outcome is unknown, and nothing is assumed about it.
      return;
    }
  }
}

function checkStatus(reply: Reply, what: string, result: SuiteResult): void {
  if (reply.status >= 500) violate(result, 'server-error', `${what} → ${reply.status} ${JSON.stringify(reply.body)}`);
}

async function start(url: string, agent: Agent, model: Model, random: () => number, result: SuiteResult): Promise<void> {
  const to = TARGETS[Math.floor(random() * TARGETS.length)] as string;
  // Most live long; some expire while the hub runs, so that the janitor is killed mid-sweep too.
  const ttlMs = random() < 0.15 ? 1_500 : 3600_000;
  const p = makePayload({ from: 'bob', to, ttlMs, id: `k-${randomBytes(9).toString('base64url')}` });
  const reply = await call(url, agent, 'bob', 'POST', 'start', p.text);
  checkStatus(reply, `start ${p.id}`, result);
  if (reply.status === 201 || reply.status === 200) model.started.set(p.id, { id: p.id, to, text: p.text });
}

async function accept(url: string, agent: Agent, model: Model, target: Started, result: SuiteResult): Promise<void> {
  const token = randomBytes(32).toString('base64url');
  model.acceptAttempts.set(target.id, (model.acceptAttempts.get(target.id) ?? 0) + 1);
  const reply = await call(url, agent, target.to, 'POST', `${target.id}/accept`, JSON.stringify({ claim_token: token }));
  checkStatus(reply, `accept ${target.id}`, result);
  if (reply.status !== 200) return;
  const held = model.claims.get(target.id);
  if (held !== undefined && held !== token) violate(result, 'two-winners', `${target.id} was claimed twice (two different tokens acknowledged)`);
  if (reply.body?.claim_token !== token) violate(result, 'wrong-token', `${target.id}: accept answered another token than the proposed one`);
  model.claims.set(target.id, token);
}

async function settle(url: string, agent: Agent, model: Model, s: Settlement, result: SuiteResult): Promise<void> {
  const body = s.how === 'complete' ? { claim_token: s.token, outcome: s.value } : { claim_token: s.token, reason: s.value };
  const reply = await call(url, agent, s.to, 'POST', `${s.id}/${s.how}`, JSON.stringify(body));
  checkStatus(reply, `${s.how} ${s.id}`, result);
  if (reply.status === 200) {
    model.unsettled.delete(s.id);
    model.settled.set(s.id, s);
    return;
  }
  // An acknowledged claim can only be ended by its holder (leases outlast the run), so a repeat
  // with the same token and outcome must be answered as such.
  violate(result, 'token-lost', `${s.how} ${s.id} with its acknowledged token → ${reply.status} ${JSON.stringify(reply.body)}`);
  model.unsettled.delete(s.id);
}

async function rejectPending(url: string, agent: Agent, model: Model, target: Started, result: SuiteResult): Promise<void> {
  const reply = await call(url, agent, target.to, 'POST', `${target.id}/reject`, JSON.stringify({ reason: 'busy' }));
  checkStatus(reply, `reject ${target.id}`, result);
  if (reply.status === 200) model.rejectedPending.set(target.id, 'busy');
}

/** The lock directories and owner records a killed hub left in events/. */
function leftoverLocks(spool: string): string[] {
  const events = path.join(spool, 'events');
  return readdirSync(events)
    .filter((name) => name.startsWith('.'))
    .map((name) => (name.endsWith('.owner') ? `${name} ${readFileSync(path.join(events, name), 'utf8')}` : name));
}

/** The spool as the killed hub left it: no hub runs, so nothing moves while we look. */
async function checkDeadHub(spool: string, model: Model, result: SuiteResult, label: string): Promise<void> {
  const places = placesById(spool);
  for (const [id, list] of places) {
    if (list.length !== 1) violate(result, 'not-one-file', `${label}: ${id} is in ${list.map((p) => p.rel).join(', ')}`);
    for (const p of list) {
      try {
        decodeStoredFile(p.bytes);
      } catch {
        violate(result, 'partial-file', `${label}: ${p.rel} is not a complete handoff file`);
      }
    }
  }
  checkAcknowledged(places, model, result, label);
}

function checkAcknowledged(places: Map<string, Place[]>, model: Model, result: SuiteResult, label: string): void {
  const valueOf = (p: Place): { state: string; outcome?: string; reason?: string } => {
    const file = decodeStoredFile(p.bytes);
    return { state: p.state, outcome: file.relay?.outcome, reason: file.relay?.reason };
  };
  for (const s of model.started.values()) {
    const place = places.get(s.id)?.[0];
    if (place === undefined) {
      violate(result, 'lost-ack', `${label}: started ${s.id} is gone`);
      continue;
    }
    let facts;
    try {
      facts = valueOf(place);
    } catch {
      continue;
    }
    if (model.claims.has(s.id) && place.state === 'pending') violate(result, 'lost-ack', `${label}: acknowledged claim of ${s.id} undone`);
    const done = model.settled.get(s.id);
    if (done?.how === 'complete' && place.state !== 'archived') violate(result, 'lost-ack', `${label}: acknowledged completion of ${s.id} but ${place.state}`);
    if (done?.how === 'reject' && place.state !== 'rejected') violate(result, 'lost-ack', `${label}: acknowledged rejection of ${s.id} but ${place.state}`);
    if (model.rejectedPending.has(s.id) && place.state !== 'rejected') violate(result, 'lost-ack', `${label}: acknowledged rejection of pending ${s.id} but ${place.state}`);
    // A bare payload right after the kill is a transition caught between rename and rewrite;
    // readers already see its directory's state, and the restarted hub rolls it forward.
    if (done && facts.state === (done.how === 'complete' ? 'archived' : 'rejected')) {
      const value = done.how === 'complete' ? facts.outcome : facts.reason;
      if (value !== undefined && value !== done.value) violate(result, 'lost-ack', `${label}: ${s.id} ${done.how}d with ${done.value} but the file says ${value}`);
    }
    if (place.state === 'archived' || place.state === 'rejected') {
      const expected = path.join(place.state === 'archived' ? 'archive' : 'rejected', bucketOf(s.id), `${s.id}.json`);
      if (place.rel !== expected) violate(result, 'wrong-place', `${label}: ${s.id} is at ${place.rel}`);
    }
  }
}

/**
 * Acknowledged operations, seen through the restarted hub: every handoff of the latest rounds and
 * a sample of older ones (the spool itself is checked for all of them after every kill).
 */
async function checkThroughHub(url: string, model: Model, random: () => number, result: SuiteResult, label: string): Promise<void> {
  const agent = new Agent({ connections: 16 });
  try {
    const all = [...model.started.values()];
    const recent = all.slice(-300);
    const older = all.slice(0, -300).filter(() => random() < 100 / Math.max(100, all.length - 300));
    const ids = [...older, ...recent];
    for (let i = 0; i < ids.length; i += 16) {
      await Promise.all(
        ids.slice(i, i + 16).map(async (s) => {
          const reply = await call(url, agent, s.to, 'GET', s.id);
          result.operations++;
          checkStatus(reply, `get ${s.id}`, result);
          if (reply.status !== 200) {
            violate(result, 'lost-ack', `${label}: started ${s.id} → ${reply.status}`);
            return;
          }
          const view = reply.body as { state: string; outcome?: string; reason?: string; claimed_by?: string };
          if (model.claims.has(s.id) && view.state === 'pending') violate(result, 'lost-ack', `${label}: claim of ${s.id} undone`);
          const done = model.settled.get(s.id);
          if (done?.how === 'complete' && (view.state !== 'archived' || view.outcome !== done.value)) {
            violate(result, 'lost-ack', `${label}: completion of ${s.id} → ${view.state} ${view.outcome ?? ''}`);
          }
          if (done?.how === 'reject' && (view.state !== 'rejected' || view.reason !== done.value)) {
            violate(result, 'lost-ack', `${label}: rejection of ${s.id} → ${view.state} ${view.reason ?? ''}`);
          }
          if (model.rejectedPending.has(s.id) && (view.state !== 'rejected' || view.reason !== 'busy')) {
            violate(result, 'lost-ack', `${label}: rejection of pending ${s.id} → ${view.state} ${view.reason ?? ''}`);
          }
        }),
      );
    }
  } finally {
    await agent.close();
  }
}
