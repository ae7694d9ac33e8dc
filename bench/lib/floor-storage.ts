/**
 * The durable steps of one lifecycle as the hub's exclusive spool makes them, and nothing else:
 * no parsing, no checks, no index, no hash chain, no logs. The storage floor runs them alone
 * (bench/scenarios/storage-floor.ts); the HTTP + storage floor runs them inside the HTTP floor's
 * handlers (bench/lib/floor-server.ts). One copy, so that the two floors make the same calls.
 *
 * The calls, as `strace` shows them for the hub's exclusive spool (steady state, buckets present),
 * made through the spool's own FsOps:
 *   put       create a tmp file, write, fsync, close; link it into handoff/; unlink the tmp name;
 *             fsync handoff/; then the audit line, awaited
 *   poll      the audit line of the delivery, not awaited (the hub writes it in the background)
 *   claim     rename handoff/ → claimed/; a tmp file with the claim written, fsynced, renamed over
 *             it; fsync claimed/; then the audit line, awaited
 *   complete  the same into archive/<bucket>/ (one of 256 by the id's hash, as the spool spreads
 *             them), fsync of that bucket; then the audit line, awaited
 * Directory fsyncs go through the spool's DirSyncer (a request joins the next fsync of that
 * directory when one is running), and audit lines are batched as the spool's AuditLog batches
 * them (the lines queued while a write + fsync runs share the next one). The spool's reads that
 * find nothing (ENOENT probes) and its stats are left out: the floor is the durable work.
 */
import * as path from 'node:path';
import { bucketOf, createRealFsOps, type FsOps } from '../../spool/index.js';
import { DirSyncer } from '../../spool/durable.js';

/** The sizes of the claimed and the archived file: the payload with the claim's, then the final facts. */
const CLAIMED_SIZE = 1260;
const ARCHIVED_SIZE = 1330;
const LINE = Buffer.from(`${'x'.repeat(240)}\n`);

export interface FloorStorage {
  /** Stores `data` as the pending file of `id`. */
  put(id: string, data: Uint8Array): Promise<void>;
  /**
   * The delivery's audit line, in the background; a failure is thrown by `drain()` and by every
   * step after it, so that a run whose background lines fail cannot go on unnoticed.
   */
  delivered(): void;
  claim(id: string): Promise<void>;
  complete(id: string): Promise<void>;
  /** Resolves when every queued audit line is written; throws a background line's failure. */
  drain(): Promise<void>;
  /** fsync calls so far (files, directories, the audit log). */
  fsyncs(): number;
  /** Drains, then closes the audit log. */
  close(): Promise<void>;
}

/** The real FsOps, counting fsyncs of files and directories. */
function countingFs(): { fs: FsOps; fsyncs: () => number } {
  const real = createRealFsOps();
  let n = 0;
  const fs: FsOps = {
    ...real,
    fsync: (fd) => {
      n += 1;
      return real.fsync(fd);
    },
    fsyncDir: (dir) => {
      n += 1;
      return real.fsyncDir(dir);
    },
  };
  return { fs, fsyncs: () => n };
}

/**
 * One write + fsync for the lines queued since the last one started, as the spool's AuditLog
 * does: a batch starts on the next turn of the event loop, never while another is running.
 */
class BatchedLog {
  #queue: Array<{ done: () => void; fail: (err: unknown) => void }> = [];
  #scheduled = false;
  #flushing = false;
  #idle: Array<() => void> = [];

  constructor(
    private readonly fs: FsOps,
    private readonly fd: number,
  ) {}

  append(): Promise<void> {
    return new Promise((done, fail) => {
      this.#queue.push({ done, fail });
      this.#schedule();
    });
  }

  /** Resolves when every queued line is written. */
  drain(): Promise<void> {
    if (!this.#scheduled && !this.#flushing && this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    setImmediate(() => void this.#run());
  }

  async #run(): Promise<void> {
    this.#scheduled = false;
    const batch = this.#queue.splice(0);
    if (batch.length > 0) {
      this.#flushing = true;
      try {
        await this.fs.write(this.fd, Buffer.concat(batch.map(() => LINE)));
        await this.fs.fsync(this.fd);
        for (const p of batch) p.done();
      } catch (err) {
        for (const p of batch) p.fail(err);
      }
      this.#flushing = false;
    }
    if (this.#queue.length > 0) this.#schedule();
    else for (const resolve of this.#idle.splice(0)) resolve();
  }
}

/** Makes the spool's directories under `root` (which must exist) and opens the audit log. */
export async function openFloorStorage(root: string, options: { audit: boolean }): Promise<FloorStorage> {
  const { fs, fsyncs } = countingFs();
  const dirs = { tmp: path.join(root, 'tmp'), handoff: path.join(root, 'handoff'), claimed: path.join(root, 'claimed'), archive: path.join(root, 'archive'), events: path.join(root, 'events') };
  for (const dir of Object.values(dirs)) await fs.mkdir(dir, 0o700);
  for (let b = 0; b < 256; b++) await fs.mkdir(path.join(dirs.archive, b.toString(16).padStart(2, '0')), 0o700);
  const dirSyncer = new DirSyncer(fs);
  const logFd = await fs.openAppend(path.join(dirs.events, 'day.jsonl'), 0o600);
  const log = new BatchedLog(fs, logFd);
  const claimed = Buffer.alloc(CLAIMED_SIZE, 0x78);
  const archived = Buffer.alloc(ARCHIVED_SIZE, 0x78);
  let tmpSeq = 0;
  let logFailure: { err: unknown } | undefined;

  const writeTmp = async (data: Uint8Array): Promise<string> => {
    const file = path.join(dirs.tmp, `t${tmpSeq++}`);
    const fd = await fs.createExclusive(file, 0o600);
    try {
      await fs.write(fd, data);
      await fs.fsync(fd);
    } finally {
      await fs.close(fd);
    }
    return file;
  };
  // A claim or completion: the rename into the next state, then the file with the relay's facts
  // written in tmp/ and renamed over it, then that directory fsynced.
  const advance = async (from: string, to: string, withFacts: Buffer): Promise<void> => {
    await fs.rename(from, to);
    await fs.rename(await writeTmp(withFacts), to);
    await dirSyncer.sync(path.dirname(to));
  };
  const line = (): Promise<void> => (options.audit ? log.append() : Promise.resolve());
  const failedBefore = (): void => {
    if (logFailure) throw logFailure.err;
  };

  return {
    async put(id, data) {
      failedBefore();
      const tmp = await writeTmp(data);
      await fs.link(tmp, path.join(dirs.handoff, `${id}.json`));
      await fs.unlink(tmp);
      await dirSyncer.sync(dirs.handoff);
      await line();
    },
    delivered() {
      line().catch((err: unknown) => (logFailure ??= { err }));
    },
    async claim(id) {
      failedBefore();
      await advance(path.join(dirs.handoff, `${id}.json`), path.join(dirs.claimed, `${id}.json`), claimed);
      await line();
    },
    async complete(id) {
      failedBefore();
      await advance(path.join(dirs.claimed, `${id}.json`), path.join(dirs.archive, bucketOf(id), `${id}.json`), archived);
      await line();
    },
    async drain() {
      await log.drain();
      failedBefore();
    },
    fsyncs,
    async close() {
      // Callers close after a failure too, with lines maybe still queued: none may be written
      // once the descriptor is closed.
      await log.drain();
      await fs.close(logFd);
    },
  };
}
