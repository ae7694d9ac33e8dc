/**
 * The hub's HTTP API (DESIGN.md §5): a deliberately dumb relay over the spool.
 *
 * ```
 * POST /api/v1/handoffs/start                 initiator (token agent = from_agent)   201 | 200 | 4xx
 * GET  /api/v1/handoffs/poll?agent=A&wait=S   target    (token agent = A)            200 | 204
 * POST /api/v1/handoffs/{id}/accept           target    (token agent = to_agent)     200 | 404 | 409 | 410
 * POST /api/v1/handoffs/{id}/complete         claimer   {claim_token, outcome, final_transcript?, notes?}
 * POST /api/v1/handoffs/{id}/reject           target    {reason, claim_token?}  (claim_token when claimed)
 * POST /api/v1/handoffs/{id}/renew            claimer   {claim_token, lease_ms?}  (extends the lease)
 * GET  /api/v1/handoffs/{id}?wait=S&since=ST  either party                          200
 * GET  /healthz, GET /metrics                 anyone on the listen address
 * ```
 *
 * Errors are `{"error":{"code","message"}}` with the status of the code's row in ERROR_CODES; on
 * `/handoffs/start` the body also carries `"status":"rejected","reason":<code>` because that is how
 * gptme-voice's `HandoffHubWriter` recognises a refusal. 401 replies carry
 * `WWW-Authenticate: Bearer realm="handoff-hub"`. A wrong Content-Type is a 400 BAD_REQUEST.
 *
 * Start: the hub checks structure and expiry but not the HMAC (it holds no pair secrets, so it
 * cannot forge a handoff either). The `to_agent` must be a registered agent (else ADDRESSING), a
 * target may have at most `maxPendingPerTarget` pending handoffs (QUEUE_FULL), and a repeat of an
 * id already stored is answered from the spool: same bytes → 200 with its current state, other
 * bytes → 409 CONFLICT. Bodies are limited to `bodyLimitBytes`: a larger Content-Length is refused
 * before a byte is read, and a chunked body is cut off as soon as it passes the limit (413).
 *
 * Poll: returns the pending payloads for the agent as their exact stored text (the JSON value as
 * received; the spool drops only the whitespace around it), spliced into
 * `{"handoffs":[<payload text>,…]}` rather than re-serialised, so the listener can verify the
 * signature over the bytes the initiator sent. The texts come from the spool's in-memory pending
 * index, so a woken poll touches no disk. Delivery is at-least-once: a pending handoff is
 * returned by every poll until it is accepted, rejected or expired. Each delivery is recorded in
 * the audit log (in the background: the reply does not wait for the audit fsync).
 *
 * Claim token (decision): `accept` returns the spool's fencing token as `claim_token` in its reply
 * (the claimer may propose it in the body, `{"claim_token": …}`, and repeat the accept with it),
 * and `complete`, `reject` (of a claimed handoff) and `renew` must send it back in their body. The
 * hub keeps only its SHA-256 (in the spool's relay facts), never the token itself, so a hub restart
 * loses nothing and a stolen hub disk cannot finish someone else's claim. Authentication says who
 * is calling; the token says which claim they hold. A listener that must survive its own restart
 * mid-call persists the token next to its bootstrap file.
 *
 * `GET /handoffs/{id}` (decision): both parties see `handoff_id`, `state`, `from_agent`,
 * `to_agent`, `expires_at` and the relay facts (timestamps, `claimed_by`, `lease_until`,
 * `outcome`, `reason`, `rejected_by`). Only the target also gets `payload` (the stored text, spliced
 * verbatim, and audited as a read), `notes` and `final_transcript`: the initiator wrote the payload
 * and needs only the outcome. The claim token's hash is never shown. With `wait=S` the request
 * returns as soon as the state differs from `since` (default: the state when the request arrived),
 * at once when the handoff is already in a terminal state, and otherwise after `S` seconds with
 * the unchanged state (200 either way: the caller compares `state`). The route shadows a handoff
 * literally named `poll` for GET only.
 *
 * Long-poll waits are capped at `maxWaitSec` (30 s) and may be fractional. A parked request is
 * woken synchronously by the spool's transition event (see waiters.ts); a client that disconnects
 * frees its waiter at once.
 */
import { Hono, type Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { matchedRoutes } from 'hono/route';
import pino, { type Logger } from 'pino';
import type { Registry } from 'prom-client';
import * as z from 'zod';
import {
  assertSafeId,
  expiresAtMs,
  HandoffError,
  isExpired,
  parseJson,
  parsePayload,
  toHandoffError,
  toJs,
  TranscriptEntrySchema,
} from '../protocol/index.js';
import { MAX_SPOOL_PAYLOAD_BYTES, REASON_CODE_RE, TERMINAL_STATES } from '../spool/index.js';
import type { HandoffRecord, HandoffState, SpoolApi, TransitionEvent } from '../spool/index.js';
import { bearerAuth, type HubAuth } from './auth.js';
import { Janitor } from './janitor.js';
import { createHubMetrics, type HubMetrics } from './metrics.js';
import { WaiterRegistry, type Parked } from './waiters.js';

/** The spool operations the hub needs: the SpoolApi plus audited reads. */
export type HubSpool = SpoolApi & { auditRead(id: string, by: string): Promise<unknown> };

export interface HubLimits {
  /** Largest accepted request body; default 1 MiB. */
  bodyLimitBytes: number;
  /** Pending handoffs allowed per target before QUEUE_FULL; default 100. */
  maxPendingPerTarget: number;
  /** Cap of a long-poll's `wait`; default 30 s. */
  maxWaitSec: number;
  /** Most payloads returned by one poll; default 16. */
  pollBatch: number;
  /** Time allowed to receive a request body; default 10 s (a trickling client gets 400). */
  bodyTimeoutMs: number;
  /** Long-polls and watches one agent may have parked at once; default 32 (then 429 TOO_MANY_WAITING). */
  maxParkedPerAgent: number;
}

export const DEFAULT_HUB_LIMITS: Readonly<HubLimits> = Object.freeze({
  bodyLimitBytes: 1024 * 1024,
  maxPendingPerTarget: 100,
  maxWaitSec: 30,
  pollBatch: 16,
  bodyTimeoutMs: 10_000,
  maxParkedPerAgent: 32,
});

export interface HubAppOptions {
  spool: HubSpool;
  auth: HubAuth;
  /** Milliseconds since the epoch; decides expiry. Default `Date.now`. */
  clock?: () => number;
  /** Default: a silent logger. */
  logger?: Logger;
  /** Registry to register the hub's metrics in; default a fresh one. */
  metrics?: Registry;
  limits?: Partial<HubLimits>;
  /**
   * Background sweep period and retention of finished handoffs (none: kept forever), or false to
   * run no janitor (tests that drive `sweep` themselves).
   */
  janitor?: { sweepIntervalMs?: number; retentionMs?: number; purgeEveryMs?: number } | false;
  /**
   * For a spool that other processes write too: a parked poll looks at the spool again this
   * often, since only this process's own transitions wake it. Unset (never) for the hub's own
   * spool.
   */
  pollRecheckMs?: number;
}

type HubEnv = { Variables: { agent: string; handoffId: string | undefined } };

/** The Hono app of a hub, plus what its owner needs to shut it down and observe it. */
export type HubApp = Hono<HubEnv> & {
  /** Stops the janitor, answers parked requests, waits for in-flight requests. Idempotent. */
  close(): Promise<void>;
  readonly metrics: HubMetrics;
  readonly waiters: WaiterRegistry;
  readonly janitor: Janitor | undefined;
};

const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';
const JSON_TYPE_RE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
const WAIT_RE = /^\d{1,6}(\.\d{1,6})?$/;
const STATE_NAMES = Object.freeze(['pending', 'claimed', 'archived', 'rejected'] as const);

// Request bodies are strict: a misspelt field (final_transcirpt) would otherwise be dropped while
// the hub answers 200, and what the caller meant to store would be lost without a word.
const CompleteBodySchema = z.strictObject({
  claim_token: z.string().min(1).max(512),
  outcome: z.string().regex(REASON_CODE_RE, { message: 'must match [A-Za-z0-9_.:-]{1,64}' }),
  final_transcript: z.array(TranscriptEntrySchema).max(10_000).optional(),
  notes: z.string().max(10_000).optional(),
});

const RejectBodySchema = z.strictObject({
  reason: z.string().regex(REASON_CODE_RE, { message: 'must match [A-Za-z0-9_.:-]{1,64}' }),
  claim_token: z.string().min(1).max(512).optional(),
});

const AcceptBodySchema = z.strictObject({
  claim_token: z.string().regex(/^[A-Za-z0-9_-]{32,128}$/, 'must be 32 to 128 base64url characters').optional(),
});

/** A query parameter given at most once: `?agent=a&agent=b` is refused, not read as one of them. */
function queryOnce(c: Context<HubEnv>, name: string): string | undefined {
  const values = c.req.queries(name);
  if (values !== undefined && values.length > 1) throw new HandoffError('BAD_REQUEST', `query parameter ${name} is given more than once`);
  return values?.[0];
}

/** True when the request says it carries a body. */
function hasBody(c: Context<HubEnv>): boolean {
  const length = c.req.header('content-length');
  return (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
}

const RenewBodySchema = z.strictObject({
  claim_token: z.string().min(1).max(512),
  lease_ms: z.number().int().min(1000).max(24 * 3600 * 1000).optional(),
});

function resolveLimits(partial: Partial<HubLimits> | undefined): HubLimits {
  const limits = { ...DEFAULT_HUB_LIMITS, ...partial };
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isFinite(value) || value <= 0) throw new HandoffError('CONFIG', `hub limit ${key} must be a positive number`);
  }
  if (limits.maxWaitSec > 300) throw new HandoffError('CONFIG', 'hub limit maxWaitSec must be at most 300');
  // A body the spool would refuse to store must not pass the HTTP check first.
  if (limits.bodyLimitBytes > MAX_SPOOL_PAYLOAD_BYTES) throw new HandoffError('CONFIG', `hub body limit must be at most ${MAX_SPOOL_PAYLOAD_BYTES} bytes (what the spool stores)`);
  return limits;
}

/**
 * Builds the hub's Hono app over an open spool and starts its janitor.
 * @throws HandoffError CONFIG when a limit is not a positive number.
 */
export function createHubApp(options: HubAppOptions): HubApp {
  const { spool, auth } = options;
  const clock = options.clock ?? Date.now;
  const logger = options.logger ?? pino({ level: 'silent' });
  const limits = resolveLimits(options.limits);
  const recheckMs = options.pollRecheckMs ?? Number.POSITIVE_INFINITY;
  if (!(recheckMs > 0)) throw new HandoffError('CONFIG', 'pollRecheckMs must be positive');
  const waiters = new WaiterRegistry({ maxPerAgent: limits.maxParkedPerAgent });
  const metrics = createHubMetrics({ parkedPolls: () => waiters.parkedPolls, watchers: () => waiters.watchers }, options.metrics);
  const janitor = options.janitor === false ? undefined : new Janitor({ spool, clock, logger, ...options.janitor });

  // Starts admitted but not yet durable, per target, so that concurrent starts respect the cap.
  const reservations = new Map<string, number>();
  const background = new Set<Promise<unknown>>();
  let inflight = 0;
  let closing = false;
  let idleResolve: (() => void) | undefined;

  const inBackground = (work: Promise<unknown>, what: string, id: string): void => {
    const tracked = work.then(
      () => undefined,
      (err: unknown) => {
        const e = toHandoffError(err, 'IO');
        logger.error({ handoff_id: id, code: e.code, err: e.message }, `${what} failed`);
      },
    );
    background.add(tracked);
    void tracked.finally(() => background.delete(tracked));
  };

  const unsubscribe = spool.onTransition((event: TransitionEvent) => {
    metrics.recordTransition(event);
    waiters.notify(event);
    logger.info(
      { handoff_id: event.id, from_state: event.from, to_state: event.to, from_agent: event.fromAgent, to_agent: event.toAgent, reason: event.reason },
      'transition',
    );
  });

  const app = new Hono<HubEnv>();

  app.use('*', async (c, next) => {
    const started = performance.now();
    inflight++;
    try {
      await next();
    } finally {
      inflight--;
      if (inflight === 0 && idleResolve !== undefined) idleResolve();
      const seconds = (performance.now() - started) / 1000;
      const route = routeLabel(c);
      const status = c.res.status;
      metrics.observeRequest(route, c.req.method, status, seconds);
      const line = { handoff_id: c.get('handoffId'), agent: c.get('agent'), method: c.req.method, route, status, ms: Math.round(seconds * 1e4) / 10 };
      if (status >= 500) logger.error(line, 'request');
      else if (route.endsWith('/poll') && status === 204) logger.debug(line, 'request');
      else logger.info(line, 'request');
    }
  });

  app.onError((err, c) => {
    // Hono's own refusals (HTTPException) are the client's fault when they are 4xx.
    const e = err instanceof HTTPException && err.status < 500 ? new HandoffError('BAD_REQUEST', err.message, { cause: err }) : toHandoffError(err);
    const status = e.httpStatus;
    let message = e.message;
    if (status >= 500) {
      logger.error({ handoff_id: c.get('handoffId'), code: e.code, err: e.message }, 'request failed');
      // Internal details (file paths, stack) stay in the log.
      if (e.code === 'IO') message = 'storage error; nothing was acknowledged';
      else if (e.code === 'INTERNAL') message = 'internal error';
    }
    const body: Record<string, unknown> = { error: { code: e.code, message } };
    if (c.req.method === 'POST' && c.req.path === '/api/v1/handoffs/start') {
      body.status = 'rejected';
      body.reason = e.code;
    }
    if (e.code === 'UNAUTHORIZED') c.header('WWW-Authenticate', 'Bearer realm="handoff-hub"');
    return c.json(body, status as ContentfulStatusCode);
  });

  app.notFound((c) => c.json({ error: { code: 'NOT_FOUND', message: 'no such endpoint' } }, 404));

  app.get('/healthz', (c) => (closing ? c.json({ status: 'closing' }, 503) : c.json({ status: 'ok' })));

  app.get('/metrics', async (c) => c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType }));

  app.use('/api/v1/*', bearerAuth(auth));

  // Whose the bearer token is, and nothing else: a token can be checked (`handoff doctor`)
  // without reading anyone's payloads, which a poll would do and record.
  app.get('/api/v1/whoami', (c) => c.json({ agent: c.get('agent') }));

  app.post('/api/v1/handoffs/start', async (c) => {
    const agent = c.get('agent');
    requireJsonContentType(c);
    const bytes = await readBody(c.req.raw, limits);
    let doc;
    try {
      doc = parsePayload(bytes);
    } catch (err) {
      throw toHandoffError(err, 'SCHEMA');
    }
    const payload = doc.payload;
    const id = payload.handoff_id;
    c.set('handoffId', id);
    if (payload.from_agent !== agent) throw new HandoffError('FORBIDDEN', 'from_agent must be the agent of the bearer token');
    if (!auth.isAgent(payload.to_agent)) throw new HandoffError('ADDRESSING', 'to_agent is not an agent registered at this hub');

    // A repeat of a stored id is answered by the put below (same bytes: its current state), so
    // the spool is asked whether the id exists only when the answer would be a refusal. An id
    // that another initiator stored counts as absent here: these refusals store nothing and can
    // be asked for at will, so they must not tell an agent which ids others use.
    const target = payload.to_agent;
    const repeatsOwn = async () => (await spool.get(id))?.payload.from_agent === agent;
    if (isExpired(payload, clock()) && !(await repeatsOwn())) throw new HandoffError('EXPIRED', 'the handoff is past its expires_at');
    const pending = (await spool.listPending(target)).length + (reservations.get(target) ?? 0);
    if (pending >= limits.maxPendingPerTarget && !(await repeatsOwn())) {
      throw new HandoffError('QUEUE_FULL', `${target} already has ${pending} pending handoffs`);
    }
    reservations.set(target, (reservations.get(target) ?? 0) + 1);
    let result;
    try {
      result = await spool.put(bytes);
    } finally {
      release(reservations, target);
    }
    const { record, created } = result;
    if (created) janitor?.noteDeadline(expiresAtMs(payload));
    const body: Record<string, string> = { status: record.state, handoff_id: id, expires_at: payload.expires_at };
    if (record.state === 'rejected' && record.relay.reason !== undefined) body.reason = record.relay.reason;
    return c.json(body, created ? 201 : 200);
  });

  app.get('/api/v1/handoffs/poll', async (c) => {
    const agent = c.get('agent');
    const wanted = queryOnce(c, 'agent');
    if (wanted === undefined || wanted === '') throw new HandoffError('BAD_REQUEST', 'query parameter agent is required');
    if (wanted !== agent) throw new HandoffError('FORBIDDEN', 'an agent may only poll for itself');
    const waitMs = parseWaitMs(queryOnce(c, 'wait'), limits.maxWaitSec);
    const deadline = performance.now() + waitMs;

    let found = await pendingFor(agent);
    while (found.length === 0 && !closing) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) break;
      // Park first, then look: a handoff that becomes pending in between wakes this waiter.
      const parked = waiters.parkPoll({ agent, waitMs: Math.min(remaining, recheckMs), signal: c.req.raw.signal });
      found = await pendingFor(agent);
      if (found.length > 0) {
        parked.cancel();
        break;
      }
      const reason = await parked.done;
      if (reason === 'aborted' || reason === 'closed') break;
      found = await pendingFor(agent);
    }
    if (found.length === 0) return c.body(null, 204);
    for (const item of found) {
      logger.info({ handoff_id: item.id, agent }, 'delivered to poll');
      inBackground(spool.auditRead(item.id, agent), 'audit of a poll read', item.id);
    }
    return c.body(`{"handoffs":[${found.map((item) => item.text).join(',')}]}`, 200, { 'content-type': JSON_CONTENT_TYPE });
  });

  app.post('/api/v1/handoffs/:id/accept', async (c) => {
    const agent = c.get('agent');
    const record = await recordFor(c);
    if (record.payload.to_agent !== agent) throw new HandoffError('FORBIDDEN', 'only the target may accept a handoff');
    // The body is optional: a claimer that journals its own token first proposes it, and
    // repeating the accept with it after a crash returns the same claim.
    const input = hasBody(c) ? await jsonBody(c, AcceptBodySchema) : {};
    const claim = await spool.claim(record.id, agent, input.claim_token === undefined ? {} : { token: input.claim_token });
    return c.json({
      handoff_id: record.id,
      status: claim.record.state,
      claim_token: claim.token,
      lease_until: claim.leaseUntil,
      claimed_at: claim.record.relay.claimed_at,
    });
  });

  app.post('/api/v1/handoffs/:id/complete', async (c) => {
    const { agent, id, input, record } = await handoffRequest(c, CompleteBodySchema);
    requireClaimer(record, agent);
    const done = await spool.complete(id, input.claim_token, {
      outcome: input.outcome,
      finalTranscript: input.final_transcript,
      notes: input.notes,
    });
    return c.json({ handoff_id: id, status: done.state, outcome: done.relay.outcome, completed_at: done.relay.completed_at });
  });

  app.post('/api/v1/handoffs/:id/reject', async (c) => {
    const { agent, id, input, record } = await handoffRequest(c, RejectBodySchema);
    if (record.payload.to_agent !== agent) throw new HandoffError('FORBIDDEN', 'only the target may reject a handoff');
    const done = await spool.reject(id, { reason: input.reason, by: agent, token: input.claim_token });
    return c.json({ handoff_id: id, status: done.state, reason: done.relay.reason, rejected_at: done.relay.rejected_at });
  });

  app.post('/api/v1/handoffs/:id/renew', async (c) => {
    const { agent, id, input, record } = await handoffRequest(c, RenewBodySchema);
    requireClaimer(record, agent);
    const renewed = await spool.renew(id, input.claim_token, input.lease_ms);
    return c.json({ handoff_id: id, status: renewed.state, lease_until: renewed.relay.lease_until });
  });

  app.get('/api/v1/handoffs/:id', async (c) => {
    const agent = c.get('agent');
    const id = idParam(c);
    const waitMs = parseWaitMs(queryOnce(c, 'wait'), limits.maxWaitSec);
    const since = parseState(queryOnce(c, 'since'));
    const deadline = performance.now() + waitMs;

    let parked: Parked | undefined = waitMs > 0 ? waiters.watch(id, { agent, waitMs, signal: c.req.raw.signal }) : undefined;
    let record: HandoffRecord;
    try {
      record = await visibleRecord(id, agent);
    } catch (err) {
      parked?.cancel();
      throw err;
    }
    const baseline = since ?? record.state;
    while (parked !== undefined) {
      if (record.state !== baseline || TERMINAL_STATES.includes(record.state)) {
        parked.cancel();
        break;
      }
      const reason = await parked.done;
      record = await existingRecord(id);
      parked = undefined;
      const remaining = deadline - performance.now();
      if (reason === 'event' && record.state === baseline && remaining > 0) {
        parked = waiters.watch(id, { agent, waitMs: remaining, signal: c.req.raw.signal });
        // Re-read after parking again, for the same reason as the first time.
        record = await existingRecord(id);
      }
    }
    const text = viewJson(record, agent);
    if (agent === record.payload.to_agent) inBackground(spool.auditRead(id, agent), 'audit of a read', id);
    return c.body(text, 200, { 'content-type': JSON_CONTENT_TYPE });
  });

  // Served from the spool's in-memory pending index (texts included): no disk access on wake-up.
  async function pendingFor(agent: string): Promise<Array<{ id: string; text: string }>> {
    const now = clock();
    const found: Array<{ id: string; text: string }> = [];
    for (const entry of await spool.listPending(agent)) {
      if (found.length >= limits.pollBatch) break;
      if (!isExpired({ expires_at: entry.expiresAt }, now)) found.push({ id: entry.id, text: entry.payloadText });
    }
    return found;
  }

  async function existingRecord(id: string): Promise<HandoffRecord> {
    const record = await spool.get(id);
    if (record === undefined) throw new HandoffError('NOT_FOUND', 'no such handoff');
    return record;
  }

  /**
   * The record of `id` as `agent` may see it: a handoff exists only for its initiator and its
   * target. Any other agent gets NOT_FOUND, as for an id that does not exist, so that it cannot
   * learn which handoffs (and so which callers) passed between two other agents.
   */
  async function visibleRecord(id: string, agent: string): Promise<HandoffRecord> {
    const record = await spool.get(id);
    if (record === undefined || (record.payload.from_agent !== agent && record.payload.to_agent !== agent)) {
      throw new HandoffError('NOT_FOUND', 'no such handoff');
    }
    return record;
  }

  async function recordFor(c: Context<HubEnv>): Promise<HandoffRecord> {
    return visibleRecord(idParam(c), c.get('agent'));
  }

  /** A request on one handoff with a JSON body: the caller, the id, the body checked, the record. */
  async function handoffRequest<T>(c: Context<HubEnv>, schema: z.ZodType<T>): Promise<{ agent: string; id: string; input: T; record: HandoffRecord }> {
    const id = idParam(c);
    const input = await jsonBody(c, schema);
    const agent = c.get('agent');
    return { agent, id, input, record: await visibleRecord(id, agent) };
  }

  async function jsonBody<T>(c: Context<HubEnv>, schema: z.ZodType<T>): Promise<T> {
    requireJsonContentType(c);
    const bytes = await readBody(c.req.raw, limits);
    let value: unknown;
    try {
      value = toJs(parseJson(bytes));
    } catch (err) {
      throw new HandoffError('BAD_REQUEST', toHandoffError(err).message, { cause: err });
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      if (issue?.code === 'unrecognized_keys') {
        // Named only when it looks like a field name: the key is the caller's text, and errors are logged.
        const [key = ''] = issue.keys;
        throw new HandoffError('BAD_REQUEST', `body has an unknown field${/^[A-Za-z0-9_]{1,64}$/.test(key) ? ` "${key}"` : ''}`);
      }
      throw new HandoffError('BAD_REQUEST', issue ? `${issue.path.join('.') || 'body'} ${issue.message}` : 'invalid body');
    }
    return parsed.data;
  }

  const close = memoize(async () => {
    closing = true;
    await janitor?.stop();
    waiters.close();
    if (inflight > 0) {
      await new Promise<void>((resolve) => {
        idleResolve = resolve;
      });
    }
    await Promise.all([...background]);
    unsubscribe();
  });

  janitor?.start();
  return Object.assign(app, { close, metrics, waiters, janitor });
}

function idParam(c: Context<HubEnv>): string {
  const id = c.req.param('id');
  // Checked before any disk access: the id becomes part of file names.
  assertSafeId(id);
  c.set('handoffId', id);
  return id;
}

function requireClaimer(record: HandoffRecord, agent: string): void {
  if (record.payload.to_agent !== agent) throw new HandoffError('FORBIDDEN', 'only the claimer may do this');
  // Pending, or ended (rejected, expired) without ever being accepted.
  if (record.relay.claimed_by === undefined) throw new HandoffError('INVALID_STATE', `the handoff was not accepted (it is ${record.state})`);
  if (record.relay.claimed_by !== agent) throw new HandoffError('FORBIDDEN', 'only the claimer may do this');
}

function requireJsonContentType(c: Context<HubEnv>): void {
  const type = c.req.header('content-type');
  if (type === undefined || !JSON_TYPE_RE.test(type.trim())) {
    throw new HandoffError('BAD_REQUEST', 'Content-Type must be application/json');
  }
}

function parseWaitMs(value: string | undefined, maxWaitSec: number): number {
  if (value === undefined || value === '') return 0;
  if (!WAIT_RE.test(value)) throw new HandoffError('BAD_REQUEST', 'wait must be a number of seconds');
  return Math.min(Number(value), maxWaitSec) * 1000;
}

function parseState(value: string | undefined): HandoffState | undefined {
  if (value === undefined || value === '') return undefined;
  const state = STATE_NAMES.find((name) => name === value);
  if (state === undefined) throw new HandoffError('BAD_REQUEST', `since must be one of ${STATE_NAMES.join(', ')}`);
  return state;
}

function release(reservations: Map<string, number>, target: string): void {
  const left = (reservations.get(target) ?? 1) - 1;
  if (left <= 0) reservations.delete(target);
  else reservations.set(target, left);
}

// The endpoint a request was routed to (the first non-middleware match, even when auth refused it
// before the handler ran); `/handoffs/poll` also matches `/handoffs/:id`, which is registered later.
function routeLabel(c: Context<HubEnv>): string {
  return matchedRoutes(c).find((route) => route.method !== 'ALL')?.path ?? 'unmatched';
}

/** The GET view: relay facts for both parties; payload, notes and final transcript for the target. */
function viewJson(record: HandoffRecord, agent: string): string {
  const relay = record.relay;
  const isTarget = agent === record.payload.to_agent;
  const view = {
    handoff_id: record.id,
    state: record.state,
    from_agent: record.payload.from_agent,
    to_agent: record.payload.to_agent,
    expires_at: record.payload.expires_at,
    received_at: relay.received_at,
    claimed_by: relay.claimed_by,
    claimed_at: relay.claimed_at,
    lease_until: relay.lease_until,
    completed_at: relay.completed_at,
    outcome: relay.outcome,
    rejected_at: relay.rejected_at,
    rejected_by: relay.rejected_by,
    reason: relay.reason,
    recovered: relay.recovered,
    notes: isTarget ? relay.notes : undefined,
    final_transcript: isTarget ? relay.final_transcript : undefined,
  };
  const facts = JSON.stringify(view);
  // Splice the stored text in verbatim so that the target can re-verify the signature.
  return isTarget ? `${facts.slice(0, -1)},"payload":${record.payloadText}}` : facts;
}

async function readBody(request: Request, limits: HubLimits): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null) {
    if (!/^\s*\d{1,15}\s*$/.test(declared)) throw new HandoffError('BAD_REQUEST', 'invalid Content-Length');
    if (Number(declared) > limits.bodyLimitBytes) throw tooLarge(limits);
    if (request.headers.get('transfer-encoding') === null) return readDeclaredBody(request, limits);
  }
  if (request.body === null) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HandoffError('BAD_REQUEST', `request body not received within ${limits.bodyTimeoutMs} ms`)),
      limits.bodyTimeoutMs,
    );
  });
  timeout.catch(() => undefined);
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      size += value.byteLength;
      if (size > limits.bodyLimitBytes) throw tooLarge(limits);
      chunks.push(value);
    }
  } catch (err) {
    reader.cancel().catch(() => undefined);
    if (err instanceof HandoffError) throw err;
    throw new HandoffError('BAD_REQUEST', 'the request body could not be read', { cause: err });
  } finally {
    clearTimeout(timer);
  }
  return chunks.length === 1 ? (chunks[0] as Uint8Array) : Buffer.concat(chunks, size);
}

/**
 * A body of a declared length (already checked against the limit): the HTTP parser delivers no
 * more than that, so it is read in one piece through the server adapter's direct path, which
 * skips building a web ReadableStream for it. The time limit still applies.
 */
async function readDeclaredBody(request: Request, limits: HubLimits): Promise<Uint8Array> {
  let timer: NodeJS.Timeout | undefined;
  const reading = request.arrayBuffer();
  // A body that arrives (or fails) after the time limit was answered must not surface later.
  reading.catch(() => undefined);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new HandoffError('BAD_REQUEST', `request body not received within ${limits.bodyTimeoutMs} ms`)),
      limits.bodyTimeoutMs,
    );
  });
  try {
    return new Uint8Array(await Promise.race([reading, timeout]));
  } catch (err) {
    if (err instanceof HandoffError) throw err;
    throw new HandoffError('BAD_REQUEST', 'the request body could not be read', { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

function tooLarge(limits: HubLimits): HandoffError {
  return new HandoffError('TOO_LARGE', `request body exceeds ${limits.bodyLimitBytes} bytes`);
}

function memoize(fn: () => Promise<void>): () => Promise<void> {
  let once: Promise<void> | undefined;
  return () => (once ??= fn());
}

