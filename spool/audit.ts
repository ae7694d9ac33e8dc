/**
 * The append-only, hash-chained audit log: `events/<YYYY-MM-DD>.jsonl`, one JSON line per state
 * transition and per delivery of a payload to a reader.
 *
 * Line format (keys in this order, no whitespace):
 *   {"seq":N,"at":ISO,"event":E,"id":ID,"from_agent":A,"to_agent":B,"state":S,
 *    "reason"?:R,"by"?:W,"file"?:F,"prev":H}
 * `seq` counts lines from 1 across all files; `prev` is the SHA-256 (hex) of the previous line's
 * bytes (without its newline), 64 zeros for the first line of the first file; a new day's file
 * continues the chain from the last line of the previous file. Editing, deleting or reordering a
 * line therefore breaks the chain at that line, and `verifyAudit` names it. (Removing or editing
 * the very last line leaves no successor to disagree: compare `lastHash` with a copy kept elsewhere
 * to catch that.) A line never holds a transcript, phone number, secret or claim token.
 *
 * Appends from one process are batched: every line appended in the same tick goes out in one
 * write and one fsync. Appends from several processes (local mode) take a proper-lockfile lock on
 * `events/.audit.lock` and re-read the chain's tail under it, so the chain stays linear. A line
 * left half-written by a crash was never acknowledged; the next append (under the lock) cuts it off
 * before continuing the chain.
 *
 * A step that makes a handoff visible to other processes (a put in local mode) runs `whileHolding`
 * the lock, and commits its own line before letting go: another process that sees the file and
 * records something about it (a read, a claim) waits for the lock, so its line follows the put's.
 *
 * A single writer (the log of an exclusive spool: no other process appends) reads the tail under
 * the lock once, when the spool opens, and then keeps it in memory: its batches skip the lock and
 * the re-read, and the day's file stays open between them. A failed write forgets the tail, so the
 * next batch reads it again under the lock.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { HandoffError, isoMillis } from '../protocol/index.js';
import { errnoCode, ioError } from './durable.js';
import { createRealFsOps, type FsFd, type FsOps } from './fs-ops.js';
import { acquireLock, type ReleaseLock } from './lock.js';
import { KeyedMutex } from './mutex.js';
import type { HandoffState } from './types.js';

/** What is recorded; the transition events name the state change, `read` a delivery. */
export const AUDIT_EVENTS = Object.freeze([
  'put',
  'adopt',
  'claim',
  'renew',
  'complete',
  'reject',
  'expire',
  'lease_expire',
  'read',
  'recover',
  'duplicate',
  'conflict',
  'invalid',
  'purge',
] as const);

/** One of `AUDIT_EVENTS`. */
export type AuditEventName = (typeof AUDIT_EVENTS)[number];

/** One event to append (the log adds `seq`, `at` and `prev`). */
export interface AuditEvent {
  event: AuditEventName;
  id: string;
  from_agent: string;
  to_agent: string;
  state: HandoffState | null;
  reason?: string;
  by?: string;
  /** A file name, for events about files that carry no usable id (invalid or conflicting drops). */
  file?: string;
}

/** The `prev` of the first line of the log. */
export const GENESIS_HASH = '0'.repeat(64);

const FILE_RE = /^\d{4}-\d{2}-\d{2}\.jsonl$/;
const TAIL_CHUNK = 16 * 1024;
const NEWLINE = 0x0a;

function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

interface Tail {
  /** Latest log file name, or undefined when the log is empty. */
  file: string | undefined;
  size: number;
  hash: string;
  seq: number;
}

interface Pending {
  event: AuditEvent;
  at: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface AuditLogOptions {
  fs: FsOps;
  dir: string;
  clock: () => number;
  fileMode: number;
  /** True when no other process appends to this log (see the header); default false. */
  singleWriter?: boolean;
}

/** The writer side of the audit log. */
export class AuditLog {
  readonly #fs: FsOps;
  readonly #dir: string;
  readonly #clock: () => number;
  readonly #mode: number;
  readonly #lockPath: string;
  readonly #singleWriter: boolean;
  /** A single writer's open day file. */
  #open: { file: string; fd: FsFd } | undefined;
  #queue: Pending[] = [];
  #scheduled = false;
  #flushing: Promise<void> | null = null;
  #tail: Tail | undefined;
  #idle: Array<() => void> = [];
  /** Set while `whileHolding` has the lock: batches are written under it. */
  #held: ReleaseLock | undefined;
  /** While `whileHolding` takes or lets go of the lock, no batch starts. */
  #paused = false;
  /** One `whileHolding` at a time in this process (the lock is not re-entrant). */
  readonly #holding = new KeyedMutex();
  /** Day files whose entry in the directory this instance has fsynced. */
  readonly #durableFiles = new Set<string>();

  constructor(options: AuditLogOptions) {
    this.#fs = options.fs;
    this.#dir = options.dir;
    this.#clock = options.clock;
    this.#mode = options.fileMode;
    this.#lockPath = path.join(options.dir, '.audit.lock');
    this.#singleWriter = options.singleWriter ?? false;
  }

  /**
   * Queues one line; its position in the chain is fixed now (appends are written in call order).
   * Resolves once the line is fsynced. @throws HandoffError IO
   */
  append(event: AuditEvent): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ event, at: this.#clock(), resolve, reject });
      this.#schedule();
    });
  }

  /** The cross-process lock that keeps the chain linear. */
  get lockPath(): string {
    return this.#lockPath;
  }

  /** Cuts off a half-written last line left by a crash (under the lock). */
  async repairTail(): Promise<void> {
    const release = await acquireLock(this.#lockPath);
    try {
      this.#tail = await this.#readTail();
    } finally {
      await release();
    }
  }

  /**
   * Runs `fn` holding the cross-process lock: no other process appends until `fn` has settled, and
   * every batch of this process written meanwhile (`fn`'s own lines, which it awaits, and any
   * other) goes under it. Not re-entrant: `fn` must not call it. A single writer has no one to keep
   * out and just runs `fn`.
   */
  async whileHolding<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#singleWriter) return fn();
    return this.#holding.run('', async () => {
      // No batch may be waiting for the lock while it is held here: the lines `fn` waits for would
      // queue behind that batch, which would wait for `fn`. So batches pause around the handover.
      await this.#pause();
      let release: ReleaseLock;
      try {
        release = await acquireLock(this.#lockPath);
        this.#held = release;
      } finally {
        this.#resume();
      }
      try {
        return await fn();
      } finally {
        await this.#pause();
        this.#held = undefined;
        try {
          await release();
        } finally {
          this.#resume();
        }
      }
    });
  }

  /** Lets the batch being written finish, and starts no other until `#resume`. */
  async #pause(): Promise<void> {
    this.#paused = true;
    while (this.#flushing) await this.#flushing;
  }

  #resume(): void {
    this.#paused = false;
    if (this.#queue.length > 0) this.#schedule();
  }

  /** Resolves when every queued line has been written (or has failed). */
  drain(): Promise<void> {
    if (!this.#scheduled && !this.#flushing && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Drains, then closes the file a single writer keeps open. */
  async close(): Promise<void> {
    await this.drain();
    await this.#closeOpen();
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing || this.#paused) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: every append made in this tick joins the same batch.
    setImmediate(() => this.#run());
  }

  #run(): void {
    this.#scheduled = false;
    if (this.#paused) return; // `#resume` schedules the lines again
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return this.#notifyIdle();
    this.#flushing = this.#flush(batch).then(
      () => {
        for (const p of batch) p.resolve();
      },
      (err: unknown) => {
        const wrapped = ioError('audit log append', err);
        for (const p of batch) p.reject(wrapped);
      },
    );
    void this.#flushing.finally(() => {
      this.#flushing = null;
      if (this.#queue.length > 0) this.#schedule();
      else this.#notifyIdle();
    });
  }

  #notifyIdle(): void {
    const waiters = this.#idle;
    this.#idle = [];
    for (const w of waiters) w();
  }

  async #flush(batch: Pending[]): Promise<void> {
    if (this.#singleWriter && this.#tail !== undefined) return this.#write(batch, this.#tail);
    // Re-read even under the held lock (cheap when the file is as left): a holder stalled past the
    // lock's stale time may have lost it to another writer.
    if (this.#held !== undefined) return this.#write(batch, await this.#readTail());
    const release = await acquireLock(this.#lockPath);
    try {
      await this.#write(batch, await this.#readTail());
    } finally {
      await release();
    }
  }

  /** Appends the batch after `tail` (under the lock, or as the single writer). */
  async #write(batch: Pending[], tail: Tail): Promise<void> {
    const touched: Array<{ full: string; size: number }> = [];
    try {
      // Group by file; a file never goes back to an earlier date than the chain's latest file, so
      // the order of file names stays the order of the chain even when clocks disagree.
      const groups: Array<{ file: string; lines: string[] }> = [];
      let { hash, seq } = tail;
      let latest = tail.file;
      for (const p of batch) {
        let file = `${isoMillis(p.at).slice(0, 10)}.jsonl`;
        if (latest !== undefined && file < latest) file = latest;
        latest = file;
        seq += 1;
        const line = formatLine(seq, p.at, p.event, hash);
        hash = sha256Hex(line);
        const last = groups[groups.length - 1];
        if (last && last.file === file) last.lines.push(line);
        else groups.push({ file, lines: [line] });
      }
      let size = tail.size;
      for (const g of groups) {
        const full = path.join(this.#dir, g.file);
        const isNewFile = g.file !== tail.file;
        const data = Buffer.from(`${g.lines.join('\n')}\n`, 'utf8');
        touched.push({ full, size: isNewFile ? 0 : tail.size });
        if (this.#singleWriter) {
          const fd = await this.#openFor(g.file, full);
          await this.#fs.write(fd, data);
          await this.#fs.fsync(fd);
        } else {
          const fd = await this.#fs.openAppend(full, this.#mode);
          try {
            await this.#fs.write(fd, data);
            await this.#fs.fsync(fd);
          } finally {
            await this.#fs.close(fd);
          }
        }
        // The day file's entry in events/ must be durable too, also for a file found on disk: an
        // earlier attempt (or process) may have created it and failed (or died) before this fsync.
        if (!this.#durableFiles.has(g.file)) {
          await this.#fs.fsyncDir(this.#dir);
          this.#durableFiles.add(g.file);
        }
        size = isNewFile ? data.length : size + data.length;
      }
      this.#tail = { file: latest, size, hash, seq };
    } catch (err) {
      // The batch's lines were never acknowledged: cut them off, so that the log keeps only lines
      // whose operation was acknowledged, and the repeat of an operation that failed here is not
      // recorded twice. If that fails too, they may stay. Either way the tail on disk is unknown
      // now: it is re-read next time.
      for (const t of touched) await this.#fs.truncate(t.full, t.size).catch(() => undefined);
      this.#tail = undefined;
      await this.#closeOpen();
      throw err;
    }
  }

  /** The single writer's descriptor of `file`, opening it (and closing the previous day's). */
  async #openFor(file: string, full: string): Promise<FsFd> {
    if (this.#open?.file === file) return this.#open.fd;
    await this.#closeOpen();
    const fd = await this.#fs.openAppend(full, this.#mode);
    this.#open = { file, fd };
    return fd;
  }

  async #closeOpen(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    if (open !== undefined) await this.#fs.close(open.fd).catch(() => undefined);
  }

  /** Finds the chain's last line (hash and seq), trimming a half-written line. Lock held. */
  async #readTail(): Promise<Tail> {
    const names = (await this.#fs.readdir(this.#dir)).filter((n) => FILE_RE.test(n)).sort();
    for (let i = names.length - 1; i >= 0; i--) {
      const name = names[i] as string;
      const full = path.join(this.#dir, name);
      let size: number;
      try {
        size = (await this.#fs.stat(full)).size;
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue;
        throw err;
      }
      const cached = this.#tail;
      if (cached && cached.file === name && cached.size === size) return cached;
      const last = await this.#lastLine(full, size);
      if (last) return { file: name, ...last };
    }
    return { file: undefined, size: 0, hash: GENESIS_HASH, seq: 0 };
  }

  /** The last complete line of one file (cutting a partial one off); undefined if it has none. */
  async #lastLine(full: string, size: number): Promise<{ hash: string; seq: number; size: number } | undefined> {
    if (size === 0) return undefined;
    let offset = Math.max(0, size - TAIL_CHUNK);
    let bytes = await this.#fs.readRange(full, offset, size - offset);
    for (;;) {
      let end = bytes.length;
      if (bytes[end - 1] !== NEWLINE) end = bytes.lastIndexOf(NEWLINE) + 1;
      const lineStart = end >= 2 ? bytes.lastIndexOf(NEWLINE, end - 2) + 1 : 0;
      if (offset > 0 && lineStart === 0) {
        // The chunk does not hold the whole last line: read the file.
        bytes = await this.#fs.readFile(full);
        offset = 0;
        continue;
      }
      if (end < bytes.length) {
        // A half-written line: it was never acknowledged, and the chain must continue from the
        // last complete line.
        await this.#fs.truncate(full, offset + end);
      }
      if (end === 0) return undefined;
      const line = bytes.subarray(lineStart, end - 1);
      let seq = 0;
      try {
        const parsed = JSON.parse(Buffer.from(line).toString('utf8')) as { seq?: unknown };
        if (typeof parsed.seq === 'number' && Number.isInteger(parsed.seq)) seq = parsed.seq;
      } catch {
        // A corrupt tail still anchors the chain by its bytes; verifyAudit reports the line.
      }
      return { hash: sha256Hex(line), seq, size: offset + end };
    }
  }
}

function formatLine(seq: number, at: number, e: AuditEvent, prev: string): string {
  const line: Record<string, unknown> = {
    seq,
    at: isoMillis(at),
    event: e.event,
    id: e.id,
    from_agent: e.from_agent,
    to_agent: e.to_agent,
    state: e.state,
  };
  if (e.reason !== undefined) line.reason = e.reason;
  if (e.by !== undefined) line.by = e.by;
  if (e.file !== undefined) line.file = e.file;
  line.prev = prev;
  return JSON.stringify(line);
}

/** Where the chain first breaks. */
export interface AuditProblem {
  file: string;
  /** 1-based line number within `file`. */
  line: number;
  problem: string;
}

/** The outcome of `verifyAudit`. */
export interface AuditVerifyResult {
  ok: boolean;
  /** Number of lines read. */
  lines: number;
  /**
   * SHA-256 of the last line. The chain alone cannot show that lines were cut off its end; keep
   * this elsewhere and pass it back as `anchor` to a later verify, which then fails if that line
   * (or anything before it) is gone.
   */
  lastHash: string;
  firstBad?: AuditProblem;
  /** With `anchor`: the seq of the line whose hash it is (undefined: not in the log). */
  anchorSeq?: number;
}

/** A line's hash as `verifyAudit` reports it: 64 lowercase hex digits. */
export const AUDIT_HASH_RE = /^[0-9a-f]{64}$/;

interface LogLine {
  file: string;
  line: number;
  text: string;
  hash: string;
  parsed: { seq: number; prev: string } | undefined;
  problem?: string;
}

const REQUIRED_LINE_FIELDS = ['seq', 'at', 'event', 'id', 'state', 'prev'] as const;

function parseLogLine(file: string, line: number, text: string): LogLine {
  const base = { file, line, text, hash: sha256Hex(text) };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ...base, parsed: undefined, problem: 'not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ...base, parsed: undefined, problem: 'not a JSON object' };
  }
  const obj = value as Record<string, unknown>;
  const missing = REQUIRED_LINE_FIELDS.find((k) => !Object.hasOwn(obj, k));
  if (missing) return { ...base, parsed: undefined, problem: `missing field ${missing}` };
  if (typeof obj.seq !== 'number' || !Number.isInteger(obj.seq) || typeof obj.prev !== 'string' || !/^[0-9a-f]{64}$/.test(obj.prev)) {
    return { ...base, parsed: undefined, problem: 'seq or prev malformed' };
  }
  return { ...base, parsed: { seq: obj.seq, prev: obj.prev } };
}

/**
 * Checks the hash chain of an `events/` directory and names the first edited, deleted or
 * reordered line. With `anchor` (a `lastHash` of an earlier verify, kept elsewhere), the log must
 * still hold that line, else lines were cut off after it was taken (reported as the problem
 * after the last line). @throws HandoffError CONFIG for a malformed anchor, IO when the directory
 * cannot be read.
 */
export async function verifyAudit(eventsDir: string, options: { fs?: FsOps; anchor?: string } = {}): Promise<AuditVerifyResult> {
  const { anchor } = options;
  if (anchor !== undefined && !AUDIT_HASH_RE.test(anchor)) {
    throw new HandoffError('CONFIG', 'an audit anchor is the 64 lowercase hex digits of a line hash, as verify prints it');
  }
  const fsOps = options.fs ?? createRealFsOps();
  let names: string[];
  try {
    names = (await fsOps.readdir(eventsDir)).filter((n) => FILE_RE.test(n)).sort();
  } catch (err) {
    throw ioError(`reading ${eventsDir}`, err);
  }
  const lines: LogLine[] = [];
  for (const name of names) {
    const bytes = Buffer.from(await fsOps.readFile(path.join(eventsDir, name)));
    const text = bytes.toString('utf8');
    if (text.length === 0) continue;
    const parts = text.split('\n');
    const complete = text.endsWith('\n');
    if (complete) parts.pop();
    parts.forEach((part, i) => {
      const entry = parseLogLine(name, i + 1, part);
      if (!complete && i === parts.length - 1) entry.problem = 'incomplete last line (no newline): a write cut off by a crash';
      lines.push(entry);
    });
  }
  const result = (firstBad?: AuditProblem): AuditVerifyResult => ({
    ok: firstBad === undefined,
    lines: lines.length,
    lastHash: lines.length > 0 ? (lines[lines.length - 1] as LogLine).hash : GENESIS_HASH,
    ...(firstBad ? { firstBad } : {}),
  });
  const bad = (l: LogLine, problem: string) => result({ file: l.file, line: l.line, problem });

  for (let k = 0; k < lines.length; k++) {
    const cur = lines[k] as LogLine;
    const before = k > 0 ? (lines[k - 1] as LogLine) : undefined;
    const next = lines[k + 1];
    if (cur.problem || !cur.parsed) return bad(cur, cur.problem ?? 'malformed');
    const expectedSeq = before?.parsed ? before.parsed.seq + 1 : 1;
    if (cur.parsed.seq !== expectedSeq) {
      if (cur.parsed.seq < expectedSeq) return bad(cur, `out of order or repeated: seq ${cur.parsed.seq}, expected ${expectedSeq}`);
      if (next?.parsed?.seq === expectedSeq) return bad(cur, `out of order: seq ${cur.parsed.seq} comes before seq ${expectedSeq}`);
      return bad(cur, `line(s) missing before this one: seq ${cur.parsed.seq}, expected ${expectedSeq}`);
    }
    const expectedPrev = before ? before.hash : GENESIS_HASH;
    if (cur.parsed.prev !== expectedPrev) {
      // One changed line breaks the link after it. If this line's own bytes changed (its prev), the
      // link to the next line breaks too; otherwise it was the line before that changed.
      if (!before || (next?.parsed && next.parsed.prev !== cur.hash)) {
        return bad(cur, 'edited: prev does not match the hash of the previous line');
      }
      return bad(before, 'edited: its hash does not match the prev recorded by the next line');
    }
  }
  if (anchor === undefined || anchor === GENESIS_HASH) return result();
  const at = lines.find((l) => l.hash === anchor);
  if (at?.parsed) return { ...result(), anchorSeq: at.parsed.seq };
  const last = lines[lines.length - 1];
  return result({
    file: last?.file ?? '',
    line: (last?.line ?? 0) + 1,
    problem: `the anchor line ${anchor.slice(0, 12)}… is not in the log: lines were cut off its end (or the log was replaced) after the anchor was taken`,
  });
}
