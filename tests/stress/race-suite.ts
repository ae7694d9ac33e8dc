/**
 * Races on the spool's decision points.
 *
 * - `claimRaces`: every handoff is accepted at once through the hub (several HTTP clients), by a
 *   second spool instance in this process and by a spool in a child process (local mode), each
 *   with its own proposed token: exactly one winner, whose token holds the claim on disk.
 * - `claimRaceControl`: the same race between spool instances whose claim rename is replaced by
 *   copy + unlink (a move that is not one atomic decision); the suite must see two winners.
 * - `leaseBoundaryRaces`: complete or reject by the claimer against the janitor's lease sweep, with
 *   injected clocks one millisecond before, at and after the lease's end.
 * - `ttlBoundaryRaces`: accept against the janitor's expiry sweep around `expires_at`.
 * - `parkedPolls`: many long-polls and id watchers parked at once, most of them disconnected by the
 *   client: the waiter registry and the parked-polls gauge return to zero.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { request as httpRequest, type ClientRequest } from 'node:http';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { createHubLogger, startHub, type RunningHub } from '../../hub/index.js';
import { createRealFsOps, openSpool, type FsOps, type Spool } from '../../spool/index.js';
import { TSX_LOADER } from '../helpers/cli.js';
import { makePayload, TEST_TOKENS, writeTestConfig } from '../helpers/hub.js';
import { noSyncFsOps, prng } from './crash-suite.js';
import { newResult, violate, type SuiteResult } from './report.js';

const CLAIM_CHILD = fileURLToPath(new URL('./claim-child.ts', import.meta.url));
const LOSER_CODES = new Set(['ALREADY_CLAIMED', 'UNAVAILABLE']);

const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
const newToken = (): string => randomBytes(32).toString('base64url');

// ------------------------------------------------------------------ claim races

export interface ClaimRaceOptions {
  dir: string;
  rounds: number;
  /** Handoffs raced per round. */
  handoffs?: number;
  /** HTTP acceptors per handoff. */
  httpAcceptors?: number;
}

type Winners = Map<string, Array<{ who: string; token: string }>>;

function addWinner(winners: Winners, id: string, who: string, token: string): void {
  winners.set(id, [...(winners.get(id) ?? []), { who, token }]);
}

/** The hub, a second spool in this process and one in a child process race for every handoff. */
export async function claimRaces(options: ClaimRaceOptions): Promise<SuiteResult> {
  const result = newResult('claim races (hub + local mode)');
  const spoolDir = path.join(options.dir, 'spool');
  const config = path.join(options.dir, 'hub.json');
  await writeTestConfig(config);
  // Local-mode processes write this spool too, so the hub must not assume it is alone.
  const hub = await startHub({ spoolDir, configFile: config, port: 0, logger: createHubLogger({ level: 'silent' }), exclusiveSpool: false });
  const local = await openSpool({ root: spoolDir });
  const child = spawn(process.execPath, ['--import', TSX_LOADER, CLAIM_CHILD, spoolDir, 'alice'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const agent = new Agent({ connections: 64 });
  try {
    if ((await lines.next()).value !== 'ready') throw new Error('claim child did not start');
    for (let round = 0; round < options.rounds; round++) {
      const ids: string[] = [];
      for (let i = 0; i < (options.handoffs ?? 8); i++) {
        const p = makePayload({ from: 'bob', to: 'alice', ttlMs: 600_000 });
        const res = await fetch(`${hub.url}/api/v1/handoffs/start`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_TOKENS.bob}`, 'content-type': 'application/json' },
          body: p.text,
          // @ts-expect-error undici's fetch takes its dispatcher in the init object
          dispatcher: agent,
        });
        await res.text();
        ids.push(p.id);
      }
      const winners: Winners = new Map();
      child.stdin.write(`${JSON.stringify(ids)}\n`);
      const fromChild = lines.next();
      const http = ids.flatMap((id) => Array.from({ length: options.httpAcceptors ?? 3 }, () => httpAccept(hub, agent, id, winners, result)));
      const inProcess = ids.map((id) => localClaim(local, id, 'local', winners, result));
      await Promise.all([...http, ...inProcess]);
      const childResult = JSON.parse(String((await fromChild).value)) as { won: Record<string, string>; lost: Record<string, string> };
      for (const [id, token] of Object.entries(childResult.won)) addWinner(winners, id, 'child process', token);
      for (const [id, code] of Object.entries(childResult.lost)) {
        if (!LOSER_CODES.has(code)) violate(result, 'unexpected-error', `child claim of ${id} → ${code}`);
      }
      result.operations += ids.length * (2 + (options.httpAcceptors ?? 3));
      for (const id of ids) {
        result.races++;
        await checkOneWinner(local, id, winners.get(id) ?? [], result);
      }
    }
  } finally {
    child.stdin.end();
    await once(child, 'exit');
    await agent.close();
    await local.close();
    await hub.close();
  }
  return result;
}

async function httpAccept(hub: RunningHub, agent: Agent, id: string, winners: Winners, result: SuiteResult): Promise<void> {
  const token = newToken();
  const res = await fetch(`${hub.url}/api/v1/handoffs/${id}/accept`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_TOKENS.alice}`, 'content-type': 'application/json' },
    body: JSON.stringify({ claim_token: token }),
    // @ts-expect-error undici's fetch takes its dispatcher in the init object
    dispatcher: agent,
  });
  const body = (await res.json()) as { claim_token?: string; error?: { code: string } };
  if (res.status === 200) addWinner(winners, id, 'hub', body.claim_token ?? '');
  else if (!LOSER_CODES.has(body.error?.code ?? '')) violate(result, 'unexpected-error', `hub accept of ${id} → ${res.status} ${JSON.stringify(body)}`);
}

async function localClaim(spool: Spool, id: string, who: string, winners: Winners, result: SuiteResult): Promise<void> {
  const token = newToken();
  try {
    await spool.claim(id, 'alice', { token });
    addWinner(winners, id, who, token);
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'UNKNOWN';
    if (!LOSER_CODES.has(code)) violate(result, 'unexpected-error', `${who} claim of ${id} → ${code}`);
  }
}

async function checkOneWinner(spool: Spool, id: string, won: Array<{ who: string; token: string }>, result: SuiteResult): Promise<void> {
  if (won.length !== 1) {
    violate(result, won.length === 0 ? 'no-winner' : 'two-winners', `${id}: ${won.length} winners (${won.map((w) => w.who).join(', ')})`);
    return;
  }
  const record = await spool.get(id);
  const winner = won[0] as { who: string; token: string };
  if (record?.state !== 'claimed' || record.relay.claim_token_sha256 !== sha256Hex(winner.token)) {
    violate(result, 'two-winners', `${id}: ${winner.who} won, but the file holds ${record?.state} with another token`);
  }
}

/**
 * The file-system calls with the claim's rename (handoff/ → claimed/) done as copy + unlink, the
 * way a move across file systems or a careless port would do it: a negative control.
 */
export function copyUnlinkClaims(inner: FsOps = createRealFsOps()): FsOps {
  return {
    ...inner,
    rename: async (from, to) => {
      const isClaim = path.basename(path.dirname(from)) === 'handoff' && path.basename(path.dirname(to)) === 'claimed';
      if (!isClaim) return inner.rename(from, to);
      const bytes = await readFile(from);
      await writeFile(to, bytes);
      await new Promise((resolve) => setImmediate(resolve));
      // "Already gone: someone moved it, so the move is done" — the mistake this control makes.
      await unlink(from).catch(() => undefined);
    },
  };
}

export interface ClaimRaceControlOptions {
  dir: string;
  rounds: number;
  /** Replace the file-system calls (the negative control passes `copyUnlinkClaims()`). */
  fs?: FsOps;
}

/** Three spool instances of one process race for each handoff with their own tokens. */
export async function claimRaceInstances(options: ClaimRaceControlOptions): Promise<SuiteResult> {
  const result = newResult(options.fs ? 'claim races (rename as copy + unlink)' : 'claim races (spool instances)');
  const root = path.join(options.dir, 'spool');
  const fs = options.fs ?? noSyncFsOps();
  const spools = await Promise.all([0, 1, 2].map(() => openSpool({ root, fs })));
  try {
    for (let round = 0; round < options.rounds; round++) {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const p = makePayload({ from: 'bob', to: 'alice', ttlMs: 600_000 });
        await (spools[0] as Spool).put(p.text);
        ids.push(p.id);
      }
      const winners: Winners = new Map();
      await Promise.all(ids.flatMap((id) => spools.flatMap((s, i) => [0, 1].map(() => localClaim(s, id, `instance ${i}`, winners, result)))));
      result.operations += ids.length * 6;
      for (const id of ids) {
        result.races++;
        const won = winners.get(id) ?? [];
        if (won.length !== 1) violate(result, won.length === 0 ? 'no-winner' : 'two-winners', `${id}: ${won.length} winners (${won.map((w) => w.who).join(', ')})`);
      }
    }
  } finally {
    for (const s of spools) await s.close();
  }
  return result;
}

// ------------------------------------------------------------------ deadline boundaries

export interface BoundaryOptions {
  dir: string;
  rounds: number;
  seed?: number;
}

const LEASE_MS = 60_000;

/** Repeats `op` while it answers UNAVAILABLE (another process's transition still in progress), as a client does. */
async function retryUnavailable<T>(op: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await op();
    } catch (err) {
      if ((err as { code?: string }).code !== 'UNAVAILABLE' || n >= 100) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/**
 * The injected clocks start at the real time (whole seconds, as payload times are): during a
 * claim's rename-to-envelope moment the janitor derives the claim's lease from the file's real
 * change time, so a clock hours away from it would judge that lease wrongly.
 */
function nearNow(): number {
  return Math.floor(Date.now() / 1000) * 1000;
}

/**
 * The clocks still jump a lease (or a TTL) ahead of the files' real times, which would make a
 * file just written by the other instance look older than the default recovery grace, as if its
 * writer had died; a grace longer than any jump keeps the two instances' judgement that of a real
 * deployment, where clock and file times agree.
 */
const GRACE_MS = 10 * LEASE_MS;

/**
 * The claimer completes (or rejects) while another spool instance sweeps, each with its own
 * injected clock at lease end − 1, + 0 or + 1 ms. Expired means now > lease_until.
 */
export async function leaseBoundaryRaces(options: BoundaryOptions): Promise<SuiteResult> {
  const result = newResult('lease end: complete/reject vs sweep');
  const random = prng(options.seed ?? 3);
  const root = path.join(options.dir, 'spool');
  const t0 = nearNow();
  const clocks = { claimer: t0, janitor: t0 };
  const claimer = await openSpool({ root, clock: () => clocks.claimer, leaseMs: LEASE_MS, recoveryGraceMs: GRACE_MS, fs: noSyncFsOps() });
  const janitor = await openSpool({ root, clock: () => clocks.janitor, leaseMs: LEASE_MS, recoveryGraceMs: GRACE_MS, fs: noSyncFsOps() });
  try {
    for (let round = 0; round < options.rounds; round++) {
      clocks.claimer = t0;
      const p = makePayload({ from: 'bob', to: 'alice', nowMs: t0, ttlMs: 3600_000 });
      await claimer.put(p.text);
      const claim = await claimer.claim(p.id, 'alice');
      const leaseEnd = Date.parse(claim.leaseUntil);
      const offsets = [-1, 0, 1] as const;
      const mine = offsets[Math.floor(random() * 3)] as number;
      const theirs = offsets[Math.floor(random() * 3)] as number;
      clocks.claimer = leaseEnd + mine;
      clocks.janitor = leaseEnd + theirs;
      const reject = random() < 0.5;
      const settle = retryUnavailable(() =>
        reject ? claimer.reject(p.id, { reason: 'no_answer', by: 'alice', token: claim.token }) : claimer.complete(p.id, claim.token, { outcome: 'connected' }),
      );
      const [settled, swept] = await Promise.allSettled([settle, janitor.sweep()]);
      result.operations += 4;
      result.races++;
      const label = `${p.id} claimer at lease end ${mine >= 0 ? '+' : ''}${mine} ms, janitor at ${theirs >= 0 ? '+' : ''}${theirs} ms`;
      const record = await janitor.get(p.id);
      const sweptIt = swept.status === 'fulfilled' && swept.value.leaseExpired.includes(p.id);
      const settledIt = settled.status === 'fulfilled';
      if (swept.status === 'rejected') violate(result, 'unexpected-error', `${label}: sweep failed: ${String(swept.reason)}`);
      if (settledIt && sweptIt) violate(result, 'two-winners', `${label}: settled and swept`);
      // Each may act only on its own side of the boundary; when both may, exactly one does.
      const claimerMay = mine <= 0;
      const janitorMay = theirs > 0;
      if (claimerMay && janitorMay && !settledIt && !sweptIt) violate(result, 'no-winner', `${label}: neither settled nor swept`);
      if (claimerMay && !janitorMay && !settledIt) violate(result, 'boundary', `${label}: the claimer was refused within its lease`);
      if (!claimerMay && settledIt) violate(result, 'boundary', `${label}: the claimer settled after its lease`);
      if (!janitorMay && sweptIt) violate(result, 'boundary', `${label}: swept before the lease was over`);
      // FENCED, or INVALID_STATE while the janitor's file is not rewritten yet: both say "settled otherwise".
      if (settled.status === 'rejected' && !['FENCED', 'INVALID_STATE'].includes((settled.reason as { code?: string }).code ?? '')) {
        violate(result, 'unexpected-error', `${label}: the losing claimer got ${String((settled.reason as { code?: string }).code)}`);
      }
      const expected = sweptIt ? ['rejected', 'lease_expired'] : !settledIt ? ['claimed', undefined] : reject ? ['rejected', 'no_answer'] : ['archived', 'connected'];
      const actual = [record?.state, record?.state === 'archived' ? record.relay.outcome : record?.relay.reason];
      if (actual[0] !== expected[0] || actual[1] !== expected[1]) violate(result, 'wrong-state', `${label}: ${actual.join(' ')}, expected ${expected.join(' ')}`);
      if (!settledIt && !sweptIt) {
        // Nobody could move it: end the claim so that later rounds sweep only their own.
        clocks.claimer = leaseEnd;
        await claimer.complete(p.id, claim.token, { outcome: 'connected' });
      }
    }
  } finally {
    await claimer.close();
    await janitor.close();
  }
  return result;
}

/** Accept against the expiry sweep, with injected clocks around `expires_at`. */
export async function ttlBoundaryRaces(options: BoundaryOptions): Promise<SuiteResult> {
  const result = newResult('expiry: accept vs sweep');
  const random = prng(options.seed ?? 5);
  const root = path.join(options.dir, 'spool');
  const clocks = { target: nearNow(), janitor: nearNow() };
  const target = await openSpool({ root, clock: () => clocks.target, recoveryGraceMs: GRACE_MS, fs: noSyncFsOps() });
  const janitor = await openSpool({ root, clock: () => clocks.janitor, recoveryGraceMs: GRACE_MS, fs: noSyncFsOps() });
  try {
    for (let round = 0; round < options.rounds; round++) {
      // Each round starts from the real time again, so that the clocks never run far ahead of the
      // file times the janitor derives an in-flight claim's lease from.
      const base = nearNow();
      const p = makePayload({ from: 'bob', to: 'alice', nowMs: base, ttlMs: 15_000 });
      await target.put(p.text);
      const deadline = base + 15_000;
      const offsets = [-1, 0, 1] as const;
      const mine = offsets[Math.floor(random() * 3)] as number;
      const theirs = offsets[Math.floor(random() * 3)] as number;
      clocks.target = deadline + mine;
      clocks.janitor = deadline + theirs;
      const [claimed, swept] = await Promise.allSettled([target.claim(p.id, 'alice', { token: newToken() }), janitor.sweep()]);
      result.operations += 3;
      result.races++;
      const label = `${p.id} accept at expires_at ${mine >= 0 ? '+' : ''}${mine} ms, janitor at ${theirs >= 0 ? '+' : ''}${theirs} ms`;
      const won = claimed.status === 'fulfilled';
      const expired = swept.status === 'fulfilled' && swept.value.expired.includes(p.id);
      const record = await janitor.get(p.id);
      if (swept.status === 'rejected') violate(result, 'unexpected-error', `${label}: sweep failed: ${String(swept.reason)}`);
      if (won && (record?.state !== 'claimed' || expired)) violate(result, 'two-winners', `${label}: accepted, but ${record?.state} (swept: ${expired})`);
      if (!won) {
        const code = (claimed.reason as { code?: string }).code;
        if (code !== 'EXPIRED') violate(result, 'unexpected-error', `${label}: the losing accept got ${String(code)}`);
        if (record?.state !== 'rejected' || record.relay.reason !== 'expired') violate(result, 'wrong-state', `${label}: refused, but ${record?.state} ${record?.relay.reason}`);
      }
      if (mine <= 0 && theirs <= 0 && !won) violate(result, 'boundary', `${label}: refused before it expired`);
      if (mine > 0 && won) violate(result, 'boundary', `${label}: accepted after it expired`);
      if (theirs <= 0 && expired) violate(result, 'boundary', `${label}: swept before it expired`);
      if (won) {
        // End the claim, so that claimed/ (which every sweep reads) stays small.
        await target.complete(p.id, (claimed as PromiseFulfilledResult<{ token: string }>).value.token, { outcome: 'connected' });
      }
    }
  } finally {
    await target.close();
    await janitor.close();
  }
  return result;
}

// ------------------------------------------------------------------ parked polls

export interface ParkedPollOptions {
  dir: string;
  /** Long-polls parked per round (plus a tenth as many id watchers). */
  polls: number;
  rounds?: number;
}

/** Parks many polls and watchers, disconnects most, wakes or times out the rest: nothing leaks. */
export async function parkedPolls(options: ParkedPollOptions): Promise<SuiteResult> {
  const result = newResult('parked polls with disconnects');
  const config = path.join(options.dir, 'hub.json');
  await writeTestConfig(config);
  // One agent parks them all: lift the per-agent cap, this suite is about what is left behind.
  const limits = { maxParkedPerAgent: 1_000_000 };
  const hub = await startHub({ spoolDir: path.join(options.dir, 'spool'), configFile: config, port: 0, logger: createHubLogger({ level: 'silent' }), limits });
  const { hostname, port } = new URL(hub.url);
  const open = (agent: string, route: string): { req: ClientRequest; done: Promise<number> } => {
    const req = httpRequest({ hostname, port, path: `/api/v1/handoffs/${route}`, headers: { authorization: `Bearer ${TEST_TOKENS[agent]}` }, agent: false });
    const done = new Promise<number>((resolve) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(-1));
      });
      req.on('error', () => resolve(-1));
    });
    req.end();
    return { req, done };
  };
  const waiters = hub.app.waiters;
  const until = async (what: string, check: () => boolean): Promise<boolean> => {
    const end = Date.now() + 30_000;
    while (!check()) {
      if (Date.now() > end) {
        violate(result, 'leak', `${what} (parked polls ${waiters.parkedPolls}, watchers ${waiters.watchers})`);
        return false;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  };
  try {
    for (let round = 0; round < (options.rounds ?? 1); round++) {
      const pending = makePayload({ from: 'bob', to: 'alice', ttlMs: 600_000 });
      const watched = await fetch(`${hub.url}/api/v1/handoffs/start`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_TOKENS.bob}`, 'content-type': 'application/json' },
        body: pending.text,
      });
      await watched.text();
      // Alice's polls would return at once while her handoff is pending: accept it first.
      const accepted = await fetch(`${hub.url}/api/v1/handoffs/${pending.id}/accept`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKENS.alice}` } });
      const claimToken = ((await accepted.json()) as { claim_token: string }).claim_token;
      // Gordon's polls: 40% are disconnected, 30% woken by a handoff, 30% time out.
      const n = options.polls;
      const dropped = Array.from({ length: Math.round(n * 0.4) }, () => open('gordon', 'poll?agent=gordon&wait=30'));
      const woken = Array.from({ length: Math.round(n * 0.3) }, () => open('alice', 'poll?agent=alice&wait=30'));
      const timed = Array.from({ length: n - dropped.length - woken.length }, () => open('gordon', 'poll?agent=gordon&wait=1.5'));
      const watchers = Array.from({ length: Math.round(n / 10) }, () => open('bob', `${pending.id}?wait=30`));
      result.operations += n + watchers.length;
      const parkedAll = await until(`${n} polls and ${watchers.length} watchers never all parked`, () => waiters.parkedPolls === n && waiters.watchers === watchers.length);
      if (!parkedAll) continue;
      for (const { req } of [...dropped, ...watchers]) req.destroy();
      const wake = makePayload({ from: 'bob', to: 'alice', ttlMs: 600_000 });
      await fetch(`${hub.url}/api/v1/handoffs/start`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_TOKENS.bob}`, 'content-type': 'application/json' },
        body: wake.text,
      }).then((r) => r.text());
      const wokenStatus = await Promise.all(woken.map((w) => w.done));
      const timedStatus = await Promise.all(timed.map((w) => w.done));
      if (wokenStatus.some((s) => s !== 200)) violate(result, 'wrong-wake', `woken polls answered ${[...new Set(wokenStatus)].join(', ')}`);
      if (timedStatus.some((s) => s !== 204)) violate(result, 'wrong-wake', `timed-out polls answered ${[...new Set(timedStatus)].join(', ')}`);
      await until('waiters left after every poll and watcher ended', () => waiters.parkedPolls === 0 && waiters.watchers === 0);
      const metrics = await (await fetch(`${hub.url}/metrics`)).text();
      if (!/^handoff_hub_parked_polls 0$/m.test(metrics) || !/^handoff_hub_id_watchers 0$/m.test(metrics)) {
        violate(result, 'leak', 'the gauges do not read 0 once every request ended');
      }
      // Settle this round's handoffs so that the next round starts with nothing pending for alice.
      for (const [id, body] of [
        [pending.id, { reason: 'busy', claim_token: claimToken }],
        [wake.id, { reason: 'busy' }],
      ] as const) {
        const settled = await fetch(`${hub.url}/api/v1/handoffs/${id}/reject`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEST_TOKENS.alice}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (settled.status !== 200) violate(result, 'unexpected-error', `reject ${id} → ${settled.status} ${await settled.text()}`);
        else await settled.text();
      }
      result.races++;
    }
  } finally {
    await hub.close();
  }
  return result;
}
