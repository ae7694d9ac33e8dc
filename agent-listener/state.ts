/**
 * The listener's own durable memory, in a private directory (mode 0700, files 0600):
 *
 *   <state>/handoffs/<id>.json   one journal per accepted handoff: the payload, the claim token,
 *                                and how far the delivery got (phase, call sid, outcome)
 *   <state>/opted-out.json       caller hashes of numbers that answered Twilio 21610, per channel
 *
 * It exists so that a restart never repeats a side effect: the journal is written durably BEFORE
 * each step that cannot be repeated (a call, an SMS), so after a crash the listener knows a call
 * may exist and does not dial again. Accepted ids form the replay set; journals are kept until
 * well after the payload expired, since an expired replay is refused as EXPIRED anyway.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HandoffError, isSafeId, parseIsoTime } from '../protocol/index.js';
import { assertPrivateDir, writeFileAtomic } from './bootstrap.js';

/** How far the delivery of one handoff got. Order matters: phases only move forward. */
export const DELIVERY_PHASES = Object.freeze([
  'accepting',
  'accepted',
  // No longer written (listener.ts, header); journals of earlier versions may still hold it.
  'bootstrapped',
  'dial_intent',
  'dialed',
  'call_ended',
  'sms_intent',
  'sms_sent',
  'message_intent',
  'message_sent',
  'done',
] as const);
export type DeliveryPhase = (typeof DELIVERY_PHASES)[number];

export interface DeliveryJournal {
  handoff_id: string;
  from_agent: string;
  /** The payload text exactly as received (needed to resume after a restart). */
  payload_text: string;
  claim_token: string;
  lease_until: string;
  accepted_at: string;
  phase: DeliveryPhase;
  call_sid?: string;
  /** The call's end (`connected`, `no_answer`, …) once known. */
  call_end?: string;
  /** The reason or outcome the handoff was finally rejected or completed with. */
  outcome?: string;
  finished_at?: string;
  updated_at: string;
}

export type OptOutChannel = 'voice' | 'sms' | 'whatsapp';

function optOutKey(callerHash: string, channel: OptOutChannel): string {
  return `${channel}:${callerHash}`;
}

/** Journals are kept this long after the payload's expiry, for replay detection. */
export const JOURNAL_RETENTION_MS = 7 * 24 * 3600 * 1000;

export class ListenerState {
  private readonly journals = new Map<string, DeliveryJournal>();
  /** `<channel>:<caller hash>`: an opt-out answers one channel (21610 is a messaging refusal). */
  private optedOut = new Set<string>();

  private constructor(readonly dir: string) {}

  /**
   * Opens (creating if needed) a state directory and loads its journals.
   * @throws HandoffError IO when the directory cannot be created or read.
   */
  static async open(dir: string): Promise<ListenerState> {
    await assertPrivateDir(dir, 'state dir');
    const state = new ListenerState(dir);
    try {
      await fs.mkdir(path.join(dir, 'handoffs'), { recursive: true, mode: 0o700 });
      for (const name of await fs.readdir(path.join(dir, 'handoffs'))) {
        if (!name.endsWith('.json')) continue;
        const journal = await readJson<DeliveryJournal>(path.join(dir, 'handoffs', name));
        if (journal && isSafeId(journal.handoff_id)) state.journals.set(journal.handoff_id, journal);
      }
      const opted = await readJson<{ opted_out?: string[]; caller_hashes?: string[] }>(path.join(dir, 'opted-out.json'));
      // Files from before opt-outs had a channel list bare hashes: they came from SMS refusals.
      state.optedOut = new Set([...(opted?.opted_out ?? []), ...(opted?.caller_hashes ?? []).map((h) => optOutKey(h, 'sms'))]);
    } catch (cause) {
      throw new HandoffError('IO', `cannot open listener state in ${dir}`, { cause });
    }
    return state;
  }

  /** True when this listener already took `id` from `fromAgent` (the replay check). */
  seen(fromAgent: string, id: string): boolean {
    const journal = this.journals.get(id);
    // A claim someone else won is not ours: the same id may legitimately come back only as a replay.
    return journal?.from_agent === fromAgent && !journal.outcome?.startsWith('not_claimed:');
  }

  get(id: string): DeliveryJournal | undefined {
    return this.journals.get(id);
  }

  /** Journals whose delivery has not finished (to resume after a restart). */
  unfinished(): DeliveryJournal[] {
    return [...this.journals.values()].filter((j) => j.phase !== 'done');
  }

  /** Writes a journal durably and keeps it in memory; phases never move backwards. */
  async save(journal: DeliveryJournal): Promise<DeliveryJournal> {
    const prev = this.journals.get(journal.handoff_id);
    // A claim we lost to someone else leaves nothing of ours to protect: it may start over.
    const lost = prev?.phase === 'done' && prev.outcome?.startsWith('not_claimed:');
    if (prev && !lost && DELIVERY_PHASES.indexOf(journal.phase) < DELIVERY_PHASES.indexOf(prev.phase)) {
      throw new HandoffError('INTERNAL', `journal of ${journal.handoff_id} cannot move from ${prev.phase} back to ${journal.phase}`);
    }
    await writeFileAtomic(this.journalPath(journal.handoff_id), `${JSON.stringify(journal, null, 2)}\n`);
    this.journals.set(journal.handoff_id, journal);
    return journal;
  }

  /** Moves a journal to `phase` with extra fields, durably. */
  async advance(id: string, phase: DeliveryPhase, fields: Partial<DeliveryJournal>, nowIso: string): Promise<DeliveryJournal> {
    const prev = this.journals.get(id);
    if (!prev) throw new HandoffError('INTERNAL', `no journal for ${id}`);
    return this.save({ ...prev, ...fields, phase, updated_at: nowIso });
  }

  isOptedOut(callerHash: string, channel: OptOutChannel): boolean {
    return this.optedOut.has(optOutKey(callerHash, channel));
  }

  /** Remembers durably that this caller opted out of `channel` (Twilio 21610 is final). */
  async markOptedOut(callerHash: string, channel: OptOutChannel): Promise<void> {
    const key = optOutKey(callerHash, channel);
    if (this.optedOut.has(key)) return;
    const next = new Set(this.optedOut).add(key);
    await writeFileAtomic(path.join(this.dir, 'opted-out.json'), `${JSON.stringify({ opted_out: [...next].sort() }, null, 2)}\n`);
    this.optedOut = next;
  }

  /** Deletes finished journals older than the retention window; returns how many. */
  async prune(nowMs: number): Promise<number> {
    let removed = 0;
    for (const journal of this.journals.values()) {
      if (journal.phase !== 'done') continue;
      const finished = parseIsoTime(journal.finished_at ?? journal.updated_at) ?? nowMs;
      if (nowMs - finished < JOURNAL_RETENTION_MS) continue;
      await fs.rm(this.journalPath(journal.handoff_id), { force: true });
      this.journals.delete(journal.handoff_id);
      removed++;
    }
    return removed;
  }

  private journalPath(id: string): string {
    if (!isSafeId(id)) throw new HandoffError('INVALID_ID', 'handoff id must match [A-Za-z0-9_-]{1,128}');
    return path.join(this.dir, 'handoffs', `${id}.json`);
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // A journal is only ever replaced by rename, so a torn file cannot occur; an unreadable one is
  // someone's manual edit and must stop the listener rather than be silently forgotten (which
  // could lead to a second call).
  return JSON.parse(text) as T;
}
