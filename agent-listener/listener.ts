/**
 * The agent listener: gets handoffs addressed to one agent, verifies, accepts, writes the
 * bootstrap file, redials the caller (or messages them), follows the call and settles the handoff.
 *
 * Delivery of one handoff, each step journaled durably before the next (see `state.ts`; the
 * bootstrap file is the one step that is not journaled, see below):
 *
 *   verify ──bad──▶ reject with the typed code (security event, no content logged)
 *     │ ok
 *   accept ──lost race / expired──▶ nothing to do
 *     │ token
 *   journal "accepted" and bootstrap file, side by side
 *     │
 *   voice: number? ──none/opted out──▶ reject no_number / opted_out
 *          "dial_intent" → dial → "dialed" (sid) → follow → "call_ended"
 *            connected → wait for the voice server to complete, else complete `connected`
 *            otherwise → one fallback SMS ("sms_intent" → "sms_sent") → reject with the call's end
 *   sms/whatsapp: "message_intent" → first message = resume hint → complete `messaged`
 *
 * A journal found in `dial_intent`, `sms_intent` or `message_intent` after a restart means the
 * side effect may have happened: it is never repeated.
 *
 * The bootstrap file needs no journal step of its own: it is rewritten by every delivery that
 * resumes before `dial_intent`, so a journal in `accepted` says all that a restart needs. (Earlier
 * versions journaled `bootstrapped` after it, one durable write more before the call; such a
 * journal resumes exactly as `accepted` does.)
 */
import { randomBytes } from 'node:crypto';
import {
  HandoffError,
  isoMillis,
  parseJsonDocument,
  parsePayload,
  toHandoffError,
  verifyPayload,
  isJsonObject,
  parseIsoTime,
  type KeyRing,
  type ParsedPayload,
} from '../protocol/index.js';
import { writeBootstrap } from './bootstrap.js';
import { callEnd, type CallEnd, type CallInfo, type DialTarget, type Dialer } from './dialer.js';
import type { DeliveryEnd, ListenerMetrics } from './metrics.js';
import { composeFallbackSms } from './sms.js';
import { assertDialTarget } from './twiml.js';
import type { DeliveryJournal, ListenerState } from './state.js';

/** One pending handoff as a source delivers it: its id and the exact payload text. */
export interface WorkItem {
  id: string;
  text: string;
}

/** Where handoffs come from and where their transitions go: the hub, or a local spool. */
export interface WorkSource {
  readonly kind: 'hub' | 'local';
  /** Waits for pending handoffs for this agent; `[]` when nothing came in time. */
  next(signal: AbortSignal): Promise<WorkItem[]>;
  /** Claims with the claimer's proposed token; repeating it with the same token is idempotent. */
  accept(id: string, token: string): Promise<{ token: string; leaseUntil: string }>;
  renew(id: string, token: string): Promise<{ leaseUntil: string }>;
  complete(id: string, token: string, outcome: string, notes?: string): Promise<void>;
  /** Rejects a pending handoff (no token) or a claimed one (with the claim token). */
  reject(id: string, reason: string, token?: string): Promise<void>;
  close(): Promise<void>;
}

/** Structured logger (pino's shape). Never pass numbers, tokens or transcript text. */
export interface Logger {
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
}

/** Follows a call to its end; resolves with the final call, rejects on abort. */
export type CallFollower = (sid: string, handoffId: string, signal: AbortSignal) => Promise<CallInfo>;

export interface TelephonyOptions {
  /** This agent's Twilio number (E.164). */
  from: string;
  target: DialTarget;
  /** Speak the resume hint with `<Say>` before connecting (stream targets). */
  leadIn: boolean;
  ringTimeoutSec: number;
  machineDetection: boolean;
  /** The public status-callback URL for a handoff, when the listener has a webhook endpoint. */
  statusCallbackUrl?: (handoffId: string) => string;
  fallbackSms: boolean;
  /** After a connected call ends, how long the voice server has to complete the handoff itself. */
  completeAfterSec: number;
}

/** What the listener reports about each handoff it handles (for `--json` lines and tests). */
export interface ListenerEvent {
  at: string;
  handoff_id: string;
  event: 'refused' | 'accepted' | 'bootstrap_written' | 'dialed' | 'call_ended' | 'sms_sent' | 'messaged' | 'completed' | 'rejected' | 'skipped' | 'error';
  code?: string;
  detail?: string;
}

export interface ListenerOptions {
  agent: string;
  keys: KeyRing;
  source: WorkSource;
  dialer: Dialer;
  state: ListenerState;
  bootstrapDir: string;
  telephony: TelephonyOptions;
  /** The listener's contact list: caller hash → E.164 number. */
  contacts: ReadonlyMap<string, string>;
  followCall: CallFollower;
  clock?: () => number;
  logger: Logger;
  onEvent?: (event: ListenerEvent) => void;
  /** First and maximum back-off after a failed fetch (the hub is down or restarting). */
  backoffMs?: { initial: number; max: number };
  /** Pause before a failed delivery is tried again; default 2 s. */
  retryMs?: number;
  /** Counts and latencies for Prometheus (`createListenerMetrics`); nothing is measured without it. */
  metrics?: ListenerMetrics;
}

/** Sleeps `ms`, resolving early (without error) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

const IDLE_REPOLL_MS = 250;
const FAILED_RETRY_MS = 2000;
/** How often finished journals past their retention are deleted (at start, then while running). */
const PRUNE_EVERY_MS = 3600_000;

/** Codes that mean "someone else settled this handoff": not an error of ours. */
const SETTLED_ELSEWHERE = new Set(['ALREADY_CLAIMED', 'NOT_FOUND', 'EXPIRED', 'INVALID_STATE', 'FENCED']);

export class Listener {
  private readonly abort = new AbortController();
  private readonly inFlight = new Map<string, Promise<void>>();
  /**
   * Per handoff in flight, settles once the source stops offering it to us: its claim was
   * answered, or its delivery ended. Until then every poll returns it again at once.
   */
  private readonly claiming = new Map<string, { done: Promise<void>; settle: () => void }>();
  /** Handoffs whose delivery failed, and when they may be tried again. */
  private readonly retryAfter = new Map<string, number>();
  /** Timers that try failed deliveries again (`scheduleRetry`); cleared by `stop`. */
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  /**
   * When Twilio acknowledged each call this process placed, until the call is followed to its
   * end: dial → answer is measured only from an acknowledgment this process saw itself.
   */
  private readonly dialAckMs = new Map<string, number>();
  private readonly clock: () => number;
  private loopPromise: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private pruning: Promise<void> | undefined;
  private lastPruneMs = Number.NEGATIVE_INFINITY;

  constructor(private readonly opts: ListenerOptions) {
    if (!opts.agent) throw new HandoffError('CONFIG', 'listener needs an agent name');
    if (!(opts.telephony.ringTimeoutSec > 0)) throw new HandoffError('CONFIG', 'ring timeout must be positive');
    if (!(opts.telephony.completeAfterSec >= 0)) throw new HandoffError('CONFIG', 'completeAfterSec must be ≥ 0');
    assertDialTarget(opts.telephony.target);
    this.clock = opts.clock ?? Date.now;
  }

  /** Resumes unfinished deliveries from the journal, then starts fetching work. */
  start(): void {
    if (this.loopPromise) return;
    this.resumeUnfinished();
    this.pruneJournals();
    this.loopPromise = this.loop();
  }

  /**
   * Deletes finished journals past their retention (they hold payloads: transcripts, numbers),
   * at most once per PRUNE_EVERY_MS, in the background.
   */
  private pruneJournals(): void {
    const now = this.clock();
    if (this.pruning || now - this.lastPruneMs < PRUNE_EVERY_MS) return;
    this.lastPruneMs = now;
    this.pruning = this.opts.state
      .prune(now)
      .then(
        (removed) => {
          if (removed > 0) this.opts.logger.info({ removed }, 'old journals deleted');
        },
        (err: unknown) => this.opts.logger.warn({ code: toHandoffError(err).code }, 'deleting old journals failed'),
      )
      .finally(() => {
        this.pruning = undefined;
      });
  }

  /**
   * Resumes every journaled delivery that is neither running nor cooling down after a failure.
   * Called at start and after each fetch, so a delivery whose step failed (hub briefly down, disk
   * error) is retried instead of being left claimed until its lease runs out.
   */
  private resumeUnfinished(): void {
    for (const journal of this.opts.state.unfinished()) {
      if (this.inFlight.has(journal.handoff_id) || this.coolingDown(journal.handoff_id)) continue;
      void this.track(journal.handoff_id, () => this.deliver(journal, { resumed: true }));
    }
  }

  /** Handles one item now (used by the loop and by tests). */
  handle(item: WorkItem): Promise<void> {
    return this.track(item.id, () => this.process(item));
  }

  /**
   * Stops fetching, lets in-flight deliveries reach their next durable step (waits are aborted,
   * side effects are not interrupted), and closes the source. Idempotent.
   */
  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      this.abort.abort();
      for (const timer of this.retryTimers) clearTimeout(timer);
      this.retryTimers.clear();
      await this.loopPromise;
      await this.pruning;
      await Promise.allSettled([...this.inFlight.values()]);
      await this.opts.source.close();
    })();
    return this.stopPromise;
  }

  /** Resolves once the fetch loop and every in-flight delivery are idle (tests). */
  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()]);
  }

  private get signal(): AbortSignal {
    return this.abort.signal;
  }

  private coolingDown(id: string): boolean {
    const until = this.retryAfter.get(id);
    if (until === undefined) return false;
    if (this.clock() >= until) this.retryAfter.delete(id);
    return this.clock() < until;
  }

  private track(id: string, work: () => Promise<void>): Promise<void> {
    const existing = this.inFlight.get(id);
    if (existing) return existing;
    let settle!: () => void;
    const done = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.claiming.set(id, { done, settle });
    const p = work()
      .catch((err: unknown) => {
        const e = toHandoffError(err);
        this.scheduleRetry(id);
        this.opts.logger.error({ handoff_id: id, code: e.code, err: e.message }, 'handoff delivery failed');
        this.emit(id, 'error', e.code, e.message);
        this.opts.metrics?.recordError(e.code);
      })
      .finally(() => {
        this.inFlight.delete(id);
        this.claimAnswered(id);
      });
    this.inFlight.set(id, p);
    return p;
  }

  /**
   * Tries a failed delivery again after the pause, on its own timer: once we hold the claim the
   * hub has nothing pending for us, so the next poll may park for its whole wait (25 s by
   * default) while the caller waits for the call. A delivery with no journal (it failed before
   * its claim) comes back with the next poll instead.
   */
  private scheduleRetry(id: string): void {
    const retryMs = this.opts.retryMs ?? FAILED_RETRY_MS;
    this.retryAfter.set(id, this.clock() + retryMs);
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      this.retryAfter.delete(id);
      const journal = this.opts.state.get(id);
      if (this.signal.aborted || !journal || journal.phase === 'done' || this.inFlight.has(id)) return;
      void this.track(id, () => this.deliver(journal, { resumed: true }));
    }, retryMs);
    this.retryTimers.add(timer);
  }

  private claimAnswered(id: string): void {
    this.claiming.get(id)?.settle();
    this.claiming.delete(id);
  }

  /**
   * The source offered only handoffs we are already handling. Waits until their claims are
   * answered (then the hub stops offering them and the next poll parks), at most IDLE_REPOLL_MS,
   * so that a handoff arriving meanwhile is picked up at once rather than after a fixed pause.
   * Handoffs cooling down after a failure are not being claimed: then the pause is the full one.
   */
  private async pauseForClaims(items: readonly WorkItem[]): Promise<void> {
    const claims = items.map((item) => this.claiming.get(item.id)?.done);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const pause = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, IDLE_REPOLL_MS);
      onAbort = resolve;
      this.signal.addEventListener('abort', onAbort, { once: true });
    });
    const waits: Promise<unknown>[] = [pause];
    if (claims.every((c) => c !== undefined)) waits.push(Promise.all(claims));
    try {
      await Promise.race(waits);
    } finally {
      clearTimeout(timer);
      if (onAbort) this.signal.removeEventListener('abort', onAbort);
    }
  }

  private async loop(): Promise<void> {
    const backoff = this.opts.backoffMs ?? { initial: 250, max: 10_000 };
    let delay = backoff.initial;
    while (!this.signal.aborted) {
      try {
        const items = await this.opts.source.next(this.signal);
        delay = backoff.initial;
        this.resumeUnfinished();
        this.pruneJournals();
        const fresh = items.filter((item) => !this.inFlight.has(item.id) && !this.coolingDown(item.id));
        for (const item of fresh) void this.handle(item);
        // The hub answers a poll at once while a handoff is pending, including one we are still
        // accepting; pausing when nothing was new keeps that from becoming a busy loop.
        if (items.length > 0 && fresh.length === 0) await this.pauseForClaims(items);
      } catch (err) {
        if (this.signal.aborted) break;
        const e = toHandoffError(err);
        this.opts.logger.warn({ code: e.code, retry_in_ms: delay, err: e.message }, 'fetching handoffs failed; backing off');
        await sleep(delay, this.signal);
        // Full jitter keeps a fleet of listeners from reconnecting to a restarted hub in lockstep.
        delay = Math.min(backoff.max, delay * 2) * (0.5 + Math.random() / 2);
      }
    }
  }

  private emit(id: string, event: ListenerEvent['event'], code?: string, detail?: string): void {
    this.opts.onEvent?.({ at: isoMillis(this.clock()), handoff_id: id, event, code, detail });
  }

  private async process(item: WorkItem): Promise<void> {
    const { agent, keys, state, source, logger } = this.opts;
    if (state.get(item.id) && state.get(item.id)?.phase !== 'done') return this.deliver(state.get(item.id) as DeliveryJournal);
    const verdict = verifyPayload(item.text, { agent, keys, nowMs: this.clock(), seen: (from, id) => state.seen(from, id) });
    if (!verdict.ok) {
      // A security event: the code and the ids only, never the content.
      logger.warn({ security: true, handoff_id: item.id, from_agent: verdict.fromAgent, code: verdict.code }, 'handoff refused');
      this.emit(item.id, 'refused', verdict.code, verdict.message);
      await this.settle(() => source.reject(item.id, verdict.code));
      this.count('refused', verdict.code);
      return;
    }
    // The claim token is chosen here and journaled before asking, so that a crash between the
    // claim and hearing its answer can be resumed by repeating the claim with the same token.
    const now = isoMillis(this.clock());
    const journal = await state.save({
      handoff_id: item.id,
      from_agent: verdict.payload.from_agent,
      payload_text: verdict.text,
      claim_token: randomBytes(32).toString('base64url'),
      lease_until: '',
      accepted_at: now,
      phase: 'accepting',
      updated_at: now,
    });
    await this.deliver(journal);
  }

  /**
   * Before a resumed delivery goes on to dial, renews its claim: after a long outage the lease may
   * be over, and the hub may already have told the initiator that the handoff failed; a call then
   * would reach a caller nobody is tracking any more. Undefined (journal done) when the claim is
   * gone.
   */
  private async reconfirmClaim(journal: DeliveryJournal): Promise<DeliveryJournal | undefined> {
    const id = journal.handoff_id;
    let renewed: { leaseUntil: string };
    try {
      renewed = await this.opts.source.renew(id, journal.claim_token);
    } catch (err) {
      const e = toHandoffError(err);
      if (!SETTLED_ELSEWHERE.has(e.code)) throw e;
      this.opts.logger.warn({ handoff_id: id, code: e.code }, 'claim lost while the delivery was interrupted; not dialing');
      await this.opts.state.advance(id, 'done', { outcome: `claim_lost:${e.code}`, finished_at: isoMillis(this.clock()) }, isoMillis(this.clock()));
      this.emit(id, 'skipped', e.code);
      this.count('skipped', `claim_lost:${e.code}`);
      return undefined;
    }
    return this.opts.state.advance(id, journal.phase, { lease_until: renewed.leaseUntil }, isoMillis(this.clock()));
  }

  /**
   * Claims a journaled handoff with its proposed token and journals the claim, writing the
   * bootstrap file alongside (neither needs the other, and a caller is waiting); undefined when
   * someone else has it.
   */
  private async claim(id: string, payload: ParsedPayload): Promise<DeliveryJournal | undefined> {
    const { state, source, logger } = this.opts;
    const journal = state.get(id) as DeliveryJournal;
    let acceptance: { token: string; leaseUntil: string };
    try {
      acceptance = await source.accept(id, journal.claim_token);
      this.claimAnswered(id);
    } catch (err) {
      this.claimAnswered(id);
      const e = toHandoffError(err);
      if (!SETTLED_ELSEWHERE.has(e.code)) throw e;
      logger.info({ handoff_id: id, code: e.code }, 'handoff not accepted');
      await state.advance(id, 'done', { outcome: `not_claimed:${e.code}`, finished_at: isoMillis(this.clock()) }, isoMillis(this.clock()));
      this.emit(id, 'skipped', e.code);
      this.count('skipped', `not_claimed:${e.code}`);
      return undefined;
    }
    // Both settle before anything else happens: a retry must never run while a journal write of
    // this attempt is still in flight, or that write could land after the retry's later steps and
    // take the journal back to `accepted` behind a placed call.
    const [accepted, file] = await Promise.allSettled([
      state.advance(id, 'accepted', { lease_until: acceptance.leaseUntil, accepted_at: isoMillis(this.clock()) }, isoMillis(this.clock())),
      writeBootstrap(this.opts.bootstrapDir, payload, this.clock()),
    ]);
    if (accepted.status === 'rejected') throw accepted.reason;
    // Durably accepted: said now even if the bootstrap file failed (its retry starts at `accepted`).
    logger.info({ handoff_id: id, from_agent: journal.from_agent }, 'handoff accepted');
    this.emit(id, 'accepted');
    if (file.status === 'rejected') throw file.reason;
    this.emit(id, 'bootstrap_written', undefined, file.value);
    return accepted.value;
  }

  /**
   * Runs (or resumes, after a restart or a failed step) the delivery of an accepted handoff from
   * its journaled phase.
   */
  private async deliver(start: DeliveryJournal, how: { resumed?: boolean } = {}): Promise<void> {
    const { state } = this.opts;
    let journal = start;
    const id = journal.handoff_id;
    const payload = parsePayload(journal.payload_text).payload;
    const now = () => isoMillis(this.clock());

    const beforeCall = (phase: DeliveryJournal['phase']): boolean => phase === 'accepted' || phase === 'bootstrapped';
    if (journal.phase === 'accepting') {
      const claimed = await this.claim(id, payload);
      if (!claimed) return;
      journal = claimed;
    } else if (beforeCall(journal.phase)) {
      if (how.resumed) {
        const kept = await this.reconfirmClaim(journal);
        if (!kept) return;
        journal = kept;
      }
      // Stamped now, not when the claim was taken: the call follows now, and a voice server
      // ignores a bootstrap file older than its resume window.
      const file = await writeBootstrap(this.opts.bootstrapDir, payload, this.clock());
      this.emit(id, 'bootstrap_written', undefined, file);
    }
    const channel = payload.channel ?? 'voice';
    if (channel !== 'voice') return this.deliverMessage(journal, payload, channel);

    if (beforeCall(journal.phase)) {
      const to = payload.callback_number ?? this.opts.contacts.get(payload.caller_hash);
      if (to === undefined) return this.finish(journal, 'reject', 'no_number', 'no callback_number and the caller is not in the contact list');
      if (state.isOptedOut(payload.caller_hash, 'voice')) return this.finish(journal, 'reject', 'opted_out');
      journal = await state.advance(id, 'dial_intent', {}, now());
      let call: { sid: string } | undefined;
      try {
        const t = this.opts.telephony;
        call = await this.opts.dialer.dial({
          handoffId: id,
          to,
          from: t.from,
          target: t.target,
          leadIn: t.leadIn ? payload.resume_hint : undefined,
          ringTimeoutSec: t.ringTimeoutSec,
          machineDetection: t.machineDetection,
          statusCallbackUrl: t.statusCallbackUrl?.(id),
        });
      } catch (err) {
        const e = toHandoffError(err);
        if (e.code === 'OPTED_OUT') {
          await state.markOptedOut(payload.caller_hash, 'voice');
          return this.finish(journal, 'reject', 'opted_out');
        }
        if (e.code === 'DIAL_UNCERTAIN') return this.finish(journal, 'reject', 'dial_uncertain', e.message);
        journal = await state.advance(id, 'call_ended', { call_end: 'failed' }, now());
        this.opts.logger.warn({ handoff_id: id, code: e.code, err: e.message }, 'call could not be placed');
      }
      // Outside the try: once Twilio created the call, nothing may count it as not placed (no
      // fallback SMS while it rings). If this journal write fails, the retry finds dial_intent
      // and ends the handoff as dial_interrupted, never dialing again.
      if (call) {
        this.callPlaced(journal, this.clock());
        journal = await state.advance(id, 'dialed', { call_sid: call.sid }, now());
        this.emit(id, 'dialed', undefined, call.sid);
      }
    }
    if (journal.phase === 'dial_intent') {
      // A crash between journaling the intent and recording the sid: a call may exist. Never redial.
      return this.finish(journal, 'reject', 'dial_interrupted');
    }
    if (journal.phase === 'dialed') {
      const info = await this.follow(journal).catch((err: unknown) => {
        // The retry follows the call from later on: what it sees no longer dates the answer.
        this.dialAckMs.delete(id);
        throw err;
      });
      if (!info) return; // stopping: resume after restart from "dialed"
      this.callFollowed(id, info);
      const end = callEnd(info) ?? 'failed';
      journal = await state.advance(id, 'call_ended', { call_end: end }, now());
      this.emit(id, 'call_ended', end);
    }
    if (journal.phase === 'call_ended' && journal.call_end === 'connected') {
      await sleep(this.opts.telephony.completeAfterSec * 1000, this.signal);
      if (this.signal.aborted) return;
      return this.finish(journal, 'complete', 'connected');
    }
    const end = (journal.call_end ?? 'failed') as CallEnd;
    if (journal.phase === 'call_ended' && this.opts.telephony.fallbackSms) {
      journal = await this.sendFallbackSms(journal, payload);
    }
    return this.finish(journal, 'reject', end);
  }

  private async sendFallbackSms(journal: DeliveryJournal, payload: ParsedPayload): Promise<DeliveryJournal> {
    const { state } = this.opts;
    const to = payload.callback_number ?? this.opts.contacts.get(payload.caller_hash);
    if (to === undefined || state.isOptedOut(payload.caller_hash, 'sms')) return journal;
    const id = journal.handoff_id;
    let next = await state.advance(id, 'sms_intent', {}, isoMillis(this.clock()));
    try {
      const body = composeFallbackSms({ agentName: this.opts.agent, reason: payload.reason, handedOverBy: payload.from_agent });
      await this.opts.dialer.sendMessage({ handoffId: id, to, from: this.opts.telephony.from, body, channel: 'sms' });
      next = await state.advance(id, 'sms_sent', {}, isoMillis(this.clock()));
      this.emit(id, 'sms_sent');
    } catch (err) {
      const e = toHandoffError(err);
      if (e.code === 'OPTED_OUT') await state.markOptedOut(payload.caller_hash, 'sms');
      this.opts.logger.warn({ handoff_id: id, code: e.code }, 'fallback SMS failed');
    }
    return next;
  }

  private async deliverMessage(journal: DeliveryJournal, payload: ParsedPayload, channel: 'sms' | 'whatsapp'): Promise<void> {
    const { state } = this.opts;
    const id = journal.handoff_id;
    // Sent, then the completion failed (or the process died): it was delivered.
    if (journal.phase === 'message_sent') return this.finish(journal, 'complete', 'messaged');
    if (journal.phase === 'message_intent') return this.finish(journal, 'reject', 'message_interrupted');
    const to = payload.callback_number ?? this.opts.contacts.get(payload.caller_hash);
    if (to === undefined) return this.finish(journal, 'reject', 'no_number');
    if (state.isOptedOut(payload.caller_hash, channel)) return this.finish(journal, 'reject', 'opted_out');
    const body = payload.resume_hint ?? `Hi, this is ${this.opts.agent}. ${payload.from_agent} passed me your conversation; how can I help?`;
    const next = await state.advance(id, 'message_intent', {}, isoMillis(this.clock()));
    try {
      await this.opts.dialer.sendMessage({ handoffId: id, to, from: this.opts.telephony.from, body, channel });
    } catch (err) {
      const e = toHandoffError(err);
      if (e.code === 'OPTED_OUT') {
        await state.markOptedOut(payload.caller_hash, channel);
        return this.finish(next, 'reject', 'opted_out');
      }
      return this.finish(next, 'reject', e.code === 'DIAL_UNCERTAIN' ? 'message_uncertain' : 'message_failed', e.message);
    }
    const sent = await state.advance(id, 'message_sent', {}, isoMillis(this.clock()));
    this.emit(id, 'messaged', channel);
    return this.finish(sent, 'complete', 'messaged');
  }

  /** Follows the call, renewing the claim's lease while it runs; undefined when stopping. */
  private async follow(journal: DeliveryJournal): Promise<CallInfo | undefined> {
    const id = journal.handoff_id;
    const sid = journal.call_sid as string;
    const renewEveryMs = 60_000;
    const renewals = new AbortController();
    const onStop = () => renewals.abort();
    this.signal.addEventListener('abort', onStop, { once: true });
    const renewing = (async () => {
      while (!renewals.signal.aborted) {
        await sleep(renewEveryMs, renewals.signal);
        if (renewals.signal.aborted) break;
        try {
          await this.opts.source.renew(id, journal.claim_token);
        } catch (err) {
          this.opts.logger.warn({ handoff_id: id, code: toHandoffError(err).code }, 'lease renewal failed');
        }
      }
    })();
    try {
      return await this.opts.followCall(sid, id, this.signal);
    } catch (err) {
      if (this.signal.aborted) return undefined;
      throw err;
    } finally {
      renewals.abort();
      this.signal.removeEventListener('abort', onStop);
      await renewing;
    }
  }

  private async finish(journal: DeliveryJournal, how: 'complete' | 'reject', outcome: string, detail?: string): Promise<void> {
    const { source, state, logger } = this.opts;
    const id = journal.handoff_id;
    await this.settle(() =>
      how === 'complete' ? source.complete(id, journal.claim_token, outcome) : source.reject(id, outcome, journal.claim_token),
    );
    await state.advance(id, 'done', { outcome, finished_at: isoMillis(this.clock()) }, isoMillis(this.clock()));
    logger.info({ handoff_id: id, outcome, how }, how === 'complete' ? 'handoff completed' : 'handoff rejected');
    this.emit(id, how === 'complete' ? 'completed' : 'rejected', outcome, detail);
    this.count(how === 'complete' ? 'completed' : 'rejected', outcome);
    this.dialAckMs.delete(id);
  }

  /** Counts a delivery that ended (after its transition was settled, so a retried one counts once). */
  private count(how: DeliveryEnd, outcome: string): void {
    this.opts.metrics?.recordDelivery(how, outcome);
  }

  /** Twilio acknowledged creating the call: accept → dial ends, dial → answer starts. */
  private callPlaced(journal: DeliveryJournal, ackMs: number): void {
    const metrics = this.opts.metrics;
    if (!metrics) return;
    const acceptedMs = parseIsoTime(journal.accepted_at);
    if (acceptedMs !== undefined) metrics.observeAcceptToDial(ackMs - acceptedMs);
    this.dialAckMs.set(journal.handoff_id, ackMs);
  }

  /**
   * The call ended: dial → answer, if this process dialed it, followed it without a break, and it
   * was answered. When no poll or callback saw it in progress (a short call can go from ringing
   * to completed between two polls, or its in-progress callback can be lost), the answer is dated
   * back from now by the call's duration, which Twilio reports in whole seconds for a completed
   * call: late by the time it took to learn of the end (at once with a callback, at most one poll
   * interval otherwise) plus up to a second. An answer so dated to more than a second before the
   * dial was acknowledged means the end was learnt of long after it came (a dry-run dialer
   * reports a finished call at once): no sample then, rather than a wrong one.
   */
  private callFollowed(id: string, info: CallInfo): void {
    const ackMs = this.dialAckMs.get(id);
    this.dialAckMs.delete(id);
    if (ackMs === undefined) return;
    if (info.answeredAtMs !== undefined) {
      this.opts.metrics?.observeDialToAnswer(info.answeredAtMs - ackMs);
      return;
    }
    if (info.status !== 'completed' || info.durationSec === undefined) return;
    const dated = this.clock() - info.durationSec * 1000 - ackMs;
    if (dated >= -1000) this.opts.metrics?.observeDialToAnswer(Math.max(0, dated));
  }

  /** Runs a transition; "already settled elsewhere" (e.g. the voice server completed it) is fine. */
  private async settle(op: () => Promise<void>): Promise<void> {
    try {
      await op();
    } catch (err) {
      const e = toHandoffError(err);
      if (!SETTLED_ELSEWHERE.has(e.code)) throw e;
    }
  }
}

/** The handoff id of a payload text, if it has a readable one (for sources that get bare texts). */
export function handoffIdOf(text: string | Uint8Array): string | undefined {
  try {
    const value = parseJsonDocument(text).value;
    const id = isJsonObject(value) ? value.handoff_id : undefined;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}
