import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import * as z from 'zod';
// The hub client alone, not agent-listener/index.js: that would also load the listener's webhook
// server (hono) and watcher (chokidar), which no command here needs (tests/architecture.test.ts).
import { HubClient } from '../../agent-listener/hub-client.js';
import {
  buildPayload,
  E164_RE,
  HandoffError,
  isJsonObject,
  isSafeId,
  keyFilePath,
  MAX_HOP,
  parseJson,
  readKeyFile,
  toJs,
  TranscriptEntrySchema,
  type JsonValue,
  type TranscriptEntry,
} from '../../protocol/index.js';
import type { HandoffRecord, HandoffState, Spool } from '../../spool/index.js';
import { readSecret, required, resolveConfig, stateDirOf, type ResolvedConfig } from '../config.js';
import { RawJson } from '../output.js';

type Flags = Record<string, unknown> & { config?: string };

function configOf(flags: Flags): ResolvedConfig {
  return resolveConfig({ flags, env: process.env, cwd: process.cwd(), configFile: flags.config });
}

type Target = { mode: 'hub'; client: HubClient } | { mode: 'local'; spool: Spool };

/** Hub mode when a hub URL is configured, else local mode on the configured spool. */
/** `readOnly`: a local spool is only read (no recovery, no owner check), as beside a running hub. */
async function openTarget(cfg: ResolvedConfig, readOnly: boolean): Promise<Target> {
  if (cfg.config.hubUrl) {
    const token = readSecret('hub token (HANDOFF_TOKEN or --token-file)', process.env.HANDOFF_TOKEN, cfg.config.tokenFile);
    // One command, one or two requests: no pool of connections to keep, and no undici to load.
    return { mode: 'hub', client: new HubClient({ url: cfg.config.hubUrl, token, keepAlive: false }) };
  }
  if (cfg.config.spool) {
    // Loaded only here: a command in hub mode never needs the spool (or proper-lockfile).
    const { openSpool } = await import('../../spool/index.js');
    return { mode: 'local', spool: await openSpool({ root: path.resolve(cfg.config.spool), readOnly }) };
  }
  throw new HandoffError('CONFIG', 'say where the handoffs are: --hub URL (hub mode) or --spool DIR (local mode)');
}

async function withTarget<T>(flags: Flags, fn: (target: Target, cfg: ResolvedConfig) => Promise<T>, options: { readOnly?: boolean } = {}): Promise<T> {
  const cfg = configOf(flags);
  const target = await openTarget(cfg, options.readOnly ?? false);
  try {
    return await fn(target, cfg);
  } finally {
    if (target.mode === 'hub') await target.client.close();
    else await target.spool.close();
  }
}

function checkId(id: string): string {
  if (!isSafeId(id)) throw new HandoffError('INVALID_ID', 'handoff id must match [A-Za-z0-9_-]{1,128}');
  return id;
}

/**
 * Reads a transcript: a JSON list of `{role, text, ts?}` from a file or standard input (`-`). It
 * is parsed losslessly, so that what is signed keeps every number as written (`3.0`, integers
 * beyond 2^53), as the reference's `json.dumps` of the same file would; the entries are checked
 * when the payload is built.
 */
export async function readTranscript(file: string | undefined): Promise<TranscriptEntry[]> {
  if (file === undefined) return [];
  let bytes: Buffer;
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      bytes = Buffer.concat(chunks);
    } else bytes = await readFile(file);
  } catch (cause) {
    throw new HandoffError('USAGE', `cannot read transcript ${file}`, { cause });
  }
  let doc: JsonValue;
  try {
    doc = parseJson(bytes);
  } catch (cause) {
    // Our parser's message names the position, never the text (a transcript is private).
    throw new HandoffError('USAGE', `transcript ${file} is not JSON: ${(cause as Error).message}`, { cause });
  }
  const list = Array.isArray(doc) ? doc : isJsonObject(doc) ? doc.transcript : undefined;
  if (!Array.isArray(list)) throw new HandoffError('USAGE', `transcript ${file} must be a JSON list of {role, text}`);
  return list as unknown as TranscriptEntry[];
}

/** A flag that must be a whole number of at most `max`, written in decimal digits. */
function wholeNumber(value: unknown, what: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  if (!/^\d{1,9}$/.test(text) || Number(text) > max) throw new HandoffError('USAGE', `${what} must be a whole number from 0 to ${max}`);
  return Number(text);
}

/** --caller: the caller's number, in E.164 (`+` and up to 15 digits), the form its hash is taken of. */
function callerNumber(value: unknown): string {
  const text = String(value);
  if (!E164_RE.test(text)) throw new HandoffError('USAGE', '--caller must be a phone number in E.164 form, e.g. +15551234567');
  return text;
}

export interface StartOutput {
  handoff_id: string;
  status: string;
  expires_at: string;
  outcome?: { state: HandoffState; detail?: string };
}

/** Signs a payload with the pair secret for `--to` and submits it; with `--wait`, follows it. */
export async function start(flags: Flags): Promise<StartOutput> {
  const cfg = configOf(flags);
  const from = required(cfg, 'agent');
  const to = String(flags.to);
  const callerId = callerNumber(flags.caller);
  const hop = wholeNumber(flags.hop, '--hop', MAX_HOP);
  const { secrets } = await readKeyFile(keyFilePath(cfg.config.keysDir, to));
  const signed = buildPayload(
    {
      from,
      to,
      callerId,
      reason: String(flags.reason),
      transcript: await readTranscript(flags.transcript as string | undefined),
      resumeHint: flags.resumeHint as string | undefined,
      summary: flags.summary as string | undefined,
      ttlSec: cfg.config.ttlSec,
      sendCallbackNumber: Boolean(flags.sendNumber),
      callSid: flags.callSid as string | undefined,
      channel: flags.channel as 'voice' | undefined,
      priority: flags.priority as 'normal' | undefined,
      hop,
    },
    secrets[0] as Buffer,
    Date.now(),
  );
  const id = signed.payload.handoff_id;
  return withTarget(flags, async (target) => {
    let out: StartOutput;
    if (target.mode === 'hub') {
      const r = await target.client.start(signed.text);
      out = { handoff_id: r.handoff_id, status: r.status, expires_at: r.expires_at };
    } else {
      const r = await target.spool.put(signed.text);
      out = { handoff_id: id, status: r.record.state, expires_at: signed.payload.expires_at };
    }
    if (flags.wait) out.outcome = await waitForOutcome(target, id, Date.parse(out.expires_at));
    return out;
  });
}

/** Waits until a handoff leaves `pending`: the initiator learns accept, reject or expiry. */
async function waitForOutcome(target: Target, id: string, expiresAtMs: number): Promise<{ state: HandoffState; detail?: string }> {
  for (;;) {
    if (target.mode === 'hub') {
      const view = await target.client.get(id, { waitSec: 25, since: 'pending' });
      if (view.state !== 'pending') return { state: view.state, detail: (view as { reason?: string }).reason };
      continue;
    }
    // Local mode has no hub to run the janitor: past the deadline, sweep so the handoff expires.
    if (Date.now() > expiresAtMs) await target.spool.sweep();
    const record = await target.spool.get(id);
    if (!record) throw new HandoffError('NOT_FOUND', `handoff ${id} disappeared from the spool`);
    if (record.state !== 'pending') return { state: record.state, detail: record.relay.reason ?? record.relay.outcome };
    await new Promise((r) => setTimeout(r, 100));
  }
}

function summarize(r: HandoffRecord): { handoff_id: string; state: HandoffState; from_agent: string; to_agent: string; detail: string } {
  const f = r.relay;
  const detail =
    r.state === 'pending'
      ? `expires ${r.payload.expires_at}`
      : r.state === 'claimed'
        ? `by ${f.claimed_by} until ${f.lease_until}`
        : r.state === 'archived'
          ? `outcome ${f.outcome}`
          : `reason ${f.reason}`;
  return { handoff_id: r.id, state: r.state, from_agent: r.payload.from_agent, to_agent: r.payload.to_agent, detail };
}

/** Lists one state of a local spool. */
export async function list(flags: Flags) {
  return withTarget(flags, async (target) => {
    if (target.mode !== 'local') throw new HandoffError('USAGE', 'list works on a local spool (--spool DIR)');
    const state = (flags.state as HandoffState | undefined) ?? 'pending';
    const records = await target.spool.list(state);
    return records.filter((r) => state !== 'pending' || !flags.agent || r.payload.to_agent === flags.agent).map(summarize);
  }, { readOnly: true });
}

/** One handoff's state and relay facts (and, with `--payload`, the signed payload). */
export async function show(id: string, flags: Flags): Promise<Record<string, unknown>> {
  checkId(id);
  return withTarget(flags, async (target, cfg) => {
    if (target.mode === 'hub') {
      const view = await target.client.get(id);
      const { payloadText, ...rest } = view as typeof view & { payloadText?: string };
      return flags.payload && payloadText ? { ...rest, payload: new RawJson(payloadText) } : rest;
    }
    const record = await target.spool.get(id);
    if (!record) throw new HandoffError('NOT_FOUND', `no handoff ${id} in ${target.spool.root}`);
    const { claim_token_sha256: _hidden, ...facts } = record.relay;
    if (!flags.payload) return { ...facts, state: record.state, file: record.path };
    // A payload read through the spool is in the audit log, by the agent if one is named.
    await target.spool.auditRead(id, cfg.config.agent ?? 'operator');
    return { ...facts, state: record.state, file: record.path, payload: new RawJson(record.payloadText) };
  }, { readOnly: !flags.payload });
}

/** Long-polls the hub (or checks the local spool) for this agent's pending payload texts. */
export async function poll(flags: Flags): Promise<string[]> {
  // `poll --wait SEC` is the long-poll wait; `start --wait` is a switch, so the setting has its own key.
  return withTarget({ ...flags, pollWait: flags.wait }, async (target, cfg) => {
    const agent = required(cfg, 'agent');
    if (target.mode === 'hub') return target.client.poll(agent, cfg.config.pollWaitSec);
    const deadline = Date.now() + cfg.config.pollWaitSec * 1000;
    for (;;) {
      const entries = await target.spool.listPending(agent);
      if (entries.length > 0 || Date.now() >= deadline) {
        const records = (await Promise.all(entries.map((e) => target.spool.get(e.id)))).filter((r): r is HandoffRecord => r?.state === 'pending');
        // Recorded as the hub records a poll: every read of a payload is in the audit log.
        await Promise.all(records.map((r) => target.spool.auditRead(r.id, agent)));
        return records.map((r) => r.payloadText);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

/** Claims a pending handoff for this agent. */
export async function accept(id: string, flags: Flags) {
  checkId(id);
  return withTarget(flags, async (target, cfg) => {
    if (target.mode === 'hub') {
      const r = await target.client.accept(id);
      return { handoff_id: id, state: 'claimed', claim_token: r.token, lease_until: r.lease_until };
    }
    const claim = await target.spool.claim(id, required(cfg, 'agent'));
    return { handoff_id: id, state: 'claimed', claim_token: claim.token, lease_until: claim.leaseUntil };
  });
}

/** The claim token: HANDOFF_CLAIM_TOKEN, else the journal of this handoff in the listener's state directory. */
async function claimToken(id: string, cfg: ResolvedConfig, needed: boolean): Promise<string | undefined> {
  if (process.env.HANDOFF_CLAIM_TOKEN) return process.env.HANDOFF_CLAIM_TOKEN;
  const agent = cfg.config.agent;
  const stateDir = agent === undefined ? cfg.config.stateDir : stateDirOf(cfg.config, agent);
  if (stateDir) {
    try {
      const journal = JSON.parse(await readFile(path.join(stateDir, 'handoffs', `${id}.json`), 'utf8')) as { claim_token?: string };
      if (journal.claim_token) return journal.claim_token;
    } catch {
      // no journal for this id: fall through
    }
  }
  if (needed) throw new HandoffError('FENCED', 'no claim token: set HANDOFF_CLAIM_TOKEN or --state-dir of the listener that claimed it');
  return undefined;
}

/**
 * A final transcript as plain values, its entries checked as a payload's are (the hub refuses
 * anything else, and local mode stores it in the record). It is not signed, so its numbers need
 * not keep their exact lexemes; the parser's lossless tree would not even survive JSON.stringify.
 */
function finalTranscriptOf(entries: TranscriptEntry[], file: string): TranscriptEntry[] {
  const parsed = z.array(TranscriptEntrySchema).safeParse(toJs(entries as unknown as JsonValue));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new HandoffError('USAGE', `transcript ${file}: entry ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'is invalid'}`);
  }
  return parsed.data;
}

/** Completes a claimed handoff with an outcome and, optionally, the final transcript. */
export async function complete(id: string, flags: Flags) {
  checkId(id);
  const finalTranscript = flags.transcript === undefined ? undefined : finalTranscriptOf(await readTranscript(flags.transcript as string), flags.transcript as string);
  return withTarget(flags, async (target, cfg) => {
    const token = (await claimToken(id, cfg, true)) as string;
    const outcome = String(flags.outcome);
    const notes = flags.notes as string | undefined;
    if (target.mode === 'hub') {
      const r = await target.client.complete(id, { outcome, final_transcript: finalTranscript, notes, claim_token: token });
      return { handoff_id: id, state: r.status, outcome: r.outcome ?? outcome };
    }
    const record = await target.spool.complete(id, token, { outcome, finalTranscript, notes });
    return { handoff_id: id, state: record.state, outcome: record.relay.outcome };
  });
}

/** Rejects a pending handoff, or a claimed one with its claim token. */
export async function reject(id: string, flags: Flags) {
  checkId(id);
  return withTarget(flags, async (target, cfg) => {
    const token = await claimToken(id, cfg, false);
    const reason = String(flags.reason);
    if (target.mode === 'hub') {
      const r = await target.client.reject(id, reason, token === undefined ? {} : { claim_token: token });
      return { handoff_id: id, state: r.status, reason: r.reason ?? reason };
    }
    const record = await target.spool.reject(id, { reason, by: required(cfg, 'agent'), token });
    return { handoff_id: id, state: record.state, reason: record.relay.reason };
  });
}
