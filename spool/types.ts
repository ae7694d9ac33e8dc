/**
 * The spool's public contract: states, records and the operations the hub, the local-mode listener
 * and the CLI use. The implementation lives in `spool.ts`; the on-disk format is specified in the
 * header comment there.
 */
import type { ParsedPayload } from '../protocol/index.js';

/** Handoff states; the values are the directory names under the spool root. */
export const HANDOFF_STATES = Object.freeze({
  pending: 'handoff',
  claimed: 'claimed',
  archived: 'archive',
  rejected: 'rejected',
} as const);

/** A handoff's state: `pending`, `claimed`, `archived` or `rejected`. */
export type HandoffState = keyof typeof HANDOFF_STATES;

/**
 * What a reject reason or a completion outcome may be: a short code (`busy`, `no_answer`,
 * `SIGNATURE`, `claim_lost:FENCED`), never free text, because it is copied into the relay facts,
 * the audit log and metrics, which must not carry phone numbers or transcript text. The hub
 * validates `reason` and `outcome` of its request bodies with the same rule.
 */
export const REASON_CODE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** States a handoff never leaves. */
export const TERMINAL_STATES: readonly HandoffState[] = Object.freeze(['archived', 'rejected']);

/**
 * The relay's own facts about a handoff, kept next to the original signed payload in every state
 * after `pending` (snake_case: they are read with `cat` and `jq`).
 */
export interface RelayFacts {
  state: HandoffState;
  handoff_id: string;
  from_agent: string;
  to_agent: string;
  received_at?: string;
  claimed_by?: string;
  claimed_at?: string;
  lease_until?: string;
  /** SHA-256 (hex) of the claim token; the token itself is only ever known to the claimer. */
  claim_token_sha256?: string;
  completed_at?: string;
  outcome?: string;
  final_transcript?: unknown[];
  notes?: string;
  rejected_at?: string;
  reason?: string;
  rejected_by?: string;
  /** Set when recovery had to finish a transition that a crash interrupted. */
  recovered?: boolean;
}

/** One handoff as the spool sees it. */
export interface HandoffRecord {
  id: string;
  state: HandoffState;
  /** The original payload text exactly as received (verifiable with the pair secret). */
  payloadText: string;
  payload: ParsedPayload;
  relay: RelayFacts;
  /** Absolute path of the file that holds it now. */
  path: string;
}

/** What a successful claim returns to the claimer. */
export interface Claim {
  record: HandoffRecord;
  /** The fencing token; required to complete, reject or renew this claim. */
  token: string;
  leaseUntil: string;
}

/** What `put` returns: the stored record and whether this call stored it. */
export interface PutResult {
  record: HandoffRecord;
  /** False when the same id with the same bytes was already stored (idempotent repeat). */
  created: boolean;
}

/** The final facts of a completed handoff. */
export interface CompleteInput {
  /** A short code matching `REASON_CODE_RE`. */
  outcome: string;
  finalTranscript?: unknown[];
  notes?: string;
}

/** Why and by whom a handoff is rejected. */
export interface RejectInput {
  /** A short code matching `REASON_CODE_RE`. */
  reason: string;
  /** The agent rejecting (must be the payload's `to_agent`). */
  by: string;
  /** Required when the handoff is claimed: the claim token. */
  token?: string;
}

/** Emitted after a transition is durable on disk (never before). */
export interface TransitionEvent {
  id: string;
  from: HandoffState | null;
  to: HandoffState;
  fromAgent: string;
  toAgent: string;
  reason?: string;
  /** For a claim: how long the handoff was pending, from its arrival to the claim (when known). */
  pendingMs?: number;
}

/** The ids a sweep moved to `rejected/`, by reason. */
export interface SweepResult {
  expired: string[];
  leaseExpired: string[];
}

/** Which finished handoffs `purge` deletes. */
export interface PurgeOptions {
  /** Deletes what ended before this moment (ms since the epoch). */
  beforeMs: number;
  /** Counts what would be deleted; deletes nothing and writes no audit line. */
  dryRun?: boolean;
  /** Stops the purge between two buckets (a hub shutting down); what was done is returned. */
  signal?: AbortSignal;
}

/** What `purge` deleted (or, in a dry run, would delete). */
export interface PurgeResult {
  archived: number;
  rejected: number;
  /** Dropped files under `rejected/_invalid/` and `rejected/_conflict/`. */
  dropped: number;
  bytes: number;
  /** Old enough by their file, but the payload's `expires_at` is not before the cut: kept. */
  keptUnexpired: number;
  /** Old enough by their file, but not a readable handoff file: kept for a person to look at. */
  keptUnreadable: number;
}

/** What a recovery pass found and did. */
export interface RecoveryReport {
  tmpRemoved: number;
  duplicatesResolved: number;
  rolledForward: number;
  adopted: number;
  /** Files that were not valid handoff files, moved to `rejected/_invalid/`. */
  invalid: number;
  /** Files too young to roll forward now (a live process may finish them); sweeps retry them. */
  deferred: number;
  /**
   * Names in `tmp/`, `handoff/`, `claimed/` (and, in a full recovery, `archive/` and `rejected/`)
   * that hold no handoff and were left where they are for a person to look at: not a regular file
   * (a directory, FIFO, …), or, outside `handoff/`, a file too large to be a spool file.
   */
  skipped: number;
}

/** A pending handoff as listed for its target. */
export interface PendingEntry {
  id: string;
  toAgent: string;
  fromAgent: string;
  expiresAt: string;
  initiatedAt: string;
  /** The payload text exactly as stored (what a poll delivers). */
  payloadText: string;
  /** File name under `handoff/` (ours are `<id>.json`; the reference writes `<caller_hash>-<seq>.json`). */
  fileName: string;
}

/**
 * The operations of a spool. Every method that changes state resolves only after the change is
 * durable (file and directories fsynced); any fsync/rename error rejects the promise.
 *
 * Errors (all `HandoffError`): INVALID_ID, SCHEMA, VERSION (bad payload on put), TOO_LARGE (a
 * payload, or a completion's envelope, over the spool file limit), BAD_REQUEST (bad arguments,
 * such as a reason or outcome that is not a short code), CONFLICT (same id, other bytes),
 * NOT_FOUND, ALREADY_CLAIMED, EXPIRED (claim past `expires_at`), INVALID_STATE, FENCED (wrong
 * claim token or lease over), IO.
 */
export interface SpoolApi {
  readonly root: string;
  /** Stores a signed payload (exact bytes) in `handoff/`; idempotent for identical bytes. */
  put(raw: Uint8Array | string): Promise<PutResult>;
  /**
   * pending → claimed by `agent` (must be the payload's `to_agent`); exactly one winner. A claimer
   * may propose its token (journaled before asking); repeating the claim with the same token
   * returns the same claim, so a crash between asking and hearing the answer loses nothing
   * (UNAVAILABLE, retry, while another process's claim of it may still be being written).
   */
  claim(id: string, agent: string, options?: { token?: string }): Promise<Claim>;
  /** Extends the lease of a claim held with `token`. */
  renew(id: string, token: string, leaseMs?: number): Promise<HandoffRecord>;
  /** claimed → archived, by the claimer; idempotent for the same outcome. */
  complete(id: string, token: string, input: CompleteInput): Promise<HandoffRecord>;
  /** pending|claimed → rejected by the target; idempotent for the same reason. */
  reject(id: string, input: RejectInput): Promise<HandoffRecord>;
  /** The handoff in whatever state it is, or undefined. O(1) in the size of archive/. */
  get(id: string): Promise<HandoffRecord | undefined>;
  /** Pending handoffs for `agent` (all targets when omitted), oldest first. */
  listPending(agent?: string): Promise<PendingEntry[]>;
  /** Handoffs in one state (for `handoff list`); terminal states may be large. */
  list(state: HandoffState): Promise<HandoffRecord[]>;
  /** Moves pending handoffs past `expires_at` and claims past their lease to `rejected/`. */
  sweep(nowMs?: number): Promise<SweepResult>;
  /** Deletes finished handoffs (archive/, rejected/) that ended and expired before a moment. */
  purge(options: PurgeOptions): Promise<PurgeResult>;
  /** Records in the audit log that `by` was given the payload of `id` (DESIGN §7: every read). */
  auditRead(id: string, by: string): Promise<void>;
  /** Subscribes to durable transitions; returns the unsubscribe function. */
  onTransition(listener: (event: TransitionEvent) => void): () => void;
  close(): Promise<void>;
}
