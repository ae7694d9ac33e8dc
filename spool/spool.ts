/**
 * The spool: a crash-safe durable store of handoffs, one file per handoff, moved between state
 * directories by `rename(2)`.
 *
 * Layout under the root:
 *   tmp/                     writes in progress, never read (`<pid>.<instance>.<n>`)
 *   handoff/<id>.json        pending: the payload bytes exactly as received
 *   claimed/<id>.json        claimed: envelope
 *   archive/<hh>/<id>.json   completed: envelope
 *   rejected/<hh>/<id>.json  rejected, expired or lease expired: envelope (with `reason`)
 *   rejected/_invalid/<name> dropped files that are not valid payloads, kept as they were
 *   rejected/_conflict/<name> dropped payloads whose id is taken by other bytes
 *   events/<YYYY-MM-DD>.jsonl hash-chained audit log (see audit.ts)
 * `hh` is the first two hex digits of SHA-256(id): 256 buckets (each created on first use) keep
 * every operation O(1) in the size of the terminal directories, and `ls archive/*` still lists
 * them all. `get(id)` never scans:
 * it looks at the four paths the id can have.
 *
 * File contents (see envelope.ts): `handoff/` holds the plain payload (a gptme-voice reader of a
 * shared spool sees what it expects); every later state holds `{"relay":{…},"payload":<payload
 * text verbatim>}`, relay facts first, the payload byte-identical and so verifiable with the pair
 * secret in every state.
 *
 * Durable write: write `tmp/<name>` (O_EXCL), fsync, close, rename or link into place, then fsync
 * the destination directory and, for a rename out of a directory in a shared spool, the source
 * directory (an exclusive spool leaves a stale source name to its recovery: `#syncMove`). Directory
 * fsyncs are group-committed (durable.ts). Any fsync/rename error rejects the operation (IO);
 * nothing is acknowledged otherwise. `tmp/` itself is never fsynced: an entry that reappears there
 * after a power loss is garbage that recovery deletes. Every file-system call goes through `FsOps`.
 *
 * Names that hold no handoff. A handoff file is a regular file of at most `MAX_SPOOL_FILE_BYTES`.
 * Every read opens without blocking and checks type and size with fstat before reading a byte
 * (fs-ops.ts), so a directory, FIFO or huge file that a person or tool put into tmp/ or a state
 * directory can neither block nor exhaust memory: recovery, sweeps, scans, get and list treat it
 * as absent and leave it where it is (recovery counts it in `skipped`), except that a file over
 * the limit in handoff/ is a dropped file that can never be valid, set aside to rejected/_invalid/
 * unread. `put` and `complete` refuse (TOO_LARGE) to write a file over the limit, so no handoff
 * that was acknowledged is ever one of these.
 *
 * Transitions. The rename is the single decision point, so no lock is needed for correctness; a
 * destination that already exists is checked first, because rename would replace it. Reasons and
 * outcomes are short codes (`REASON_CODE_RE`, the hub's rule), never free text: they are copied
 * into relay facts and audit lines.
 * - put: parse and validate; the id already in claimed/archive/rejected → same payload text:
 *   idempotent (`created: false`), other text: CONFLICT; else write tmp, `link(tmp,
 *   handoff/<id>.json)` (link never replaces: EEXIST → same text idempotent, else CONFLICT),
 *   unlink tmp, fsync handoff/. Puts of one id are serialized in-process.
 * - claim(id, agent): agent must be `to_agent` (FORBIDDEN); past `expires_at` → moved to rejected
 *   with reason `expired`, and EXPIRED; `rename(handoff/<id>.json, claimed/<id>.json)` decides
 *   (ENOENT → ALREADY_CLAIMED if claimed or archived, EXPIRED if rejected as expired,
 *   INVALID_STATE if otherwise rejected, NOT_FOUND if nowhere); then the claimed file is durably
 *   replaced by the envelope with `claimed_by`, `claimed_at`, `lease_until` and the SHA-256 of a
 *   fresh 32-byte token (or the one the caller proposed), which only the caller ever sees. A claim
 *   repeated with its proposed token returns the claim; it finishes a claim left as a bare payload
 *   in claimed/ only when that claim's writer cannot be alive (the id's lock in this process; an
 *   exclusive spool or the recovery grace for other processes, else UNAVAILABLE: retry), because
 *   until its envelope is written a live claim looks exactly like that.
 * - complete / reject of a claimed handoff: token (constant-time on its SHA-256) and lease checked
 *   (FENCED), then `rename(claimed/<id>.json, archive|rejected/<hh>/<id>.json)` decides, then the
 *   destination is rewritten with the final facts. Repeating with the same token and outcome/
 *   reason returns the stored record; another outcome → INVALID_STATE. A repeat that finds the
 *   transition cut off by a crash between rename and rewrite (the record holds recovery's
 *   placeholder `recovered`) finishes it with the caller's facts, as the first call would have;
 *   the same holds for the target repeating the reject of a pending handoff. As for claims, a
 *   transition of another live process looks the same until its rewrite: it is finished only in
 *   an exclusive spool or once older than the recovery grace, else UNAVAILABLE (retry).
 * - reject of a pending handoff (by the target): `rename(handoff/…, rejected/<hh>/…)`, then the
 *   envelope with `reason`, `rejected_by`, `rejected_at`.
 * - sweep(now): pending past `expires_at` → rejected (`expired`); claims past `lease_until` →
 *   rejected (`lease_expired`); same rename-first rule. A proper-lockfile lock keeps two janitors
 *   from doing the same work; a sweep that finds the lock held does nothing.
 *
 * Between a transition's rename and its rewrite the moved file still holds its previous content.
 * Readers interpret it as the rewrite would have left it (a raw payload in claimed/ is a claim with
 * its lease counted from the file's ctime, no token; a raw payload in rejected/ was `expired` if
 * past `expires_at` at ctime, else `recovered`; an envelope whose state disagrees with its
 * directory is in the directory's state, reason/outcome `recovered`), and recovery writes exactly
 * that, with `recovered: true`.
 *
 * Recovery (`recover()`, run by `openSpool`, idempotent): deletes tmp files (regular files only)
 * whose writer is gone (another process that has exited, a closed instance of this process, or
 * older than the stale age); adopts foreign names in handoff/; rolls forward files interrupted
 * between rename and rewrite; resolves one id found in several directories by keeping the latest
 * state (archive > rejected > claimed > pending) and removing the others (a copy whose payload
 * text differs is moved to rejected/_conflict/ instead); cuts a half-written audit line.
 * An exclusive spool also removes the audit, sweep and purge locks a killed predecessor left,
 * which others would wait out for their stale time. Before any of that, an open is refused while
 * another live process holds the spool exclusively (owner.ts).
 *
 * Retention (`purge`): the files of archive/ and rejected/ that ended and expired before a given
 * moment are deleted, each recorded in the audit log first (see `purge`).
 * A file younger than `recoveryGraceMs` is not rewritten (a live process in local mode may be about
 * to rewrite it); it is retried by later sweeps. Recovery reads the first bytes of every file of
 * the terminal directories (an up-to-date envelope starts with `{"relay":{"state":"<its state>"`):
 * that is O(size of archive), at start-up only, never per operation.
 *
 * Foreign names: the reference `HandoffWriter` drops `<caller_hash>-<seq>.json` into handoff/. A
 * scan of handoff/ adopts such a file: valid → `link(foreign, handoff/<id>.json)`, unlink the
 * foreign name (EEXIST or id already further on: same text → drop the copy, other text → moved to
 * rejected/_conflict/); invalid → moved to rejected/_invalid/ as it was (the reason, and the id
 * if one can be read, go to the audit log), once it is older than `foreignGraceMs` (a writer may
 * still be writing it). Invalid files never go to `rejected/<hh>/<id>.json`, even when an id can
 * be read: every file under a state directory is a valid payload with relay facts, which `get`,
 * `list` and re-verification rely on. Only `*.json` names are looked at, so a writer's own
 * temporary names are left alone.
 *
 * The pending index: `listPending` is served from memory, updated by this instance's transitions;
 * handoff/ is rescanned (readdir + stat, re-reading only changed files) when its mtime changed or
 * is too recent to trust (timestamps are coarse), unless `exclusive` says no other process writes.
 *
 * Audit: one line per transition and per payload delivery (`auditRead`), written before the
 * operation resolves; listeners of `onTransition` are called synchronously as soon as the
 * transition is durable, before the audit line is.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';
import {
  assertSafeId,
  HandoffError,
  isExpired,
  isJsonObject,
  isoMillis,
  isSafeId,
  parseIsoTime,
  parseJson,
  type ParsedPayload,
} from '../protocol/index.js';
import { AuditLog, type AuditEvent, type AuditEventName } from './audit.js';
import { DirSyncer, errnoCode, ioError, newTmpOwner, parseTmpName, TmpWriter, unlessMissing, type TmpOwner } from './durable.js';
import { decodeIncoming, decodeStoredFile, encodeEnvelope, envelopePrefix, type StoredFile } from './envelope.js';
import { createRealFsOps, FILE_TOO_LARGE, forgetting, NOT_REGULAR_FILE, refusingWrites, type FsOps, type FsStat } from './fs-ops.js';
import { removeLeftoverLock, tryLock } from './lock.js';
import { KeyedMutex } from './mutex.js';
import { checkOwner, releaseOwner } from './owner.js';
import {
  HANDOFF_STATES,
  REASON_CODE_RE,
  type Claim,
  type CompleteInput,
  type HandoffRecord,
  type HandoffState,
  type PendingEntry,
  type PurgeOptions,
  type PurgeResult,
  type PutResult,
  type RecoveryReport,
  type RejectInput,
  type RelayFacts,
  type SpoolApi,
  type SweepResult,
  type TransitionEvent,
} from './types.js';

/** Default claim lease. */
export const DEFAULT_LEASE_MS = 15 * 60_000;
/** Files younger than this are not rewritten by recovery (a live writer may still finish them). */
export const DEFAULT_RECOVERY_GRACE_MS = 30_000;
/** A foreign file that does not parse is left alone this long (its writer may still be writing). */
export const DEFAULT_FOREIGN_GRACE_MS = 2_000;
/** A tmp file this old is garbage even if its writer still runs. */
const STALE_TMP_MS = 10 * 60_000;
/**
 * A directory mtime this recent may hide a second change in the same timestamp tick (Linux uses
 * coarse clock ticks; some file systems keep whole seconds or two).
 */
const MTIME_SETTLE_MS = 2_000;
const MAX_NOTES_CHARS = 8192;
/**
 * Largest file the spool reads, checked by stat/fstat before a byte is read: a larger name holds
 * no handoff. A hub request body is limited to 1 MiB by default, and a spool file is one payload
 * with relay facts (well under 1 KiB), at most a final transcript and notes as well: 16 MiB leaves
 * room for a body limit raised far past the default, while a multi-gigabyte file dropped into the
 * spool can neither fail every scan nor be loaded into memory. `put` and `complete` refuse to
 * write a file over it (TOO_LARGE), so that nothing acknowledged is ever ignored for its size.
 */
export const MAX_SPOOL_FILE_BYTES = 16 * 1024 * 1024;
/**
 * Largest payload `put` stores: the file limit less room for the relay facts that a claim, renewal,
 * rejection or recovery puts around it (a completion, which may add a transcript, checks its own).
 */
export const MAX_SPOOL_PAYLOAD_BYTES = MAX_SPOOL_FILE_BYTES - 64 * 1024;
/** Who the relay names as the actor of its own decisions (expiry, lease expiry, invalid drops). */
const RELAY_ACTOR = 'relay';
/** Ids with transitions whose commit failed that are remembered at most (see `#remember`). */
const MAX_UNACKED_IDS = 10_000;

/** The janitor's lock, in events/. */
const SWEEP_LOCK = '.sweep.lock';
/** Keeps two purges apart (not the sweep's lock: a long purge must not hold up expiries). */
const PURGE_LOCK = '.purge.lock';

const BUCKET_RE = /^[0-9a-f]{2}$/;
const STATE_ORDER: readonly HandoffState[] = ['pending', 'claimed', 'rejected', 'archived'];
const LATER_STATES: readonly HandoffState[] = ['claimed', 'rejected', 'archived'];

/** Tmp-file owners that are open spool instances of this process. */
const LIVE_INSTANCES = new Set<string>();

/** Options of `openSpool`; validated in the `Spool` constructor before any I/O. */
export interface SpoolOptions {
  /** Spool root directory (its parent must exist). */
  root: string;
  /** Milliseconds since the epoch; `Date.now` by default. */
  clock?: () => number;
  /** Claim lease; 15 minutes by default. */
  leaseMs?: number;
  /** File-system calls; the real ones by default (tests inject recorders and fault injectors). */
  fs?: FsOps;
  /** Mode of files written (payloads hold transcripts): 0o600 by default. */
  fileMode?: number;
  /** Mode of directories created: 0o700 by default. */
  dirMode?: number;
  /**
   * True when no other process writes this spool (hub mode): handoff/ is scanned only once, and a
   * lock found at open is a dead predecessor's and is removed.
   */
  exclusive?: boolean;
  recoveryGraceMs?: number;
  foreignGraceMs?: number;
  /** Also scan archive/ and rejected/ at open (O(archive size)); see `recover`. */
  fullRecovery?: boolean;
  /**
   * Only reads: `openSpool` runs no recovery, records no owner and creates nothing, and every
   * call that would write is refused, so it may look at a spool that another process runs (a
   * hub's). Files mid-transition are read as the header says; a payload under a foreign name in
   * handoff/ is read where it is, under its id (not adopted), and a broken file is skipped (not
   * set aside).
   */
  readOnly?: boolean;
}

interface ResolvedOptions {
  root: string;
  clock: () => number;
  leaseMs: number;
  fs: FsOps;
  fileMode: number;
  dirMode: number;
  exclusive: boolean;
  recoveryGraceMs: number;
  foreignGraceMs: number;
  readOnly: boolean;
}

function resolveOptions(options: SpoolOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new HandoffError('CONFIG', 'spool options must be an object');
  if (typeof options.root !== 'string' || options.root === '') throw new HandoffError('CONFIG', 'spool root must be a non-empty path');
  const nonNegative = (name: string, v: number | undefined, fallback: number, min = 0): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new HandoffError('CONFIG', `${name} must be a number ≥ ${min}`);
    return v;
  };
  const mode = (name: string, v: number | undefined, fallback: number): number => {
    if (v === undefined) return fallback;
    if (!Number.isInteger(v) || v < 0 || v > 0o7777) throw new HandoffError('CONFIG', `${name} must be a file mode`);
    return v;
  };
  if (options.clock !== undefined && typeof options.clock !== 'function') throw new HandoffError('CONFIG', 'clock must be a function');
  if (options.readOnly && options.exclusive) throw new HandoffError('CONFIG', 'a read-only spool cannot be exclusive');
  const fs = options.fs ?? createRealFsOps();
  return {
    root: path.resolve(options.root),
    clock: options.clock ?? Date.now,
    leaseMs: nonNegative('leaseMs', options.leaseMs, DEFAULT_LEASE_MS, 1),
    fs: options.readOnly ? refusingWrites(fs) : fs,
    fileMode: mode('fileMode', options.fileMode, 0o600),
    dirMode: mode('dirMode', options.dirMode, 0o700),
    exclusive: options.exclusive ?? false,
    recoveryGraceMs: nonNegative('recoveryGraceMs', options.recoveryGraceMs, DEFAULT_RECOVERY_GRACE_MS),
    foreignGraceMs: nonNegative('foreignGraceMs', options.foreignGraceMs, DEFAULT_FOREIGN_GRACE_MS),
    readOnly: options.readOnly ?? false,
  };
}

function sha256Hex(data: string): string {
  return createHash('sha256').update(data, 'utf8').digest('hex');
}

/** A claim token a claimer may propose: long enough to be unguessable, and plain ASCII. */
const CLAIM_TOKEN_RE = /^[A-Za-z0-9_-]{32,128}$/;

/** A durable transition whose commit (listeners told, audit line written) is due (see `#commitMove`). */
interface UnackedMove {
  event: TransitionEvent;
  audit: AuditEvent;
  /** Whether listeners were told already (the audit line is what failed). */
  emitted: boolean;
}

/** The bucket of an id in the terminal directories. */
export function bucketOf(id: string): string {
  return sha256Hex(id).slice(0, 2);
}

function tokenMatches(relay: RelayFacts, token: unknown): boolean {
  if (typeof token !== 'string' || typeof relay.claim_token_sha256 !== 'string') return false;
  const expected = Buffer.from(relay.claim_token_sha256, 'hex');
  const actual = Buffer.from(sha256Hex(token), 'hex');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

function isLive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

function checkText(name: string, v: unknown, max: number): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) {
    throw new HandoffError('BAD_REQUEST', `${name} must be a non-empty string of at most ${max} characters`);
  }
  return v;
}

/** A reject reason or completion outcome: a short code, as the hub accepts it (`REASON_CODE_RE`). */
function checkCode(name: string, v: unknown): string {
  if (typeof v !== 'string' || !REASON_CODE_RE.test(v)) {
    throw new HandoffError('BAD_REQUEST', `${name} must be a short code matching [A-Za-z0-9_.:-]{1,64}, not free text`);
  }
  return v;
}

/**
 * The envelope of a completion or rejection; TOO_LARGE when it would exceed the file limit (a final
 * transcript can be long), since every later read would ignore such a file.
 */
function finalEnvelope(relay: RelayFacts, payloadText: string): string {
  const text = encodeEnvelope(relay, payloadText);
  if (Buffer.byteLength(text, 'utf8') > MAX_SPOOL_FILE_BYTES) {
    throw new HandoffError('TOO_LARGE', `the final record would exceed ${MAX_SPOOL_FILE_BYTES} bytes (shorten the final transcript or notes)`);
  }
  return text;
}

/** Whether a name with this status can hold a handoff (what every read would take, see `#read`). */
function holdsHandoff(st: FsStat | undefined): boolean {
  return st !== undefined && st.isFile && st.size <= MAX_SPOOL_FILE_BYTES;
}

/** What a read of a name in the spool found: its bytes, nothing (gone), or something that is no handoff file. */
type ReadResult = Uint8Array | 'missing' | 'skipped';

interface PendingItem {
  entry: PendingEntry;
  payload: ParsedPayload;
  expiresAtMs: number;
  initiatedAtMs: number;
  /** When the file reached handoff/ (its mtime, or the time of this instance's put). */
  receivedAtMs: number;
}

interface FileCacheItem {
  ino: number;
  mtimeMs: number;
  size: number;
  item: PendingItem | null;
}

interface Located {
  state: HandoffState;
  path: string;
  file: StoredFile;
}

type JournalOp = { add: PendingItem } | { remove: string };

/** Result of a move that lost to someone else's rename. */
const GONE = Symbol('gone');

/** What complete or reject (of a claim) is to leave on record: the terminal state and its facts. */
interface FinalFacts {
  state: 'archived' | 'rejected';
  /** The outcome (archived) or reason (rejected) the caller asks for. */
  value: string;
  facts: Partial<RelayFacts>;
}

/**
 * True for a terminal record whose outcome or reason only recovery filled in: a crash cut its
 * transition off between the rename and the rewrite, so the caller's own facts were never written.
 */
function interrupted(state: HandoffState, relay: RelayFacts): boolean {
  return relay.recovered === true && (state === 'archived' ? relay.outcome : relay.reason) === 'recovered';
}

/** The spool over one root directory. Create it with `openSpool`. */
export class Spool implements SpoolApi {
  readonly root: string;
  readonly #o: ResolvedOptions;
  readonly #fs: FsOps;
  readonly #dirs: DirSyncer;
  readonly #tmp: TmpWriter;
  readonly #owner: TmpOwner;
  readonly #audit: AuditLog;
  readonly #idLock = new KeyedMutex();
  /** Reads being recorded (`auditRead`), which `close` waits for. */
  readonly #reads = new Set<Promise<void>>();
  readonly #listeners = new Set<(event: TransitionEvent) => void>();
  readonly #paths: { tmp: string; handoff: string; claimed: string; archive: string; rejected: string; events: string; invalid: string; conflict: string };

  #pending = new Map<string, PendingItem>();
  /**
   * Claimed files this instance wrote, by path, in an exclusive spool only (no other process
   * changes them): complete, renew and reads of a live claim skip the read and the decode. An
   * entry is set right after the rename that put the file in place, under the id's lock, and
   * dropped by the file-system wrapper before any rename, link or unlink that touches its path,
   * so it can never be older than the file; a miss reads the disk.
   */
  readonly #claimedFiles = new Map<string, StoredFile>();
  #pendingFiles = new Map<string, FileCacheItem>();
  #handoffMtime: number | undefined;
  /** True when the last scan began after `#handoffMtime` had settled: a later change shows up as a new mtime. */
  #handoffSettled = false;
  #forceRescan = false;
  #scanning: Promise<void> | null = null;
  #journal: JournalOp[] | null = null;
  /** Files recovery left for later because they were too young to rewrite. */
  readonly #deferred = new Map<string, HandoffState>();
  /** Directories known to exist (bucket directories are created on first use). */
  readonly #knownDirs = new Set<string>();
  /** Transitions made durable whose commit failed (see `#commitMove`), by id, oldest first. */
  readonly #unacked = new Map<string, UnackedMove[]>();
  #closing: Promise<void> | null = null;
  /** Whether recovery ran once already (leftover locks are removed only at open). */
  #recovered = false;
  /** The owner key while this instance holds the root exclusively (see owner.ts). */
  #ownerKey: string | undefined;

  /** Validates the options; does no I/O (call `recover()`, or use `openSpool`). @throws HandoffError CONFIG */
  constructor(options: SpoolOptions) {
    this.#o = resolveOptions(options);
    this.root = this.#o.root;
    this.#fs = this.#o.exclusive ? forgetting(this.#o.fs, (file) => this.#claimedFiles.delete(file)) : this.#o.fs;
    const r = this.root;
    this.#paths = {
      tmp: path.join(r, 'tmp'),
      handoff: path.join(r, HANDOFF_STATES.pending),
      claimed: path.join(r, HANDOFF_STATES.claimed),
      archive: path.join(r, HANDOFF_STATES.archived),
      rejected: path.join(r, HANDOFF_STATES.rejected),
      events: path.join(r, 'events'),
      invalid: path.join(r, HANDOFF_STATES.rejected, '_invalid'),
      conflict: path.join(r, HANDOFF_STATES.rejected, '_conflict'),
    };
    this.#dirs = new DirSyncer(this.#fs);
    this.#owner = newTmpOwner();
    LIVE_INSTANCES.add(this.#owner.instance);
    this.#tmp = new TmpWriter(this.#fs, this.#paths.tmp, this.#o.fileMode, this.#owner);
    this.#audit = new AuditLog({ fs: this.#fs, dir: this.#paths.events, clock: this.#o.clock, fileMode: this.#o.fileMode, singleWriter: this.#o.exclusive });
  }

  /** True for a spool opened with `readOnly` (see SpoolOptions). */
  get readOnly(): boolean {
    return this.#o.readOnly;
  }

  // ---------------------------------------------------------------- paths

  #dirOf(state: HandoffState, id: string): string {
    switch (state) {
      case 'pending':
        return this.#paths.handoff;
      case 'claimed':
        return this.#paths.claimed;
      case 'archived':
        return path.join(this.#paths.archive, bucketOf(id));
      case 'rejected':
        return path.join(this.#paths.rejected, bucketOf(id));
    }
  }

  #pathOf(state: HandoffState, id: string): string {
    return path.join(this.#dirOf(state, id), `${id}.json`);
  }

  // ---------------------------------------------------------------- public API

  async put(raw: Uint8Array | string): Promise<PutResult> {
    this.#assertWritable();
    // Bytes, not characters: a string's UTF-8 form is what is written.
    const size = typeof raw === 'string' ? Buffer.byteLength(raw, 'utf8') : raw?.length;
    if (size > MAX_SPOOL_PAYLOAD_BYTES) throw new HandoffError('TOO_LARGE', `a payload of more than ${MAX_SPOOL_PAYLOAD_BYTES} bytes cannot be stored`);
    const { payload, payloadText } = decodeIncoming(raw);
    const id = payload.handoff_id;
    assertSafeId(id);
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    return this.#guard('put', () => this.#idLock.run(id, () => this.#put(id, bytes, payload, payloadText)));
  }

  async claim(id: string, agent: string, options: { token?: string } = {}): Promise<Claim> {
    this.#assertWritable();
    assertSafeId(id);
    checkText('agent', agent, 64);
    if (options.token !== undefined && !CLAIM_TOKEN_RE.test(options.token)) {
      throw new HandoffError('BAD_REQUEST', 'a proposed claim token must be 32 to 128 base64url characters');
    }
    return this.#guard('claim', () => this.#claim(id, agent, options.token));
  }

  async renew(id: string, token: string, leaseMs?: number): Promise<HandoffRecord> {
    this.#assertWritable();
    assertSafeId(id);
    if (leaseMs !== undefined && (!Number.isFinite(leaseMs) || leaseMs <= 0)) throw new HandoffError('BAD_REQUEST', 'leaseMs must be positive');
    return this.#guard('renew', () => this.#idLock.run(id, () => this.#renew(id, token, leaseMs ?? this.#o.leaseMs)));
  }

  async complete(id: string, token: string, input: CompleteInput): Promise<HandoffRecord> {
    this.#assertWritable();
    assertSafeId(id);
    checkCode('outcome', input?.outcome);
    if (input.notes !== undefined) checkText('notes', input.notes, MAX_NOTES_CHARS);
    if (input.finalTranscript !== undefined && !Array.isArray(input.finalTranscript)) {
      throw new HandoffError('BAD_REQUEST', 'finalTranscript must be a list');
    }
    return this.#guard('complete', () => this.#idLock.run(id, () => this.#complete(id, token, input)));
  }

  async reject(id: string, input: RejectInput): Promise<HandoffRecord> {
    this.#assertWritable();
    assertSafeId(id);
    checkCode('reason', input?.reason);
    checkText('by', input.by, 64);
    return this.#guard('reject', () => this.#idLock.run(id, () => this.#reject(id, input)));
  }

  async get(id: string): Promise<HandoffRecord | undefined> {
    this.#assertOpen();
    assertSafeId(id);
    return this.#guard('get', async () => {
      let found = await this.#locate(id);
      if (!found && !this.#indexIsTruth()) {
        // Perhaps dropped under a foreign name and not adopted yet.
        await this.#refreshPending();
        found = await this.#locate(id);
        // A reader adopts nothing: such a file stays under its foreign name, found by the scan.
        const foreign = this.#o.readOnly && !found ? this.#pending.get(id) : undefined;
        if (foreign) return this.#pendingRecord(foreign.payload, foreign.entry.payloadText, foreign.entry.fileName);
      }
      return found ? this.#recordOf(found) : undefined;
    });
  }

  async listPending(agent?: string): Promise<PendingEntry[]> {
    this.#assertOpen();
    return this.#guard('listPending', async () => {
      await this.#refreshPending();
      return [...this.#pending.values()]
        .filter((p) => agent === undefined || p.entry.toAgent === agent)
        .sort((a, b) => a.initiatedAtMs - b.initiatedAtMs || (a.entry.id < b.entry.id ? -1 : a.entry.id > b.entry.id ? 1 : 0))
        .map((p) => p.entry);
    });
  }

  async list(state: HandoffState): Promise<HandoffRecord[]> {
    this.#assertOpen();
    if (!Object.hasOwn(HANDOFF_STATES, state)) throw new HandoffError('BAD_REQUEST', `unknown state ${String(state)}`);
    return this.#guard('list', async () => {
      if (state === 'pending') {
        await this.#refreshPending();
        return [...this.#pending.values()]
          .sort((a, b) => a.initiatedAtMs - b.initiatedAtMs)
          .map((p) => this.#pendingRecord(p.payload, p.entry.payloadText, p.entry.fileName));
      }
      const base = state === 'archived' ? this.#paths.archive : this.#paths.rejected;
      const dirs =
        state === 'claimed'
          ? [this.#paths.claimed]
          : (await this.#readdirIfExists(base)).filter((b) => BUCKET_RE.test(b)).sort().map((b) => path.join(base, b));
      const out: HandoffRecord[] = [];
      for (const dir of dirs) {
        for (const name of (await this.#readdirIfExists(dir)).sort()) {
          const id = idOfName(name);
          if (id === undefined) continue;
          const full = path.join(dir, name);
          const bytes = await this.#readIfExists(full);
          if (!bytes) continue;
          const file = this.#decodeOrThrow(full, bytes);
          out.push(await this.#recordOf({ state, path: full, file }));
        }
      }
      return out;
    });
  }

  async sweep(nowMs?: number): Promise<SweepResult> {
    this.#assertWritable();
    return this.#guard('sweep', async () => {
      const result: SweepResult = { expired: [], leaseExpired: [] };
      const release = await tryLock(path.join(this.#paths.events, SWEEP_LOCK));
      if (!release) return result;
      try {
        const now = nowMs ?? this.#o.clock();
        await this.#refreshPending();
        for (const item of [...this.#pending.values()]) {
          if (!(now > item.expiresAtMs)) continue;
          const id = item.entry.id;
          const moved = await this.#idLock.run(id, async () => {
            const file: StoredFile = { kind: 'raw', payloadText: item.entry.payloadText, payload: item.payload, relay: undefined };
            return this.#rejectPending(id, file, { reason: 'expired', by: RELAY_ACTOR, event: 'expire', now });
          });
          if (moved !== GONE) result.expired.push(id);
        }
        for (const name of await this.#readdirIfExists(this.#paths.claimed)) {
          const id = idOfName(name);
          if (id === undefined) continue;
          const moved = await this.#idLock.run(id, () => this.#expireLeaseIfDue(id, now));
          if (moved) result.leaseExpired.push(id);
        }
        for (const [file, state] of [...this.#deferred]) {
          if (await this.#rollForwardFile(state, file, now)) this.#deferred.delete(file);
        }
      } finally {
        await release();
      }
      return result;
    });
  }

  /**
   * Deletes the handoffs that ended before `beforeMs` — judged by their file's mtime, which is when
   * the final envelope was written (a rolled-forward file counts from its recovery, later, so it
   * is kept longer, never shorter) — and whose payload expired before it as well: once a payload
   * is gone its id can be put again, and only an expired payload then goes nowhere but to
   * `rejected/` (the listener also refuses it). Dropped files (`_invalid/`, `_conflict/`) go by
   * the later of their mtime and ctime: they are moved there by rename, which keeps the writer's
   * mtime but sets the ctime, so a file dropped today is kept however old its content. Each deletion is recorded in the audit log before the file is unlinked, so no
   * file ever disappears unrecorded (a crash in between leaves a file that the next purge records
   * again), and the bucket directory is fsynced before the purge returns. A file that is not a
   * readable handoff file is kept for a person to look at.
   * @throws HandoffError CONFIG for a bad `beforeMs`, UNAVAILABLE while another purge runs, IO
   */
  async purge(options: PurgeOptions): Promise<PurgeResult> {
    this.#assertOpen();
    const beforeMs = options?.beforeMs;
    if (typeof beforeMs !== 'number' || !Number.isFinite(beforeMs)) throw new HandoffError('CONFIG', 'purge needs beforeMs, a time in ms since the epoch');
    const dryRun = options.dryRun === true;
    if (!dryRun) this.#assertWritable();
    return this.#guard('purge', async () => {
      const release = dryRun ? undefined : await tryLock(path.join(this.#paths.events, PURGE_LOCK));
      if (!dryRun && !release) throw new HandoffError('UNAVAILABLE', 'another purge of this spool is running');
      const result: PurgeResult = { archived: 0, rejected: 0, dropped: 0, bytes: 0, keptUnexpired: 0, keptUnreadable: 0 };
      try {
        for (const state of ['archived', 'rejected'] as const) {
          const base = state === 'archived' ? this.#paths.archive : this.#paths.rejected;
          for (const bucket of (await this.#readdirIfExists(base)).filter((b) => BUCKET_RE.test(b)).sort()) {
            if (options.signal?.aborted) return result;
            await this.#purgeBucket(path.join(base, bucket), state, beforeMs, dryRun, result);
          }
        }
        for (const dir of [this.#paths.invalid, this.#paths.conflict]) {
          if (options.signal?.aborted) return result;
          const names = await this.#readdirIfExists(dir);
          const stats = await Promise.all(names.map((name) => this.#statIfExists(path.join(dir, name))));
          const due = names.flatMap((name, i) => {
            const st = stats[i];
            return st?.isFile && Math.max(st.mtimeMs, st.ctimeMs) < beforeMs ? [{ full: path.join(dir, name), size: st.size }] : [];
          });
          if (!dryRun) {
            await Promise.all(due.map((f) => this.#purgeFile(f.full, { event: 'purge', id: '', from_agent: '', to_agent: '', state: null, by: RELAY_ACTOR, file: path.relative(this.root, f.full) })));
            if (due.length > 0) await this.#dirs.sync(dir);
          }
          result.dropped += due.length;
          for (const f of due) result.bytes += f.size;
        }
      } finally {
        await release?.();
      }
      return result;
    });
  }

  /**
   * Purges one bucket (see `purge`). Each file old enough by its mtime is judged again under its
   * id's lock, from a fresh stat and read: a transition renames first and rewrites after, and the
   * renamed file keeps its predecessor's mtime until the rewrite, so only a file whose envelope
   * is in its directory's state counts (another process's move in flight is left alone).
   */
  async #purgeBucket(dir: string, state: 'archived' | 'rejected', beforeMs: number, dryRun: boolean, result: PurgeResult): Promise<void> {
    const names = (await this.#readdirIfExists(dir)).filter((name) => idOfName(name) !== undefined);
    const stats = await Promise.all(names.map((name) => this.#statIfExists(path.join(dir, name))));
    const old = names.filter((_, i) => stats[i]?.isFile && (stats[i] as FsStat).mtimeMs < beforeMs);
    const done = await Promise.all(
      old.map((name) => {
        const id = idOfName(name) as string;
        return this.#idLock.run(id, async () => {
          const full = path.join(dir, name);
          const st = await this.#statIfExists(full);
          if (!st || !(st.mtimeMs < beforeMs)) return 0;
          let stored: StoredFile | undefined;
          try {
            stored = await this.#readOwn(id, full);
          } catch {
            stored = undefined;
          }
          if (stored === undefined) {
            if (await this.#statIfExists(full)) result.keptUnreadable++;
            return 0;
          }
          if (stored.relay?.state !== state) return 0;
          if (!((parseIsoTime(stored.payload.expires_at) ?? Infinity) < beforeMs)) {
            result.keptUnexpired++;
            return 0;
          }
          if (!dryRun) await this.#purgeFile(full, this.#auditFor('purge', stored.payload, state, { by: RELAY_ACTOR }));
          result[state]++;
          result.bytes += st.size;
          return 1;
        });
      }),
    );
    if (!dryRun && done.some((n) => n > 0)) await this.#dirs.sync(dir);
  }

  /** Records the deletion of one file in the audit log, then unlinks it (gone already: fine). */
  async #purgeFile(full: string, audit: AuditEvent): Promise<void> {
    await this.#audit.append(audit);
    await unlessMissing(this.#fs.unlink(full), undefined);
  }

  onTransition(listener: (event: TransitionEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Records in the audit log that `by` was given the payload of `id` (poll, get).
   * @throws HandoffError NOT_FOUND, IO
   */
  async auditRead(id: string, by: string): Promise<void> {
    this.#assertWritable();
    assertSafeId(id);
    // Fixes the line's place in the chain; the caller then waits for it outside any lock.
    const place = async (): Promise<{ written: Promise<void> }> => {
      const item = this.#pending.get(id);
      let facts: { from: string; to: string; state: HandoffState };
      if (item) {
        facts = { from: item.entry.fromAgent, to: item.entry.toAgent, state: 'pending' };
      } else {
        const found = await this.#locate(id);
        if (!found) throw new HandoffError('NOT_FOUND', 'no such handoff');
        facts = { from: found.file.payload.from_agent, to: found.file.payload.to_agent, state: found.state };
      }
      return { written: this.#audit.append({ event: 'read', id, from_agent: facts.from, to_agent: facts.to, state: facts.state, by }) };
    };
    // Shared, a reader can see this instance's own put on disk (a watcher fires on the link) before
    // the put has queued its line: the read takes its place under the id's lock, which the put
    // holds until its line is written, and a claim that follows is not held up by the read's
    // fsync. An exclusive spool shows a put to readers (its index, the transition event) in the
    // same tick as it queues the put's line, so the read's line follows without the lock.
    const reading = this.#guard('auditRead', async () => {
      const { written } = this.#indexIsTruth() ? await place() : await this.#idLock.run(id, place);
      await written;
    });
    // Callers often do not wait (a poll's read is recorded in the background): close waits.
    this.#reads.add(reading);
    void reading.catch(() => undefined).finally(() => this.#reads.delete(reading));
    return reading;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#reads]);
      await this.#audit.close();
      if (this.#ownerKey !== undefined) await releaseOwner(this.root, this.#ownerKey);
      LIVE_INSTANCES.delete(this.#owner.instance);
    })();
    return this.#closing;
  }

  // ---------------------------------------------------------------- plumbing

  #assertOpen(): void {
    if (this.#closing) throw new HandoffError('UNAVAILABLE', 'the spool is closed');
  }

  #assertWritable(): void {
    this.#assertOpen();
    if (this.#o.readOnly) throw new HandoffError('UNAVAILABLE', 'the spool was opened read-only');
  }

  async #guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw ioError(`spool ${what}`, err);
    }
  }

  #emit(event: TransitionEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure must not turn a durable transition into an error for its caller.
      }
    }
  }

  /** Queues the audit line (fixing its place in the chain), tells listeners, then waits for the line. */
  async #committed(event: TransitionEvent, audit: AuditEvent): Promise<void> {
    const written = this.#audit.append(audit);
    this.#emit(event);
    await written;
  }

  /**
   * Makes a move durable (`#syncMove`), then commits it. When either step fails the caller hears
   * an error although the rename happened: the transition stays remembered, and the next
   * transition or repeat of the id (`#ackRepeat`) commits it. Nothing is committed before the
   * move is durable.
   */
  async #commitMove(destDir: string, srcDir: string, event: TransitionEvent, audit: AuditEvent): Promise<void> {
    const move: UnackedMove = { event, audit, emitted: false };
    try {
      await this.#syncMove(destDir, srcDir);
    } finally {
      this.#remember([move]);
    }
    await this.#commitRemembered(event.id);
  }

  /**
   * Commits (tells listeners once, then audits) the remembered transitions of `id`, oldest first,
   * so that a transition whose commit failed is recorded before a later one of the same id. What
   * cannot be committed now stays remembered, for the next transition or repeat of the id.
   */
  async #commitRemembered(id: string): Promise<void> {
    const moves = this.#unacked.get(id);
    if (moves === undefined) return;
    this.#unacked.delete(id); // first, so that concurrent callers commit each move once
    for (let i = 0; i < moves.length; i++) {
      const move = moves[i] as UnackedMove;
      try {
        const written = this.#audit.append(move.audit);
        if (!move.emitted) {
          move.emitted = true;
          this.#emit(move.event);
        }
        await written;
      } catch (err) {
        this.#remember(moves.slice(i), { older: true });
        throw err;
      }
    }
  }

  /** Remembers moves of one id whose commit is due (after those known, or before them when older). */
  #remember(moves: UnackedMove[], how: { older?: boolean } = {}): void {
    const id = (moves[0] as UnackedMove).event.id;
    const known = this.#unacked.get(id) ?? [];
    this.#unacked.set(id, how.older ? [...moves, ...known] : [...known, ...moves]);
    // Failures are rare; a disk failing for hours must still not grow this without bound.
    while (this.#unacked.size > MAX_UNACKED_IDS) this.#unacked.delete(this.#unacked.keys().next().value as string);
  }

  /**
   * Before a repeated claim, completion or rejection is answered from the state it finds: the
   * first attempt may still be before its directory fsync (in another process) or may have failed
   * after its rename, and an idempotent answer is an acknowledgement too. So the move is made
   * durable, and committed if its own commit failed in this process.
   */
  async #ackRepeat(id: string, destDir: string, srcDir: string): Promise<void> {
    await this.#syncMove(destDir, srcDir);
    await this.#commitRemembered(id);
  }

  /**
   * Reads a name in the spool, never blocking on it and never loading more than a spool file can
   * hold: a name that is not a regular file (a directory or FIFO a person made) or is larger than
   * `MAX_SPOOL_FILE_BYTES` holds no handoff and is 'skipped', left where it is.
   */
  async #read(file: string): Promise<ReadResult> {
    try {
      return await this.#fs.readFile(file, MAX_SPOOL_FILE_BYTES);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return 'missing';
      if (code === NOT_REGULAR_FILE || code === FILE_TOO_LARGE) return 'skipped';
      throw err;
    }
  }

  /** The bytes of a handoff file at `file`; undefined when it is gone or is none (see `#read`). */
  async #readIfExists(file: string): Promise<Uint8Array | undefined> {
    const read = await this.#read(file);
    return typeof read === 'string' ? undefined : read;
  }

  /** The first `length` bytes of `file`, as `#read` (a file too large is still only read from its head here). */
  async #readHead(file: string, length: number): Promise<ReadResult> {
    try {
      return await this.#fs.readRange(file, 0, length);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return 'missing';
      if (code === NOT_REGULAR_FILE) return 'skipped';
      throw err;
    }
  }

  #statIfExists(file: string): Promise<FsStat | undefined> {
    return unlessMissing(this.#fs.stat(file), undefined);
  }

  #readdirIfExists(dir: string): Promise<string[]> {
    return unlessMissing(this.#fs.readdir(dir), []);
  }

  /**
   * Creates a bucket directory on first use and makes its entry in the parent durable. The parent
   * is fsynced even when the directory exists already: it may have been created by an attempt
   * whose fsync failed, or by another process that has not fsynced it yet (or died first).
   */
  async #ensureDir(dir: string): Promise<void> {
    if (this.#knownDirs.has(dir)) return;
    await this.#fs.mkdir(dir, this.#o.dirMode);
    await this.#dirs.sync(path.dirname(dir));
    this.#knownDirs.add(dir);
  }

  /** Renames into a state directory, reporting a lost race (the source is gone) as GONE. */
  async #renameOrGone(from: string, to: string): Promise<void | typeof GONE> {
    const dir = path.dirname(to);
    await this.#ensureDir(dir);
    try {
      await this.#fs.rename(from, to);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      // ENOENT may also mean the destination directory was removed (an emptied bucket purged).
      if (!(await this.#statIfExists(from)) || (await this.#statIfExists(dir))) return GONE;
      this.#knownDirs.delete(dir);
      await this.#ensureDir(dir);
      try {
        await this.#fs.rename(from, to);
      } catch (again) {
        if (errnoCode(again) === 'ENOENT') return GONE;
        throw again;
      }
    }
  }

  /**
   * Makes a move from `srcDir` into `destDir` durable: the destination directory is fsynced, and
   * the source too unless the spool is exclusive. A rename is journaled as one unit, so once the
   * destination is durable the file can come back after a power cut only at both names, never at
   * neither; recovery, which an exclusive spool's owner runs before anything else reads it, keeps
   * the later state and removes the stale copy. A shared spool fsyncs the source as well, because
   * another process (a gptme-voice reader among them) may read the spool before any recovery and
   * take a stale pending copy for a live one.
   */
  async #syncMove(destDir: string, srcDir: string): Promise<void> {
    if (this.#o.exclusive) return this.#dirs.sync(destDir);
    await Promise.all([this.#dirs.sync(destDir), this.#dirs.sync(srcDir)]);
  }

  /**
   * Durably replaces `dest` with `text` (tmp, fsync, rename); the caller fsyncs the directory.
   * `stored` is what `text` decodes to, for a claimed file worth remembering (see #claimedFiles).
   */
  async #replace(dest: string, text: string, stored?: StoredFile): Promise<void> {
    const tmp = await this.#tmp.write(Buffer.from(text, 'utf8'));
    await this.#fs.rename(tmp, dest);
    if (stored !== undefined && this.#o.exclusive && path.dirname(dest) === this.#paths.claimed) this.#claimedFiles.set(dest, stored);
  }

  /** The claimed file at `file`, from memory when this instance wrote it, else from the disk. */
  async #readClaimed(file: string): Promise<StoredFile | undefined> {
    const known = this.#claimedFiles.get(file);
    if (known !== undefined) return known;
    const bytes = await this.#readIfExists(file);
    return bytes ? this.#decodeOrThrow(file, bytes) : undefined;
  }

  /** The file at `file` decoded; undefined when it is missing or not a valid handoff file. */
  async #readDecoded(file: string): Promise<StoredFile | undefined> {
    const bytes = await this.#readIfExists(file);
    if (!bytes) return undefined;
    try {
      return decodeStoredFile(bytes);
    } catch {
      return undefined;
    }
  }

  #decodeOrThrow(file: string, bytes: Uint8Array): StoredFile {
    try {
      return decodeStoredFile(bytes);
    } catch (err) {
      throw new HandoffError('IO', `spool file ${path.relative(this.root, file)} is not a valid handoff file`, { cause: err });
    }
  }

  /**
   * True when the pending index is the truth about handoff/: the spool is exclusive (no other
   * process writes it, so no foreign drops either) and recovery has built the index, which this
   * instance updates in the same tick as each of its renames into or out of handoff/.
   */
  #indexIsTruth(): boolean {
    return this.#o.exclusive && this.#handoffMtime !== undefined && !this.#forceRescan;
  }

  /** The pending file of `id` as the index holds it (payload text and parsed payload). */
  #indexedFile(id: string): StoredFile | undefined {
    const item = this.#pending.get(id);
    return item ? { kind: 'raw', payloadText: item.entry.payloadText, payload: item.payload, relay: undefined } : undefined;
  }

  /** Every place the id is, in the order states are reached; the latest wins. */
  async #locate(id: string, states: readonly HandoffState[] = STATE_ORDER): Promise<Located | undefined> {
    return this.#indexIsTruth() ? this.#locateExclusive(id, states) : this.#locateOnDisk(id, states);
  }

  /** `#locate` reading every state directory, whatever the index says. */
  async #locateOnDisk(id: string, states: readonly HandoffState[] = STATE_ORDER): Promise<Located | undefined> {
    let found: Located | undefined;
    // Looking in the order a handoff moves means a move in progress cannot hide it from us.
    for (const state of states) {
      const file = this.#pathOf(state, id);
      const stored = await this.#readOwn(id, file);
      if (stored) found = { state, path: file, file: stored };
    }
    return found;
  }

  /**
   * The handoff `id` read from `file`; undefined when the file is missing or holds another
   * handoff: a foreign name in handoff/ can have the shape of an id (gptme-voice writes
   * `{caller_hash}-{seq}.json`), and taking such a file under its name would move it away from
   * its own id. The next scan of handoff/ adopts it under its real id.
   */
  async #readOwn(id: string, file: string): Promise<StoredFile | undefined> {
    const bytes = await this.#readIfExists(file);
    if (!bytes) return undefined;
    const stored = this.#decodeOrThrow(file, bytes);
    return stored.payload.handoff_id === id ? stored : undefined;
  }

  /**
   * `#locate` for an exclusive spool: pending comes from the index (no disk), and the first state
   * found in move order is the answer, because only this process moves the files and recovery
   * left no second copy of an id in handoff/ or claimed/ (a file moves on in one rename).
   */
  async #locateExclusive(id: string, states: readonly HandoffState[]): Promise<Located | undefined> {
    for (const state of states) {
      if (state === 'pending') {
        const file = this.#indexedFile(id);
        if (file) return { state, path: this.#pathOf(state, id), file };
        continue;
      }
      const full = this.#pathOf(state, id);
      if (state === 'claimed') {
        const file = await this.#readClaimed(full);
        if (file) return { state, path: full, file };
        continue;
      }
      const bytes = await this.#readIfExists(full);
      if (bytes) return { state, path: full, file: this.#decodeOrThrow(full, bytes) };
    }
    return undefined;
  }

  /** The state after `pending` that the id is in, if any (stat only; a name that is no regular file holds no handoff). */
  async #laterState(id: string): Promise<HandoffState | undefined> {
    for (const state of ['archived', 'rejected', 'claimed'] as const) {
      if (holdsHandoff(await this.#statIfExists(this.#pathOf(state, id)))) return state;
    }
    return undefined;
  }

  #pendingRelay(payload: ParsedPayload): RelayFacts {
    return { state: 'pending', handoff_id: payload.handoff_id, from_agent: payload.from_agent, to_agent: payload.to_agent };
  }

  /** A pending handoff's record; `fileName` when its file in handoff/ is not `<id>.json` (a foreign name a reader found). */
  #pendingRecord(payload: ParsedPayload, payloadText: string, fileName = `${payload.handoff_id}.json`): HandoffRecord {
    return {
      id: payload.handoff_id,
      state: 'pending',
      payloadText,
      payload,
      relay: this.#pendingRelay(payload),
      path: path.join(this.#paths.handoff, fileName),
    };
  }

  /** The relay facts a file stands for in `state` (what recovery would write if it must). */
  async #effectiveRelay(state: HandoffState, file: string, stored: StoredFile): Promise<RelayFacts> {
    if (state === 'pending') return this.#pendingRelay(stored.payload);
    if (stored.relay && stored.relay.state === state) return stored.relay;
    const st = await this.#statIfExists(file);
    const at = st ? Math.max(st.ctimeMs, st.mtimeMs) : this.#o.clock();
    return this.#rolledForward(state, stored, at);
  }

  #rolledForward(state: HandoffState, stored: StoredFile, atMs: number): RelayFacts {
    const p = stored.payload;
    const base: RelayFacts = stored.relay
      ? { ...stored.relay }
      : { state, handoff_id: p.handoff_id, from_agent: p.from_agent, to_agent: p.to_agent };
    const at = isoMillis(atMs);
    switch (state) {
      case 'pending':
        return this.#pendingRelay(p);
      case 'claimed':
        return {
          ...base,
          state,
          claimed_by: base.claimed_by ?? p.to_agent,
          claimed_at: base.claimed_at ?? at,
          lease_until: base.lease_until ?? isoMillis(atMs + this.#o.leaseMs),
          recovered: true,
        };
      case 'archived':
        return { ...base, state, completed_at: base.completed_at ?? at, outcome: base.outcome ?? 'recovered', recovered: true };
      case 'rejected': {
        let reason = base.reason;
        if (reason === undefined && (!stored.relay || stored.relay.state === 'pending')) {
          reason = isExpired(p, atMs) ? 'expired' : 'recovered';
        } else if (reason === undefined) {
          const leaseUntil = base.lease_until ? parseIsoTime(base.lease_until) : undefined;
          reason = leaseUntil !== undefined && atMs > leaseUntil ? 'lease_expired' : 'recovered';
        }
        return { ...base, state, rejected_at: base.rejected_at ?? at, reason, rejected_by: base.rejected_by ?? RELAY_ACTOR, recovered: true };
      }
    }
  }

  async #recordOf(found: Located): Promise<HandoffRecord> {
    return {
      id: found.file.payload.handoff_id,
      state: found.state,
      payloadText: found.file.payloadText,
      payload: found.file.payload,
      relay: await this.#effectiveRelay(found.state, found.path, found.file),
      path: found.path,
    };
  }

  #recordFromRelay(state: HandoffState, stored: StoredFile, relay: RelayFacts, file: string): HandoffRecord {
    return { id: relay.handoff_id, state, payloadText: stored.payloadText, payload: stored.payload, relay, path: file };
  }

  #auditFor(event: AuditEventName, payload: ParsedPayload, state: HandoffState | null, extra: { reason?: string; by?: string; file?: string } = {}): AuditEvent {
    return { event, id: payload.handoff_id, from_agent: payload.from_agent, to_agent: payload.to_agent, state, ...extra };
  }

  /** The audit line of a completion (archived) or a rejection, with the facts of `relay`. */
  #auditFinal(state: HandoffState, payload: ParsedPayload, relay: RelayFacts): AuditEvent {
    const completed = state === 'archived';
    return this.#auditFor(completed ? 'complete' : 'reject', payload, state, {
      reason: completed ? relay.outcome : relay.reason,
      by: completed ? relay.claimed_by : relay.rejected_by,
    });
  }

  // ---------------------------------------------------------------- pending index

  #makeItem(fileName: string, payload: ParsedPayload, payloadText: string, receivedAtMs: number): PendingItem {
    return {
      entry: {
        id: payload.handoff_id,
        toAgent: payload.to_agent,
        fromAgent: payload.from_agent,
        expiresAt: payload.expires_at,
        initiatedAt: payload.initiated_at,
        fileName,
        payloadText,
      },
      payload,
      expiresAtMs: parseIsoTime(payload.expires_at) ?? 0,
      initiatedAtMs: parseIsoTime(payload.initiated_at) ?? 0,
      receivedAtMs,
    };
  }

  #indexAdd(item: PendingItem): void {
    this.#pending.set(item.entry.id, item);
    this.#journal?.push({ add: item });
  }

  #indexRemove(id: string): void {
    this.#pending.delete(id);
    this.#pendingFiles.delete(`${id}.json`);
    this.#journal?.push({ remove: id });
  }

  async #refreshPending(): Promise<void> {
    while (this.#scanning) await this.#scanning;
    if (this.#o.exclusive && this.#handoffMtime !== undefined && !this.#forceRescan) return;
    const st = await this.#fs.stat(this.#paths.handoff);
    if (!this.#forceRescan && this.#handoffSettled && st.mtimeMs === this.#handoffMtime) return;
    if (this.#scanning) return this.#refreshPending();
    await this.#exclusiveScan(() => this.#scanPending(st.mtimeMs, false));
  }

  /** Whether a change made after now would surely give the directory a new mtime. */
  #mtimeSettled(mtimeMs: number): boolean {
    // Wall-clock time on purpose: it is compared with a file-system timestamp, not a deadline.
    return Date.now() - mtimeMs > MTIME_SETTLE_MS;
  }

  /** Runs one scan of handoff/ at a time; others wait for it (its error goes to its starter only). */
  async #exclusiveScan<T>(scan: () => Promise<T>): Promise<T> {
    while (this.#scanning) await this.#scanning;
    const running = scan();
    const settled = running.then(
      () => undefined,
      () => undefined,
    );
    this.#scanning = settled;
    try {
      return await running;
    } finally {
      if (this.#scanning === settled) this.#scanning = null;
    }
  }

  /** Reads handoff/, adopting foreign names; in recovery also removes copies of ids further on. */
  async #scanPending(dirMtime: number, recovery: boolean): Promise<{ adopted: number; duplicates: number; invalid: number; skipped: number }> {
    const counts = { adopted: 0, duplicates: 0, invalid: 0, skipped: 0 };
    const settled = this.#mtimeSettled(dirMtime);
    this.#journal = [];
    let retry = false;
    const files = new Map<string, FileCacheItem>();
    try {
      for (const name of await this.#fs.readdir(this.#paths.handoff)) {
        if (!name.endsWith('.json') || name.startsWith('.')) continue;
        const full = path.join(this.#paths.handoff, name);
        const st = await this.#statIfExists(full);
        if (!st) continue;
        if (!st.isFile) {
          // A directory or FIFO a person made holds no handoff, and is theirs to remove.
          counts.skipped++;
          continue;
        }
        const cached = this.#pendingFiles.get(name);
        if (cached && cached.ino === st.ino && cached.mtimeMs === st.mtimeMs && cached.size === st.size) {
          files.set(name, cached);
          continue;
        }
        let bytes: Uint8Array | undefined;
        let stored: StoredFile | undefined;
        let invalid: unknown;
        if (st.size > MAX_SPOOL_PAYLOAD_BYTES) {
          // Judged by its size alone: no byte of it is read. The payload limit, as for a put: a
          // larger payload, claimed, would make a claimed file that every read then skips.
          invalid = new HandoffError('TOO_LARGE', `larger than ${MAX_SPOOL_PAYLOAD_BYTES} bytes`);
        } else {
          const read = await this.#read(full);
          if (read === 'missing') continue;
          if (read === 'skipped') {
            // Replaced or grown since the stat: the next scan judges it afresh.
            retry = true;
            continue;
          }
          bytes = read;
          try {
            stored = decodeStoredFile(bytes);
          } catch (err) {
            invalid = err;
          }
        }
        if (stored === undefined) {
          if (this.#o.clock() - st.mtimeMs < this.#o.foreignGraceMs) {
            retry = true;
            continue;
          }
          if (this.#o.readOnly) continue;
          await this.#quarantine(name, full, bytes, invalid);
          counts.invalid++;
          continue;
        }
        const id = stored.payload.handoff_id;
        const cacheOf = (item: PendingItem | null): FileCacheItem => ({ ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, item });
        if (name !== `${id}.json`) {
          if (this.#o.readOnly) {
            // Taken as it is, under its payload's id: a writer would adopt (rename) it.
            if (!(await this.#laterState(id))) files.set(name, cacheOf(this.#makeItem(name, stored.payload, stored.payloadText, st.mtimeMs)));
            continue;
          }
          const item = await this.#adopt(name, full, stored, st.mtimeMs);
          if (item) {
            files.set(`${id}.json`, cacheOf(item));
            counts.adopted++;
          }
          continue;
        }
        if (await this.#laterState(id)) {
          // Either a copy of a handoff that is further on, or one that moved on while we looked.
          if (recovery) {
            const later = await this.#locateLater(id);
            if (later && (await this.#statIfExists(full))) {
              await this.#resolveCopy(name, full, stored, later);
              counts.duplicates++;
            }
          }
          continue;
        }
        if (stored.kind === 'envelope') {
          // Someone put an envelope back into handoff/ (a manual requeue): the state directory is
          // the truth, and handoff/ holds plain payloads.
          if (!recovery) continue;
          await this.#replace(full, stored.payloadText);
          await this.#dirs.sync(this.#paths.handoff);
          const fresh = await this.#statIfExists(full);
          if (!fresh) continue;
          files.set(name, { ino: fresh.ino, mtimeMs: fresh.mtimeMs, size: fresh.size, item: this.#makeItem(name, stored.payload, stored.payloadText, fresh.mtimeMs) });
          continue;
        }
        files.set(name, cacheOf(this.#makeItem(name, stored.payload, stored.payloadText, st.mtimeMs)));
      }
      const next = new Map<string, PendingItem>();
      for (const f of files.values()) if (f.item) next.set(f.item.entry.id, f.item);
      // Our own transitions made while the scan ran are newer than what it read.
      for (const op of this.#journal) {
        if ('add' in op) next.set(op.add.entry.id, op.add);
        else {
          next.delete(op.remove);
          files.delete(`${op.remove}.json`);
        }
      }
      this.#pending = next;
      this.#pendingFiles = files;
      this.#handoffMtime = dirMtime;
      this.#handoffSettled = settled;
      this.#forceRescan = retry;
    } finally {
      this.#journal = null;
    }
    return counts;
  }

  /** Takes a foreign-named payload in under its own name; the item for it, or null if dropped. */
  async #adopt(name: string, full: string, stored: StoredFile, receivedAtMs: number): Promise<PendingItem | null> {
    const id = stored.payload.handoff_id;
    const own = this.#pathOf('pending', id);
    const later = await this.#locateLater(id);
    if (later) {
      await this.#resolveCopy(name, full, stored, later);
      return null;
    }
    try {
      await this.#fs.link(full, own);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const existing = await this.#readIfExists(own);
      const same = existing !== undefined && this.#sameText(existing, stored.payloadText);
      if (same) await this.#dropCopy(full, stored, 'pending');
      else await this.#moveAside(name, full, this.#paths.conflict, this.#auditFor('conflict', stored.payload, 'pending', { file: name }));
      return null;
    }
    // Another process's scan may have dropped the foreign name as a copy of ours meanwhile.
    await unlessMissing(this.#fs.unlink(full), undefined);
    await this.#dirs.sync(this.#paths.handoff);
    const item = this.#makeItem(`${id}.json`, stored.payload, stored.payloadText, receivedAtMs);
    this.#indexAdd(item);
    await this.#committed(
      { id, from: null, to: 'pending', fromAgent: stored.payload.from_agent, toAgent: stored.payload.to_agent },
      this.#auditFor('adopt', stored.payload, 'pending', { file: name }),
    );
    return item;
  }

  #sameText(bytes: Uint8Array, payloadText: string): boolean {
    try {
      return decodeStoredFile(bytes).payloadText === payloadText;
    } catch {
      return false;
    }
  }

  async #locateLater(id: string): Promise<Located | undefined> {
    return this.#locate(id, LATER_STATES);
  }

  /** A second file for a handoff kept as `kept`: removed if it says the same, else moved aside. */
  async #resolveCopy(name: string, full: string, stored: StoredFile, kept: Located): Promise<void> {
    if (kept.file.payloadText === stored.payloadText) return this.#dropCopy(full, stored, kept.state);
    await this.#moveAside(name, full, this.#paths.conflict, this.#auditFor('conflict', stored.payload, kept.state, { file: path.relative(this.root, full) }));
  }

  /** Removes a copy of a handoff that is kept elsewhere (`kept`), and records that. */
  async #dropCopy(full: string, stored: StoredFile, kept: HandoffState): Promise<void> {
    if ((await unlessMissing(this.#fs.unlink(full), GONE)) === GONE) return;
    await this.#dirs.sync(path.dirname(full));
    await this.#audit.append(this.#auditFor('duplicate', stored.payload, kept, { file: path.relative(this.root, full) }));
  }

  /** Moves a dropped file out of handoff/ into `dir` under its own name (never replacing one). */
  async #moveAside(name: string, full: string, dir: string, audit: AuditEvent): Promise<void> {
    for (let n = 0; ; n++) {
      const target = path.join(dir, n === 0 ? name : `${name}.${n}`);
      try {
        await this.#fs.link(full, target);
        break;
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST' || n >= 1000) throw err;
      }
    }
    await this.#fs.unlink(full);
    await Promise.all([this.#dirs.sync(dir), this.#dirs.sync(path.dirname(full))]);
    await this.#audit.append(audit);
  }

  /** Moves an invalid file to rejected/_invalid/; `bytes` is undefined for one not read (too large). */
  async #quarantine(name: string, full: string, bytes: Uint8Array | undefined, err: unknown): Promise<void> {
    const code = err instanceof HandoffError ? err.code : 'SCHEMA';
    let id = '';
    let from = '';
    let to = '';
    try {
      const tree = bytes === undefined ? undefined : parseJson(bytes);
      if (isJsonObject(tree)) {
        if (isSafeId(tree.handoff_id)) id = tree.handoff_id;
        if (typeof tree.from_agent === 'string' && tree.from_agent.length <= 64) from = tree.from_agent;
        if (typeof tree.to_agent === 'string' && tree.to_agent.length <= 64) to = tree.to_agent;
      }
    } catch {
      // Not even JSON: recorded by file name only.
    }
    await this.#moveAside(name, full, this.#paths.invalid, {
      event: 'invalid',
      id,
      from_agent: from,
      to_agent: to,
      state: null,
      reason: code,
      by: RELAY_ACTOR,
      file: name,
    });
  }

  // ---------------------------------------------------------------- transitions

  async #put(id: string, bytes: Uint8Array, payload: ParsedPayload, payloadText: string): Promise<PutResult> {
    const exclusive = this.#indexIsTruth();
    // An exclusive spool indexes a put only once it is durable: a repeat is answered from memory.
    const indexed = exclusive ? this.#indexedFile(id) : undefined;
    if (indexed) {
      const answer = await this.#existingPut({ state: 'pending', path: this.#pathOf('pending', id), file: indexed }, payloadText);
      await this.#commitRemembered(id); // the first put's audit line may have failed
      return answer;
    }
    const later = await this.#locateLater(id);
    if (later) {
      const answer = await this.#existingPut(later, payloadText);
      // An idempotent answer is an acknowledgement: the state found must be durable, and its
      // transition committed if its own commit failed here.
      await this.#dirs.sync(this.#dirOf(later.state, id));
      await this.#commitRemembered(id);
      return answer;
    }
    const tmp = await this.#tmp.write(bytes);
    // Shared, others see the file the moment it is linked and may record a read or a claim of it
    // at once: holding the audit lock until the put's own line is written keeps theirs after it.
    let published = false;
    try {
      return await this.#audit.whileHolding(() => {
        published = true;
        return this.#publish(id, tmp, payload, payloadText, exclusive);
      });
    } catch (err) {
      // The lock was never had: the tmp file is nobody's now (a running process's are not swept).
      if (!published) await unlessMissing(this.#fs.unlink(tmp), undefined).catch(() => undefined);
      throw err;
    }
  }

  /** Links a put's written tmp file into handoff/ and commits it (the second half of `#put`). */
  async #publish(id: string, tmp: string, payload: ParsedPayload, payloadText: string, exclusive: boolean): Promise<PutResult> {
    const dest = this.#pathOf('pending', id);
    try {
      await this.#fs.link(tmp, dest);
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      await this.#fs.unlink(tmp);
      // From the disk, not the index: an earlier put of these bytes may have linked the file and
      // then failed (unacknowledged, so never indexed).
      const existing = await this.#locateOnDisk(id);
      if (!existing) throw new HandoffError('IO', 'a concurrent transition moved the handoff; retry');
      // The first writer may not have fsynced the directory yet: an idempotent answer is an
      // acknowledgement too.
      await this.#dirs.sync(this.#dirOf(existing.state, id));
      const answer = await this.#existingPut(existing, payloadText);
      if (existing.state === 'pending' && this.#indexIsTruth() && !this.#pending.has(id)) {
        // Puts of one id are serialized in this process, and no other writes an exclusive spool:
        // that earlier put failed before its commit. This repeat is the one acknowledged, so it
        // commits (indexes, audits, wakes pollers) as the first would have.
        this.#indexAdd(this.#makeItem(`${id}.json`, payload, payloadText, this.#o.clock()));
        this.#remember([this.#putMove(payload)]);
      }
      await this.#commitRemembered(id);
      return answer;
    }
    try {
      await this.#fs.unlink(tmp);
      await this.#dirs.sync(this.#paths.handoff);
    } catch (err) {
      // Not acknowledged, so not indexed: an exclusive spool takes the file back too (best
      // effort), so that the disk agrees with its index (get, expiry, a put of other bytes) and
      // the repeat takes the ordinary path. In a shared one others may have seen the file
      // already: it stays, and the repeat that finds it commits it.
      if (exclusive) await unlessMissing(this.#fs.unlink(dest), undefined).catch(() => undefined);
      else this.#remember([this.#putMove(payload)]);
      throw err;
    }
    // A transition of an earlier copy may have run between the check above and the link: then
    // the file just linked is a second copy of a handoff that has moved on. Not so in an exclusive
    // spool: puts of one id are serialized, the id was nowhere at the check, and only this process
    // creates or moves files, so no copy of it can have moved on since.
    const movedOn = exclusive ? undefined : await this.#locateLater(id);
    if (movedOn) {
      try {
        await this.#fs.unlink(dest);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
        // Another process moved ours on. What moved on with other bytes is an earlier copy, and
        // ours was set aside as a conflict: answered as the check above would have. With these
        // bytes it is ours, claimed (or rejected) at once; the other process's line waits for
        // the audit lock this put holds: it was created, and its line goes first.
        if (movedOn.file.payloadText !== payloadText) return this.#existingPut(movedOn, payloadText);
        this.#remember([this.#putMove(payload)]);
        await this.#commitRemembered(id);
        return { record: await this.#recordOf(movedOn), created: true };
      }
      await this.#dirs.sync(this.#paths.handoff);
      return this.#existingPut(movedOn, payloadText);
    }
    const item = this.#makeItem(`${id}.json`, payload, payloadText, this.#o.clock());
    this.#indexAdd(item);
    this.#remember([this.#putMove(payload)]);
    await this.#commitRemembered(id);
    return { record: this.#pendingRecord(payload, payloadText), created: true };
  }

  #putMove(payload: ParsedPayload): UnackedMove {
    return {
      event: { id: payload.handoff_id, from: null, to: 'pending', fromAgent: payload.from_agent, toAgent: payload.to_agent },
      audit: this.#auditFor('put', payload, 'pending'),
      emitted: false,
    };
  }

  async #existingPut(found: Located, payloadText: string): Promise<PutResult> {
    if (found.file.payloadText !== payloadText) {
      throw new HandoffError('CONFLICT', 'a handoff with this id and other content exists');
    }
    return { record: await this.#recordOf(found), created: false };
  }

  async #claim(id: string, agent: string, proposed?: string): Promise<Claim> {
    const src = this.#pathOf('pending', id);
    const stored = await this.#pendingFile(id, src);
    if (!stored) {
      const repeat = proposed === undefined ? undefined : await this.#repeatClaim(id, agent, proposed);
      return repeat ?? this.#claimLost(id);
    }
    const payload = stored.payload;
    if (payload.to_agent !== agent) throw new HandoffError('FORBIDDEN', 'only the target agent may claim a handoff');
    const now = this.#o.clock();
    if (isExpired(payload, now)) {
      await this.#idLock.run(id, () => this.#rejectPending(id, stored, { reason: 'expired', by: RELAY_ACTOR, event: 'expire', now }));
      throw new HandoffError('EXPIRED', 'the handoff is past its expires_at');
    }
    const dest = this.#pathOf('claimed', id);
    // rename replaces an existing destination: never let a stray pending copy overwrite a claim.
    const there = await this.#statIfExists(dest);
    if (holdsHandoff(there)) throw new HandoffError('ALREADY_CLAIMED', 'handoff already claimed');
    // Nor remove what a person put in its place (rename would replace a FIFO, and fail on a directory).
    if (there) throw new HandoffError('IO', `${path.relative(this.root, dest)} holds no handoff file (a directory, FIFO or oversized file); a person must remove it before this handoff can be claimed`);
    // The id's lock is held from the rename until the envelope is written, so that a repeat claim
    // in this process never mistakes the bare payload of this live claim for an abandoned one.
    return this.#idLock.run(id, async () => {
      // The index knows when an exclusive spool received the file; else the file's mtime tells.
      const receivedAtMs = this.#indexIsTruth() ? this.#pending.get(id)?.receivedAtMs : undefined;
      if ((await this.#renameOrGone(src, dest)) === GONE) return this.#claimLost(id);
      this.#indexRemove(id);
      return this.#writeClaim(id, agent, stored, dest, proposed ?? randomBytes(32).toString('base64url'), now, receivedAtMs);
    });
  }

  /** The file of `id` in handoff/: from the index when it is the truth, else read from disk. */
  async #pendingFile(id: string, src: string): Promise<StoredFile | undefined> {
    if (this.#indexIsTruth()) return this.#indexedFile(id);
    // A miss may be a file not adopted yet (or a foreign one at this name): the scan adopts it.
    const own = await this.#readOwn(id, src);
    if (own) return own;
    await this.#refreshPending();
    return this.#readOwn(id, src);
  }

  /** Writes the claimed envelope after the rename that decided the claim, and commits it. */
  async #writeClaim(id: string, agent: string, stored: StoredFile, dest: string, token: string, now: number, receivedAtMs?: number): Promise<Claim> {
    const payload = stored.payload;
    const leaseUntil = isoMillis(now + this.#o.leaseMs);
    const received = receivedAtMs ?? (await this.#statIfExists(dest))?.mtimeMs;
    const relay: RelayFacts = {
      state: 'claimed',
      handoff_id: id,
      from_agent: payload.from_agent,
      to_agent: payload.to_agent,
      ...(received !== undefined ? { received_at: isoMillis(received) } : {}),
      claimed_by: agent,
      claimed_at: isoMillis(now),
      lease_until: leaseUntil,
      claim_token_sha256: sha256Hex(token),
    };
    await this.#replace(dest, encodeEnvelope(relay, stored.payloadText), { kind: 'envelope', payloadText: stored.payloadText, payload, relay });
    if (!this.#o.exclusive) await this.#fenceIfMovedOn(id, dest, 'the claim ended while it was being written');
    await this.#commitMove(
      this.#paths.claimed,
      this.#paths.handoff,
      {
        id,
        from: 'pending',
        to: 'claimed',
        fromAgent: payload.from_agent,
        toAgent: payload.to_agent,
        ...(received !== undefined ? { pendingMs: Math.max(0, now - received) } : {}),
      },
      this.#auditFor('claim', payload, 'claimed', { by: agent }),
    );
    return { record: this.#recordFromRelay('claimed', stored, relay, dest), token, leaseUntil };
  }

  /**
   * A claim repeated with the token the claimer proposed the first time: the claimer journaled
   * the token before asking, crashed before it heard the answer, and asks again. Returns the
   * existing claim; or, when a crash left the claim's rename without its envelope (nobody holds a
   * token for it yet), finishes the claim with this token. Undefined when it is not a repeat.
   * @throws HandoffError UNAVAILABLE when the bare payload may be another process's live claim.
   */
  async #repeatClaim(id: string, agent: string, token: string): Promise<Claim | undefined> {
    return this.#idLock.run(id, async () => {
      const dest = this.#pathOf('claimed', id);
      const bytes = await this.#readIfExists(dest);
      if (!bytes) return undefined;
      const stored = this.#decodeOrThrow(dest, bytes);
      if (stored.payload.to_agent !== agent) return undefined;
      const relay = stored.relay;
      if (!relay) {
        // A bare payload is also what a live claim of another process looks like until its
        // envelope is written: finish it only when no such writer can exist (an exclusive spool,
        // or a file older than the recovery grace), and let the caller retry otherwise.
        if (!this.#o.exclusive && !(await this.#olderThanGrace(dest))) {
          throw new HandoffError('UNAVAILABLE', 'another claim of this handoff may still be being written; retry shortly');
        }
        return this.#writeClaim(id, agent, stored, dest, token, this.#o.clock());
      }
      // Recovery rolled it forward without a token: nobody can hold this claim.
      if (relay.state === 'claimed' && !relay.claim_token_sha256) return this.#writeClaim(id, agent, stored, dest, token, this.#o.clock());
      if (relay.state !== 'claimed' || relay.claimed_by !== agent || !tokenMatches(relay, token)) return undefined;
      await this.#ackRepeat(id, this.#paths.claimed, this.#paths.handoff);
      return { record: this.#recordFromRelay('claimed', stored, relay, dest), token, leaseUntil: relay.lease_until ?? '' };
    });
  }

  /**
   * A rewrite of claimed/X is a rename over the path: when a sweep in another process moved the
   * claim on (to rejected/) just before, the rewrite put a second copy back in claimed/. Then the
   * copy is removed again and the caller hears FENCED.
   */
  async #fenceIfMovedOn(id: string, dest: string, why: string): Promise<void> {
    const later = await this.#laterState(id);
    if (later !== 'archived' && later !== 'rejected') return;
    await unlessMissing(this.#fs.unlink(dest), undefined);
    await this.#dirs.sync(this.#paths.claimed);
    throw new HandoffError('FENCED', why);
  }

  /** Whether `file` was last changed longer than the recovery grace ago (no live writer is finishing it). */
  async #olderThanGrace(file: string): Promise<boolean> {
    const st = await this.#statIfExists(file);
    return st !== undefined && this.#o.clock() - Math.max(st.ctimeMs, st.mtimeMs) >= this.#o.recoveryGraceMs;
  }

  /** Why a claim found no pending file. */
  async #claimLost(id: string): Promise<never> {
    const found = await this.#locate(id);
    if (!found) throw new HandoffError('NOT_FOUND', 'no such handoff');
    if (found.state === 'rejected') {
      const relay = await this.#effectiveRelay(found.state, found.path, found.file);
      if (relay.reason === 'expired') throw new HandoffError('EXPIRED', 'the handoff expired before it was claimed');
      throw new HandoffError('INVALID_STATE', `the handoff was rejected (${relay.reason ?? 'no reason'})`);
    }
    throw new HandoffError('ALREADY_CLAIMED', 'handoff already claimed');
  }

  /** Reads the claim and checks token and lease. */
  async #heldClaim(id: string, token: string): Promise<{ stored: StoredFile; relay: RelayFacts } | undefined> {
    const stored = await this.#readClaimed(this.#pathOf('claimed', id));
    if (!stored) return undefined;
    const relay = stored.relay;
    if (!relay || relay.state !== 'claimed' || !tokenMatches(relay, token)) {
      throw new HandoffError('FENCED', 'the claim token does not match the current claim');
    }
    const leaseUntil = relay.lease_until ? parseIsoTime(relay.lease_until) : undefined;
    if (leaseUntil === undefined || this.#o.clock() > leaseUntil) throw new HandoffError('FENCED', 'the claim lease is over');
    return { stored, relay };
  }

  async #renew(id: string, token: string, leaseMs: number): Promise<HandoffRecord> {
    const held = await this.#heldClaim(id, token);
    if (!held) return this.#notClaimed(id, token);
    const dest = this.#pathOf('claimed', id);
    const relay: RelayFacts = { ...held.relay, lease_until: isoMillis(this.#o.clock() + leaseMs) };
    await this.#replace(dest, encodeEnvelope(relay, held.stored.payloadText), { ...held.stored, kind: 'envelope', relay });
    await this.#dirs.sync(this.#paths.claimed);
    await this.#fenceIfMovedOn(id, dest, 'the claim ended while it was being renewed');
    await this.#audit.append(this.#auditFor('renew', held.stored.payload, 'claimed', { by: relay.claimed_by }));
    return this.#recordFromRelay('claimed', held.stored, relay, dest);
  }

  /** The answer for an operation on a claim that is no longer (or not yet) in claimed/. */
  async #notClaimed(id: string, token: string, want?: FinalFacts): Promise<HandoffRecord> {
    const found = await this.#locate(id);
    if (!found) throw new HandoffError('NOT_FOUND', 'no such handoff');
    if (found.state === 'pending') throw new HandoffError('INVALID_STATE', 'the handoff is not claimed');
    const relay = await this.#effectiveRelay(found.state, found.path, found.file);
    if (found.state === 'claimed') throw new HandoffError('FENCED', 'the claim token does not match the current claim');
    if (!tokenMatches(relay, token)) throw new HandoffError('FENCED', 'the claim token does not match the claim that ended');
    if (want && found.state === want.state && (want.state === 'archived' ? relay.outcome : relay.reason) === want.value) {
      await this.#ackRepeat(id, path.dirname(found.path), this.#paths.claimed);
      return this.#recordOf(found);
    }
    if (want && found.state === want.state && interrupted(found.state, relay)) return this.#finishInterrupted(found, relay, want.facts);
    if (found.state === 'rejected' && relay.reason === 'lease_expired') throw new HandoffError('FENCED', 'the claim lease expired');
    throw new HandoffError('INVALID_STATE', `the handoff is already ${found.state}`);
  }

  /**
   * Finishes a transition that a crash cut off after its rename, with the facts of the caller who
   * repeats it (the claimer with its token, or the target of a pending handoff): the repeat is the
   * idempotent success it would have been, instead of a conflict with recovery's placeholder.
   */
  async #finishInterrupted(found: Located, relay: RelayFacts, facts: Partial<RelayFacts>): Promise<HandoffRecord> {
    // In this process the id's lock keeps us out of a transition in progress; another process's
    // transition looks exactly like an interrupted one until it rewrites the file.
    if (!this.#o.exclusive && !(await this.#olderThanGrace(found.path))) {
      throw new HandoffError('UNAVAILABLE', 'the handoff may still be being moved by another process; retry shortly');
    }
    const state = found.state;
    const final: RelayFacts = { ...relay, ...facts, state };
    delete final.recovered;
    await this.#replace(found.path, finalEnvelope(final, found.file.payloadText));
    await this.#dirs.sync(path.dirname(found.path));
    const payload = found.file.payload;
    const value = state === 'archived' ? final.outcome : final.reason;
    await this.#committed(
      { id: final.handoff_id, from: relay.claim_token_sha256 === undefined ? 'pending' : 'claimed', to: state, fromAgent: payload.from_agent, toAgent: payload.to_agent, reason: value },
      this.#auditFinal(state, payload, final),
    );
    return this.#recordFromRelay(state, found.file, final, found.path);
  }

  async #complete(id: string, token: string, input: CompleteInput): Promise<HandoffRecord> {
    const now = this.#o.clock();
    const facts: Partial<RelayFacts> = {
      completed_at: isoMillis(now),
      outcome: input.outcome,
      ...(input.notes !== undefined ? { notes: input.notes } : {}),
      ...(input.finalTranscript !== undefined ? { final_transcript: input.finalTranscript } : {}),
    };
    return this.#endClaim(id, token, { state: 'archived', value: input.outcome, facts });
  }

  /**
   * claimed → archived or rejected, by the claimer: token and lease checked, then the rename
   * decides, then the destination is rewritten with the final facts.
   */
  async #endClaim(id: string, token: string, want: FinalFacts): Promise<HandoffRecord> {
    const held = await this.#heldClaim(id, token);
    if (!held) return this.#notClaimed(id, token, want);
    const src = this.#pathOf('claimed', id);
    const dest = this.#pathOf(want.state, id);
    const relay: RelayFacts = { ...held.relay, ...want.facts, state: want.state };
    // Before the rename decides, so that a record too large to keep leaves the claim as it was.
    const text = finalEnvelope(relay, held.stored.payloadText);
    const there = await this.#statIfExists(dest);
    // Nor remove what a person put in its place, as for a claim.
    if (there && !holdsHandoff(there)) throw new HandoffError('IO', `${path.relative(this.root, dest)} holds no handoff file; a person must remove it before this handoff can end`);
    if (there) return this.#notClaimed(id, token, want);
    if ((await this.#renameOrGone(src, dest)) === GONE) return this.#notClaimed(id, token, want);
    await this.#replace(dest, text);
    const payload = held.stored.payload;
    await this.#commitMove(
      path.dirname(dest),
      this.#paths.claimed,
      { id, from: 'claimed', to: want.state, fromAgent: payload.from_agent, toAgent: payload.to_agent, reason: want.value },
      this.#auditFinal(want.state, payload, relay),
    );
    return this.#recordFromRelay(want.state, held.stored, relay, dest);
  }

  async #reject(id: string, input: RejectInput): Promise<HandoffRecord> {
    // A pending handoff can be claimed while we look; then look again, as a claimed one.
    for (let attempt = 0; attempt < 3; attempt++) {
      const found = await this.#locate(id);
      if (!found) throw new HandoffError('NOT_FOUND', 'no such handoff');
      if (found.file.payload.to_agent !== input.by) throw new HandoffError('FORBIDDEN', 'only the target agent may reject a handoff');
      if (found.state === 'pending') {
        const now = this.#o.clock();
        const done = await this.#rejectPending(id, found.file, { reason: input.reason, by: input.by, event: 'reject', now });
        if (done !== GONE) return done;
        continue;
      }
      const facts: Partial<RelayFacts> = { rejected_at: isoMillis(this.#o.clock()), reason: input.reason, rejected_by: input.by };
      if (found.state === 'claimed') {
        if (input.token === undefined) throw new HandoffError('FENCED', 'the handoff is claimed: the claim token is required');
        return this.#endClaim(id, input.token, { state: 'rejected', value: input.reason, facts });
      }
      const relay = await this.#effectiveRelay(found.state, found.path, found.file);
      if (found.state === 'rejected' && (relay.reason === input.reason || interrupted(found.state, relay))) {
        // Repeating a reject of a claim needs that claim's token; repeating one of a pending
        // handoff needs nothing more than being its target.
        if (relay.claim_token_sha256 !== undefined && !tokenMatches(relay, input.token)) {
          throw new HandoffError('FENCED', 'the claim token does not match the claim that ended');
        }
        if (relay.reason === input.reason) {
          await this.#ackRepeat(id, path.dirname(found.path), relay.claim_token_sha256 === undefined ? this.#paths.handoff : this.#paths.claimed);
          return this.#recordOf(found);
        }
        return this.#finishInterrupted(found, relay, facts);
      }
      throw new HandoffError('INVALID_STATE', `the handoff is already ${found.state}`);
    }
    throw new HandoffError('INVALID_STATE', 'the handoff keeps changing state; retry');
  }

  /** pending → rejected; GONE when the pending file moved first. */
  async #rejectPending(
    id: string,
    stored: StoredFile,
    how: { reason: string; by: string; event: AuditEventName; now: number },
  ): Promise<HandoffRecord | typeof GONE> {
    const src = this.#pathOf('pending', id);
    const dest = this.#pathOf('rejected', id);
    if (await this.#statIfExists(dest)) return GONE;
    if ((await this.#renameOrGone(src, dest)) === GONE) return GONE;
    this.#indexRemove(id);
    const payload = stored.payload;
    const relay: RelayFacts = {
      state: 'rejected',
      handoff_id: id,
      from_agent: payload.from_agent,
      to_agent: payload.to_agent,
      rejected_at: isoMillis(how.now),
      reason: how.reason,
      rejected_by: how.by,
    };
    await this.#replace(dest, encodeEnvelope(relay, stored.payloadText));
    await this.#commitMove(
      path.dirname(dest),
      this.#paths.handoff,
      { id, from: 'pending', to: 'rejected', fromAgent: payload.from_agent, toAgent: payload.to_agent, reason: how.reason },
      this.#auditFor(how.event, payload, 'rejected', { reason: how.reason, by: how.by }),
    );
    return this.#recordFromRelay('rejected', stored, relay, dest);
  }

  /** claimed → rejected (`lease_expired`) when the lease is over at `now`; true if moved. */
  async #expireLeaseIfDue(id: string, now: number): Promise<boolean> {
    const src = this.#pathOf('claimed', id);
    // An unreadable file is not ours to judge here; recovery moves it aside.
    const stored = this.#claimedFiles.get(src) ?? (await this.#readDecoded(src));
    if (!stored) return false;
    const relay = await this.#effectiveRelay('claimed', src, stored);
    const leaseUntil = relay.lease_until ? parseIsoTime(relay.lease_until) : undefined;
    if (leaseUntil !== undefined && !(now > leaseUntil)) return false;
    const dest = this.#pathOf('rejected', id);
    if (await this.#statIfExists(dest)) return false;
    if ((await this.#renameOrGone(src, dest)) === GONE) return false;
    const final: RelayFacts = { ...relay, state: 'rejected', rejected_at: isoMillis(now), reason: 'lease_expired', rejected_by: RELAY_ACTOR };
    await this.#replace(dest, encodeEnvelope(final, stored.payloadText));
    const payload = stored.payload;
    await this.#commitMove(
      path.dirname(dest),
      this.#paths.claimed,
      { id, from: 'claimed', to: 'rejected', fromAgent: payload.from_agent, toAgent: payload.to_agent, reason: 'lease_expired' },
      this.#auditFor('lease_expire', payload, 'rejected', { reason: 'lease_expired', by: RELAY_ACTOR }),
    );
    return true;
  }

  // ---------------------------------------------------------------- recovery

  /**
   * Brings the spool to a consistent state after a crash (idempotent); `openSpool` runs it.
   *
   * By default only `tmp/`, `handoff/` and `claimed/` are examined, so opening a spool costs the
   * same with 100,000 archived handoffs as with none. A crash between a terminal rename and the
   * rewrite that follows it leaves a bare payload in `archive/` or `rejected/`; readers already
   * derive its state from the directory, and `{ full: true }` (the `handoff spool recover --full`
   * command) also rewrites such files and resolves archive/rejected copies of one id.
   * @throws HandoffError IO
   */
  async recover(options: { full?: boolean } = {}): Promise<RecoveryReport> {
    this.#assertWritable();
    return this.#guard('recover', async () => {
      const report: RecoveryReport = { tmpRemoved: 0, duplicatesResolved: 0, rolledForward: 0, adopted: 0, invalid: 0, deferred: 0, skipped: 0 };
      await this.#ensureLayout();
      if (!this.#recovered) {
        // Before anything here writes: another live process's exclusive spool is not ours to touch.
        this.#ownerKey = await checkOwner(this.root, { take: this.#o.exclusive });
      }
      if (!this.#recovered && this.#o.exclusive) {
        // Nobody else writes an exclusive spool: a lock present at open is a dead predecessor's,
        // and waiting for it to go stale would keep a restarted hub from serving.
        await removeLeftoverLock(this.#audit.lockPath);
        await removeLeftoverLock(path.join(this.#paths.events, SWEEP_LOCK));
        await removeLeftoverLock(path.join(this.#paths.events, PURGE_LOCK));
      }
      this.#recovered = true;
      this.#claimedFiles.clear();
      await this.#cleanTmp(report);
      const counts = await this.#exclusiveScan(async () => {
        const dirStat = await this.#fs.stat(this.#paths.handoff);
        return this.#scanPending(dirStat.mtimeMs, true);
      });
      report.adopted = counts.adopted;
      report.duplicatesResolved += counts.duplicates;
      report.invalid += counts.invalid;
      report.skipped += counts.skipped;
      await this.#recoverDir('claimed', this.#paths.claimed, report);
      if (!options.full) {
        report.deferred = this.#deferred.size;
        await this.#audit.repairTail();
        return report;
      }
      const buckets = new Set([
        ...(await this.#readdirIfExists(this.#paths.archive)),
        ...(await this.#readdirIfExists(this.#paths.rejected)),
      ]);
      for (const bucket of [...buckets].filter((b) => BUCKET_RE.test(b)).sort()) {
        await this.#recoverBucket(bucket, report);
      }
      report.deferred = this.#deferred.size;
      await this.#audit.repairTail();
      return report;
    });
  }

  async #ensureLayout(): Promise<void> {
    const mode = this.#o.dirMode;
    // Parents are fsynced at every open, created now or not: a directory found may come from an
    // open whose fsync failed or that died before it (as in #ensureDir).
    const make = async (parent: string, children: readonly string[]): Promise<void> => {
      const present = new Set(await this.#readdirIfExists(parent));
      for (const child of children) {
        if (!present.has(child)) await this.#fs.mkdir(path.join(parent, child), mode);
      }
      await this.#dirs.sync(parent);
    };
    await this.#fs.mkdir(this.root, mode);
    await this.#dirs.sync(path.dirname(this.root));
    await make(this.root, ['tmp', HANDOFF_STATES.pending, HANDOFF_STATES.claimed, HANDOFF_STATES.archived, HANDOFF_STATES.rejected, 'events']);
    await make(this.#paths.rejected, ['_invalid', '_conflict']);
    for (const dir of [this.root, this.#paths.tmp, this.#paths.handoff, this.#paths.claimed, this.#paths.archive, this.#paths.rejected, this.#paths.events]) {
      this.#knownDirs.add(dir);
    }
  }

  /**
   * Deletes the tmp files whose writer is gone. Only regular files: the spool writes nothing else
   * there, so a directory or FIFO is a person's, left to them (and counted as skipped).
   */
  async #cleanTmp(report: RecoveryReport): Promise<void> {
    const now = this.#o.clock();
    for (const name of await this.#readdirIfExists(this.#paths.tmp)) {
      const full = path.join(this.#paths.tmp, name);
      const st = await this.#statIfExists(full);
      if (!st) continue;
      if (!st.isFile) {
        report.skipped++;
        continue;
      }
      const owner = parseTmpName(name);
      const orphan =
        owner === undefined ||
        (owner.pid === process.pid ? !LIVE_INSTANCES.has(owner.instance) : !isLive(owner.pid)) ||
        now - st.mtimeMs > STALE_TMP_MS;
      if (!orphan) continue;
      try {
        if ((await unlessMissing(this.#fs.unlink(full), GONE)) !== GONE) report.tmpRemoved++;
      } catch (err) {
        // Replaced by a directory since the stat (unlink(2) says EISDIR on Linux, EPERM elsewhere),
        // or not ours to remove: left for a person, like the directories above.
        const code = errnoCode(err);
        if (code !== 'EISDIR' && code !== 'EPERM') throw err;
        report.skipped++;
      }
    }
  }

  /**
   * The file at `full` decoded; undefined when it is gone, when it holds no handoff (not a regular
   * file, or too large: left in place), or when it is not a valid handoff file and has been moved
   * to rejected/_invalid/ (each counted in the report).
   */
  async #readOrQuarantine(name: string, full: string, report: RecoveryReport): Promise<StoredFile | undefined> {
    const bytes = await this.#read(full);
    if (bytes === 'missing') return undefined;
    if (bytes === 'skipped') {
      // No handoff file (a directory, a FIFO, something far too large): not ours to move or delete.
      report.skipped++;
      return undefined;
    }
    try {
      return decodeStoredFile(bytes);
    } catch (err) {
      await this.#quarantine(name, full, bytes, err);
      report.invalid++;
      return undefined;
    }
  }

  /** Recovery of claimed/: roll forward, drop copies of ids that are further on, quarantine junk. */
  async #recoverDir(state: 'claimed', dir: string, report: RecoveryReport): Promise<void> {
    for (const name of await this.#readdirIfExists(dir)) {
      const id = idOfName(name);
      if (id === undefined) continue;
      const full = path.join(dir, name);
      const stored = await this.#readOrQuarantine(name, full, report);
      if (!stored) continue;
      const later = await this.#locate(id, ['rejected', 'archived']);
      if (later) {
        await this.#resolveCopy(name, full, stored, later);
        report.duplicatesResolved++;
        continue;
      }
      await this.#recoverFile(state, full, stored, report);
    }
  }

  async #recoverBucket(bucket: string, report: RecoveryReport): Promise<void> {
    const archiveDir = path.join(this.#paths.archive, bucket);
    const rejectedDir = path.join(this.#paths.rejected, bucket);
    const archived = new Set((await this.#readdirIfExists(archiveDir)).filter((n) => idOfName(n) !== undefined));
    for (const [state, dir] of [
      ['archived', archiveDir],
      ['rejected', rejectedDir],
    ] as const) {
      const prefix = Buffer.from(envelopePrefix(state), 'utf8');
      for (const name of await this.#readdirIfExists(dir)) {
        if (idOfName(name) === undefined) continue;
        const full = path.join(dir, name);
        const head = await this.#readHead(full, prefix.length);
        if (head === 'missing') continue;
        if (head === 'skipped') {
          report.skipped++;
          continue;
        }
        const upToDate = Buffer.compare(Buffer.from(head), prefix) === 0;
        if (state === 'rejected' && archived.has(name)) {
          // Completed and rejected both: the completion carries more, and only a manual copy or a
          // foreign tool can make this; keep the archive.
          const kept = await this.#locate(idOfName(name) as string, ['archived']);
          if (!kept) continue;
          const copy = await this.#readOrQuarantine(name, full, report);
          if (!copy) continue;
          await this.#resolveCopy(name, full, copy, kept);
          report.duplicatesResolved++;
          continue;
        }
        if (upToDate) continue;
        const stored = await this.#readOrQuarantine(name, full, report);
        if (!stored) continue;
        await this.#recoverFile(state, full, stored, report);
      }
    }
  }

  /** Rolls one file forward to its directory's state, or defers it if it is too young. */
  async #recoverFile(state: HandoffState, full: string, stored: StoredFile, report: RecoveryReport): Promise<void> {
    if (stored.relay?.state === state) return;
    const done = await this.#rollForwardFile(state, full, this.#o.clock(), stored);
    if (done === 'rolled') report.rolledForward++;
    else if (done === false) this.#deferred.set(full, state);
  }

  /**
   * Rewrites a file whose content is behind its directory, if it is old enough that no live
   * writer can still be finishing it. True (or 'rolled') when nothing is left to do.
   */
  async #rollForwardFile(state: HandoffState, full: string, now: number, known?: StoredFile): Promise<boolean | 'rolled'> {
    const st = await this.#statIfExists(full);
    if (!st) return true;
    const stored = known ?? (await this.#readDecoded(full));
    if (!stored) return true;
    if (stored.relay?.state === state) return true;
    const touched = Math.max(st.ctimeMs, st.mtimeMs);
    if (now - touched < this.#o.recoveryGraceMs) return false;
    const relay = this.#rolledForward(state, stored, touched);
    await this.#replace(full, encodeEnvelope(relay, stored.payloadText));
    await this.#dirs.sync(path.dirname(full));
    if (state === 'claimed') {
      // A claim moved on by another process while we rewrote it: ours is now the stale copy.
      const later = await this.#locate(relay.handoff_id, ['rejected', 'archived']);
      if (later) {
        await this.#dropCopy(full, stored, later.state);
        return true;
      }
    }
    await this.#audit.append(this.#auditFor('recover', stored.payload, state, relay.reason !== undefined && state === 'rejected' ? { reason: relay.reason } : {}));
    return 'rolled';
  }
}

/** The id of a `<id>.json` file name, or undefined. */
function idOfName(name: string): string | undefined {
  if (!name.endsWith('.json')) return undefined;
  const id = name.slice(0, -5);
  return isSafeId(id) ? id : undefined;
}

/**
 * Opens (creating if needed) the spool at `options.root` and runs recovery.
 * @throws HandoffError CONFIG (bad options), IO
 */
export async function openSpool(options: SpoolOptions): Promise<Spool> {
  const spool = new Spool(options);
  if (spool.readOnly) {
    // Nothing is created for a reader: a root without handoff/ is a wrong path, not an empty spool.
    const st = await (options.fs ?? createRealFsOps()).stat(path.join(spool.root, HANDOFF_STATES.pending)).catch(() => undefined);
    if (!st?.isDirectory) throw new HandoffError('CONFIG', `no spool directory at ${spool.root} (it has no ${HANDOFF_STATES.pending}/)`);
    return spool;
  }
  try {
    await spool.recover({ full: options.fullRecovery });
  } catch (err) {
    await spool.close();
    throw err;
  }
  return spool;
}
