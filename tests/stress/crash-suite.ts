/**
 * Crash safety of the spool, in-process and deterministic.
 *
 * `crashAtEveryStep`: for every operation (put, claim, claim with a proposed token, complete,
 * reject of a pending and of a claimed handoff, expiry sweep, lease-expiry sweep) and every step
 * boundary k, the operation is cut off after k file-system steps (every later call fails, as if the
 * process died). The spool is then reopened twice — with the full recovery and with the default
 * quick one — and the invariants of DESIGN.md §4 are checked through the files and through
 * `get`/`list`, including that the handoff can still make progress.
 *
 * `powerLoss`: a workload of concurrent operations of every kind runs over the power-loss model
 * (power-loss-fs.ts), the power is cut after k steps for every k (or a sample), and the durable
 * image is recovered in both modes: every acknowledged operation must have survived.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { createRealFsOps, openSpool, type FsOps, type HandoffState, type Spool, type SweepResult } from '../../spool/index.js';
import { makePayload, TestFs } from '../helpers/spool-fixtures.js';
import { PowerLossFs } from './power-loss-fs.js';
import { newResult, violate, type SuiteResult } from './report.js';
import { checkAuditAgainstFiles, checkReads, checkTree, decodeOrUndefined, STATE_RANK } from './spool-invariants.js';

const LEASE_MS = 60_000;
const LONG_TTL_MS = 24 * 3600_000;
const RECOVERY_MODES = ['full', 'quick'] as const;
/** Independent runs at once: the work waits on fsyncs far more than on the CPU. */
const PARALLEL = 6;
type RecoveryMode = (typeof RECOVERY_MODES)[number];

/**
 * The real file system without the cost of fsync. A process crash keeps everything the kernel
 * has, so fsync cannot change what these runs see; the power-loss model keeps its own account of
 * what an fsync made durable. Every call is still made, so step counts are those of production.
 */
export function noSyncFsOps(): FsOps {
  return { ...createRealFsOps(), fsync: async () => undefined, fsyncDir: async () => undefined };
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Opens a crashed spool with recovery in `mode`, judging file times a moment after the real now;
 * `exclusive` as the hub opens its own spool.
 */
function openRecovered(root: string, mode: RecoveryMode, exclusive = false): Promise<Spool> {
  const now = Date.now() + 1000;
  return openSpool({ root, clock: () => now, leaseMs: LEASE_MS, fs: noSyncFsOps(), recoveryGraceMs: 0, foreignGraceMs: 0, fullRecovery: mode === 'full', exclusive });
}

/** Opens a copy of `root` (so that each recovery mode starts from the same crashed bytes). */
function openCopy(root: string, dest: string, mode: RecoveryMode): Promise<Spool> {
  cpSync(root, dest, { recursive: true, preserveTimestamps: true });
  return openRecovered(dest, mode);
}

async function recoveryIsIdempotent(spool: Spool, mode: RecoveryMode, result: SuiteResult, label: string): Promise<void> {
  const again = await spool.recover({ full: mode === 'full' });
  const changed = Object.entries(again).filter(([, n]) => n !== 0);
  if (changed.length > 0) violate(result, 'recovery-not-idempotent', `${label}: a second recovery still did ${JSON.stringify(again)}`);
}

function upToDate(bytes: Buffer, state: HandoffState): boolean {
  return bytes.toString('utf8').startsWith(`{"relay":{"state":"${state}"`);
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

// ------------------------------------------------------------------ crash at every step

interface StepContext {
  text: string;
  token?: string;
  t0: number;
}

interface StepScenario {
  name: string;
  before: HandoffState | 'absent';
  after: HandoffState;
  /** Reason (rejected) or outcome (archived) the operation writes. */
  value?: string;
  /**
   * The caller may repeat the operation after a crash (same token, same outcome) and must then get
   * the success it would have had, with its own facts on record.
   */
  repeatable?: boolean;
  setup(s: Spool, id: string, t0: number): Promise<StepContext>;
  run(s: Spool, id: string, ctx: StepContext): Promise<unknown>;
}

const payloadFor = (id: string, t0: number, ttlMs = LONG_TTL_MS): string => makePayload({ id, nowMs: t0, ttlMs }).text;

async function pendingOne(s: Spool, id: string, t0: number, ttlMs?: number): Promise<StepContext> {
  const text = payloadFor(id, t0, ttlMs);
  await s.put(text);
  return { text, t0 };
}

async function claimedOne(s: Spool, id: string, t0: number): Promise<StepContext> {
  const ctx = await pendingOne(s, id, t0);
  return { ...ctx, token: (await s.claim(id, 'alice')).token };
}

/** Every operation that changes a handoff's state, as the brief of issue 6 lists them. */
export const STEP_SCENARIOS: readonly StepScenario[] = Object.freeze([
  { name: 'put', before: 'absent', after: 'pending', repeatable: true, setup: async (_s, id, t0) => ({ text: payloadFor(id, t0), t0 }), run: (s, _id, ctx) => s.put(ctx.text) },
  { name: 'claim', before: 'pending', after: 'claimed', setup: (s, id, t0) => pendingOne(s, id, t0), run: (s, id) => s.claim(id, 'alice') },
  {
    name: 'claim with a proposed token',
    before: 'pending',
    after: 'claimed',
    repeatable: true,
    setup: async (s, id, t0) => ({ ...(await pendingOne(s, id, t0)), token: newToken() }),
    run: (s, id, ctx) => s.claim(id, 'alice', { token: ctx.token }),
  },
  {
    name: 'complete',
    repeatable: true,
    before: 'claimed',
    after: 'archived',
    value: 'connected',
    setup: claimedOne,
    run: (s, id, ctx) => s.complete(id, ctx.token as string, { outcome: 'connected' }),
  },
  {
    name: 'reject of a pending handoff',
    repeatable: true,
    before: 'pending',
    after: 'rejected',
    value: 'busy',
    setup: (s, id, t0) => pendingOne(s, id, t0),
    run: (s, id) => s.reject(id, { reason: 'busy', by: 'alice' }),
  },
  {
    name: 'reject of a claimed handoff',
    repeatable: true,
    before: 'claimed',
    after: 'rejected',
    value: 'no-answer',
    setup: claimedOne,
    run: (s, id, ctx) => s.reject(id, { reason: 'no-answer', by: 'alice', token: ctx.token as string }),
  },
  {
    name: 'expiry sweep',
    before: 'pending',
    after: 'rejected',
    value: 'expired',
    setup: (s, id, t0) => pendingOne(s, id, t0, 1_000),
    run: (s, _id, ctx) => s.sweep(ctx.t0 + 5_000),
  },
  {
    name: 'lease-expiry sweep',
    before: 'claimed',
    after: 'rejected',
    value: 'lease_expired',
    setup: claimedOne,
    run: (s, _id, ctx) => s.sweep(ctx.t0 + LEASE_MS + 5_000),
  },
]);

export interface CrashAtEveryStepOptions {
  /** A scratch directory the suite may fill (the caller removes it). */
  scratch: string;
  /** Scenario names to run (default: all). */
  only?: readonly string[];
  /** How many times to repeat every scenario (the long profile repeats with fresh ids). */
  rounds?: number;
}

/** Cuts every operation after every step and checks recovery in both modes. */
export async function crashAtEveryStep(options: CrashAtEveryStepOptions): Promise<SuiteResult> {
  const result = newResult('crash at every step');
  const t0 = Math.floor(Date.now() / 1000) * 1000;
  const scenarios = STEP_SCENARIOS.filter((s) => !options.only || options.only.includes(s.name));
  for (let round = 0; round < (options.rounds ?? 1); round++) {
    for (const sc of scenarios) {
      const total = await countSteps(sc, options.scratch, t0);
      result.operations++;
      // Each cut point has a directory of its own, so they run side by side (fsync latency bound).
      await inParallel(Array.from({ length: total + 1 }, (_, k) => k), PARALLEL, async (k) => {
        await crashOnce(sc, k, total, options.scratch, t0, result);
        if (k < total) result.crashes++;
      });
    }
  }
  return result;
}

async function countSteps(sc: StepScenario, scratch: string, t0: number): Promise<number> {
  const dir = mkdtempSync(path.join(scratch, 'count-'));
  try {
    const fs = new TestFs(noSyncFsOps());
    const s = await openSpool({ root: path.join(dir, 'spool'), clock: () => t0, leaseMs: LEASE_MS, fs: fs.ops });
    const ctx = await sc.setup(s, 'steps', t0);
    fs.reset();
    await sc.run(s, 'steps', ctx);
    await s.close();
    return fs.mutating;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function crashOnce(sc: StepScenario, k: number, total: number, scratch: string, t0: number, result: SuiteResult): Promise<void> {
  const dir = mkdtempSync(path.join(scratch, 'k-'));
  const root = path.join(dir, 'spool');
  const id = `h-${k}`;
  try {
    const fs = new TestFs(noSyncFsOps());
    const s = await openSpool({ root, clock: () => t0, leaseMs: LEASE_MS, fs: fs.ops });
    const ctx = await sc.setup(s, id, t0);
    fs.reset();
    fs.crashAfter = k;
    result.operations++;
    const outcome = await sc.run(s, id, ctx).then(
      () => 'resolved',
      () => 'rejected',
    );
    await s.close();
    if (k < total && outcome === 'resolved') violate(result, 'acked-despite-crash', `${sc.name}: resolved although cut off after ${k} of ${total} steps`);
    if (k === total && outcome === 'rejected') violate(result, 'failed-without-crash', `${sc.name}: failed with all ${total} steps allowed`);
    for (const mode of RECOVERY_MODES) {
      await checkAfterCrash(sc, id, ctx, k === total, root, path.join(dir, mode), mode, result, `${sc.name} k=${k}/${total} ${mode}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function checkAfterCrash(
  sc: StepScenario,
  id: string,
  ctx: StepContext,
  finished: boolean,
  crashedRoot: string,
  dest: string,
  mode: RecoveryMode,
  result: SuiteResult,
  label: string,
): Promise<void> {
  const spool = await openCopy(crashedRoot, dest, mode);
  try {
    const places = await checkTree(dest, result, label);
    checkAuditAgainstFiles(dest, places, result, label);
    await checkReads(spool, dest, [id], result, label);
    const place = places.get(id)?.[0];
    if (place === undefined) {
      if (sc.before !== 'absent' || finished) violate(result, 'lost-ack', `${label}: ${id} is gone`);
      await recoveryIsIdempotent(spool, mode, result, label);
      return;
    }
    if (place.state !== sc.before && place.state !== sc.after) violate(result, 'wrong-state', `${label}: ${id} is ${place.state}`);
    if (finished && place.state !== sc.after) violate(result, 'lost-ack', `${label}: finished but ${id} is ${place.state}`);
    if (decodeOrUndefined(place.bytes)?.payloadText !== ctx.text) violate(result, 'payload-changed', `${label}: payload bytes differ`);
    const mustBeCurrent = place.state === 'claimed' || (mode === 'full' && place.state !== 'pending');
    if (mustBeCurrent && !upToDate(place.bytes, place.state)) violate(result, 'not-rolled-forward', `${label}: ${place.rel} is not an up-to-date envelope`);
    const record = await spool.get(id);
    const relay = record?.relay;
    if (place.state === 'claimed' && relay?.claimed_by !== 'alice') violate(result, 'relay-facts', `${label}: claimed_by ${relay?.claimed_by}`);
    const value = place.state === 'archived' ? relay?.outcome : place.state === 'rejected' ? relay?.reason : undefined;
    if (place.state === sc.after && sc.value !== undefined) {
      const allowed = finished ? [sc.value] : [sc.value, 'recovered', 'expired', 'lease_expired'];
      if (!allowed.includes(value ?? '')) violate(result, 'relay-facts', `${label}: ${place.state} with ${value}`);
    }
    await recoveryIsIdempotent(spool, mode, result, label);
    await makesProgress(spool, sc, id, ctx, place.state, result, label);
  } finally {
    await spool.close();
  }
}

/**
 * A handoff left by a crash is never stuck: the caller can repeat its operation and get the answer
 * it would have had; otherwise it can still be claimed, or it expires.
 */
async function makesProgress(spool: Spool, sc: StepScenario, id: string, ctx: StepContext, state: HandoffState, result: SuiteResult, label: string): Promise<void> {
  const far = Date.now() + 10 * LONG_TTL_MS;
  try {
    if (sc.repeatable) {
      await sc.run(spool, id, ctx);
      const record = await spool.get(id);
      const value = record?.state === 'archived' ? record.relay.outcome : record?.state === 'rejected' ? record.relay.reason : undefined;
      if (record?.state !== sc.after || value !== sc.value) violate(result, 'repeat-not-idempotent', `${label}: repeated after the crash → ${record?.state} ${value ?? ''}`);
      if (sc.after === 'claimed' && record?.relay.claim_token_sha256 !== sha256Hex(ctx.token as string)) violate(result, 'repeat-not-idempotent', `${label}: the repeated claim does not hold its token`);
    } else if (state === 'pending' && sc.name === 'expiry sweep') {
      const swept = await spool.sweep(far);
      if (!swept.expired.includes(id)) violate(result, 'stuck', `${label}: a later sweep did not expire ${id}`);
    } else if (state === 'pending') {
      const claim = await spool.claim(id, 'alice');
      const done = await spool.complete(id, claim.token, { outcome: 'connected' });
      if (done.state !== 'archived') violate(result, 'stuck', `${label}: complete after recovery → ${done.state}`);
    } else if (state === 'claimed') {
      const swept = await spool.sweep(far);
      if (!swept.leaseExpired.includes(id)) violate(result, 'stuck', `${label}: a later sweep did not end the stale claim of ${id}`);
    }
  } catch (err) {
    violate(result, sc.repeatable ? 'repeat-not-idempotent' : 'stuck', `${label}: ${state} handoff: ${(err as Error).message}`);
  }
}

// ------------------------------------------------------------------ power loss

type Script = 'pending' | 'claim-only' | 'complete' | 'reject-claimed' | 'reject-pending' | 'expire' | 'lease';

interface PlannedHandoff {
  id: string;
  script: Script;
  text: string;
  token: string;
}

/** States (and reasons or outcomes) each script may leave a handoff in, whatever was acknowledged. */
const ALLOWED: Readonly<Record<Script, Partial<Record<HandoffState, readonly string[]>>>> = Object.freeze({
  pending: { pending: [] },
  'claim-only': { pending: [], claimed: [] },
  complete: { pending: [], claimed: [], archived: ['connected', 'recovered'] },
  'reject-claimed': { pending: [], claimed: [], rejected: ['no-answer', 'recovered'] },
  'reject-pending': { pending: [], rejected: ['busy', 'recovered', 'expired'] },
  expire: { pending: [], rejected: ['expired', 'recovered'] },
  lease: { pending: [], claimed: [], rejected: ['lease_expired', 'recovered'] },
});

export const SCRIPTS: readonly Script[] = Object.freeze(Object.keys(ALLOWED) as Script[]);

interface Acks {
  put: Set<string>;
  claim: Map<string, string>;
  complete: Set<string>;
  reject: Set<string>;
  sweeps: SweepResult[];
}

/** A deterministic pseudo-random generator (mulberry32), so that a failing seed can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One handoff per script (and `extra` more, picked at random), with fixed texts and tokens. */
export function planWorkload(t0: number, random: () => number, extra = 0): PlannedHandoff[] {
  const scripts = [...SCRIPTS];
  for (let i = 0; i < extra; i++) scripts.push(SCRIPTS[Math.floor(random() * SCRIPTS.length)] as Script);
  return scripts.map((script, i) => {
    const id = `pl-${i}-${script}`;
    const ttlMs = script === 'expire' ? 1_000 : LONG_TTL_MS;
    return { id, script, text: makePayload({ id, nowMs: t0, ttlMs }).text, token: newToken() };
  });
}

export interface PowerLossOptions {
  scratch: string;
  /** Number of random workloads (the first is one handoff per script, the others larger). */
  workloads?: number;
  /** Cut after every k-th step (1 = every step boundary). */
  stride?: number;
  seed?: number;
  /** Negative control: make directory fsyncs ineffective during the workload. */
  disableDirSync?: boolean;
  /** Model the halves of a rename as independently durable (POSIX alone; see power-loss-fs.ts). */
  strictRenames?: boolean;
  /** Cut points to try (instead of every stride-th one), for the negative control. */
  cuts?: readonly number[];
  /**
   * Run the workload and recovery on an exclusive spool (the hub's), which does not fsync the
   * directory a file moves out of: a power cut can leave it at both names.
   */
  exclusive?: boolean;
}

/** Runs the workloads with a power cut at every (stride-th) step and checks what survived. */
export async function powerLoss(options: PowerLossOptions): Promise<SuiteResult> {
  const variant = options.disableDirSync ? ' (dir fsync disabled)' : options.strictRenames ? ' (strict renames)' : '';
  const result = newResult(`power loss${options.exclusive ? ', exclusive spool' : ''}${variant}`);
  const random = prng(options.seed ?? 1);
  const t0 = Math.floor(Date.now() / 1000) * 1000;
  for (let w = 0; w < (options.workloads ?? 1); w++) {
    const plan = planWorkload(t0, random, w === 0 ? 0 : 3 + Math.floor(random() * 8));
    const total = await runWorkload(plan, undefined, options, t0, result, `workload ${w} uncut`);
    const stride = options.stride ?? 1;
    const cuts = options.cuts ?? Array.from({ length: Math.floor(total / stride) + 1 }, (_, i) => Math.min(total, i * stride + (w % stride)));
    await inParallel(cuts, PARALLEL, async (k) => {
      await runWorkload(plan, k, options, t0, result, `workload ${w} cut at ${k}/${total}`);
      result.crashes++;
    });
  }
  return result;
}

/** Runs one workload over the power-loss model, cut after `cut` steps; returns the steps it took. */
async function runWorkload(plan: PlannedHandoff[], cut: number | undefined, options: PowerLossOptions, t0: number, result: SuiteResult, label: string): Promise<number> {
  const base = mkdtempSync(path.join(options.scratch, 'pl-'));
  try {
    const model = new PowerLossFs(base, { strictRenames: options.strictRenames }, noSyncFsOps());
    const clock = { now: t0 };
    const root = path.join(base, 'spool');
    const spool = await openSpool({ root, clock: () => clock.now, leaseMs: LEASE_MS, fs: model.ops, recoveryGraceMs: 0, foreignGraceMs: 0, exclusive: options.exclusive });
    // The layout is durable before the workload starts; the control breaks only the workload's syncs.
    if (options.disableDirSync) model.dirSync = false;
    const start = model.steps;
    if (cut !== undefined) model.cutAfter(cut);
    const acks: Acks = { put: new Set(), claim: new Map(), complete: new Set(), reject: new Set(), sweeps: [] };
    const all = <T>(items: PlannedHandoff[], op: (h: PlannedHandoff) => Promise<T>, ack: (h: PlannedHandoff, value: T) => void) =>
      Promise.all(
        items.map((h) => {
          result.operations++;
          return op(h).then(
            (value) => ack(h, value),
            () => undefined,
          );
        }),
      );
    const having = (...scripts: Script[]) => plan.filter((h) => scripts.includes(h.script));

    await all(plan, (h) => spool.put(h.text), (h) => acks.put.add(h.id));
    await all(having('lease').filter((h) => acks.put.has(h.id)), (h) => spool.claim(h.id, 'alice', { token: h.token }), (h, c) => acks.claim.set(h.id, c.token));
    clock.now = t0 + LEASE_MS + 5_000;
    const put = (h: PlannedHandoff) => acks.put.has(h.id);
    result.operations++;
    await Promise.all([
      all(having('claim-only', 'complete', 'reject-claimed').filter(put), (h) => spool.claim(h.id, 'alice', { token: h.token }), (h, c) => acks.claim.set(h.id, c.token)),
      all(having('reject-pending').filter(put), (h) => spool.reject(h.id, { reason: 'busy', by: 'alice' }), (h) => acks.reject.add(h.id)),
      spool.sweep(clock.now).then(
        (swept) => void acks.sweeps.push(swept),
        () => undefined,
      ),
    ]);
    const claimed = (h: PlannedHandoff) => acks.claim.has(h.id);
    await Promise.all([
      all(having('complete').filter(claimed), (h) => spool.complete(h.id, h.token, { outcome: 'connected' }), (h) => acks.complete.add(h.id)),
      all(having('reject-claimed').filter(claimed), (h) => spool.reject(h.id, { reason: 'no-answer', by: 'alice', token: h.token }), (h) => acks.reject.add(h.id)),
    ]);
    const steps = model.steps - start;
    await spool.close();
    const before = result.violations.length;
    for (const mode of RECOVERY_MODES) {
      const image = path.join(base, `image-${mode}`);
      model.materialize(image);
      const recovered = await openRecovered(path.join(image, 'spool'), mode, options.exclusive);
      try {
        await checkAcks(recovered, path.join(image, 'spool'), plan, acks, result, `${label} ${mode}`);
        await recoveryIsIdempotent(recovered, mode, result, `${label} ${mode}`);
      } finally {
        await recovered.close();
      }
    }
    if (result.violations.length > before && (result.notes ??= []).length < 3) {
      result.notes.push(`${label}: the last steps before the cut were ${model.trace.slice(-6).join('; ')}`);
    }
    return steps;
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

async function checkAcks(spool: Spool, root: string, plan: PlannedHandoff[], acks: Acks, result: SuiteResult, label: string): Promise<void> {
  const places = await checkTree(root, result, label);
  checkAuditAgainstFiles(root, places, result, label);
  await checkReads(spool, root, plan.map((h) => h.id), result, label);
  const sweptAs = new Map<string, string>();
  for (const s of acks.sweeps) {
    for (const id of s.expired) sweptAs.set(id, 'expired');
    for (const id of s.leaseExpired) sweptAs.set(id, 'lease_expired');
  }
  for (const h of plan) {
    const place = places.get(h.id)?.[0];
    const lost = (what: string) => violate(result, 'lost-ack', `${label}: ${h.id} (${h.script}) ${what}`);
    if (place === undefined) {
      if (acks.put.has(h.id)) lost('was stored (put acknowledged) but is gone');
      continue;
    }
    if (decodeOrUndefined(place.bytes)?.payloadText !== h.text) violate(result, 'payload-changed', `${label}: ${h.id} payload bytes differ`);
    const relay = (await spool.get(h.id))?.relay;
    const value = place.state === 'archived' ? relay?.outcome : place.state === 'rejected' ? relay?.reason : undefined;
    const allowed = ALLOWED[h.script][place.state];
    if (!allowed || (allowed.length > 0 && !allowed.includes(value ?? ''))) {
      violate(result, 'wrong-state', `${label}: ${h.id} (${h.script}) is ${place.state} ${value ?? ''}`);
    }
    const token = acks.claim.get(h.id);
    if (token !== undefined) {
      if (STATE_RANK[place.state] < STATE_RANK.claimed) lost(`claim acknowledged but ${place.state}`);
      else if (place.state === 'claimed' && relay?.claim_token_sha256 !== sha256Hex(token)) lost('claim acknowledged but its token no longer holds it');
    }
    if (acks.complete.has(h.id) && (place.state !== 'archived' || value !== 'connected')) lost(`completion acknowledged but ${place.state} ${value ?? ''}`);
    if (acks.reject.has(h.id) && (place.state !== 'rejected' || value !== (h.script === 'reject-pending' ? 'busy' : 'no-answer'))) {
      lost(`rejection acknowledged but ${place.state} ${value ?? ''}`);
    }
    const swept = sweptAs.get(h.id);
    if (swept !== undefined && (place.state !== 'rejected' || value !== swept)) lost(`sweep acknowledged ${swept} but ${place.state} ${value ?? ''}`);
  }
}
