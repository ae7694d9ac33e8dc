/**
 * The storage floor of a lifecycle: the file-system calls the hub's spool makes for one start →
 * poll → accept → complete, in the same order, with the same waits and the same sharing of
 * fsyncs, and nothing else: no HTTP, no parsing, no checks, no index, no hash chain, no logs. The
 * disk floor says what one durable write costs; this says what the chain of them a lifecycle
 * needs costs, which is the most any relay with the spool's durability can do on this disk.
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
import { benchDir } from '../lib/fixtures.js';
import { cpuWindow, stealWindow } from '../lib/proc.js';

export interface StorageFloorRow {
  pairs: number;
  /** Whether the audit lines were written (false: the state files alone). */
  audit: boolean;
  perSec: number;
  /** fsync calls (files, directories, the audit log) per lifecycle: fewer as more share one. */
  fsyncsPerLifecycle: number;
  /** CPU of this process (main thread and the thread pool, user + system) per lifecycle. */
  cpuMsPerLifecycle: number;
  /** Share of one core this process used. */
  cpuPct: number;
  stealPct: number;
}

/** The file sizes of a lifecycle: the payload, with the claim's facts, with the final facts. */
const FILE_SIZES = [900, 1260, 1330] as const;
const LINE = Buffer.from(`${'x'.repeat(240)}\n`);

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

/**
 * Runs `work` for every pair; on a failure the others are told (`failed()`) and awaited before
 * the first error is thrown, so that nothing still writes when the log is closed.
 */
async function everyPair(pairs: number, work: (pair: number, failed: () => boolean) => Promise<void>): Promise<void> {
  let failure: { err: unknown } | undefined;
  await Promise.allSettled(
    Array.from({ length: pairs }, (_, p) =>
      work(p, () => failure !== undefined).catch((err: unknown) => {
        failure ??= { err };
      }),
    ),
  );
  if (failure) throw failure.err;
}

async function run(root: string, pairs: number, seconds: number, audit: boolean): Promise<StorageFloorRow> {
  const { fs, fsyncs } = countingFs();
  const dirs = { tmp: path.join(root, 'tmp'), handoff: path.join(root, 'handoff'), claimed: path.join(root, 'claimed'), archive: path.join(root, 'archive'), events: path.join(root, 'events') };
  for (const dir of Object.values(dirs)) await fs.mkdir(dir, 0o700);
  for (let b = 0; b < 256; b++) await fs.mkdir(path.join(dirs.archive, b.toString(16).padStart(2, '0')), 0o700);
  const dirSyncer = new DirSyncer(fs);
  const logFd = await fs.openAppend(path.join(dirs.events, 'day.jsonl'), 0o600);
  const log = new BatchedLog(fs, logFd);
  const [put, claimed, archived] = FILE_SIZES.map((size) => Buffer.alloc(size, 0x78)) as [Buffer, Buffer, Buffer];
  let tmpSeq = 0;
  let logFailure: unknown;

  const writeTmp = async (data: Buffer): Promise<string> => {
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
  const line = (): Promise<void> => (audit ? log.append() : Promise.resolve());

  const lifecycle = async (p: number, k: number): Promise<void> => {
    const id = `${p}-${k}`;
    const name = `${id}.json`;
    const inHandoff = path.join(dirs.handoff, name);
    const inClaimed = path.join(dirs.claimed, name);
    const inArchive = path.join(dirs.archive, bucketOf(id), name);
    const tmp = await writeTmp(put);
    await fs.link(tmp, inHandoff);
    await fs.unlink(tmp);
    await dirSyncer.sync(dirs.handoff);
    await line(); // put
    line().catch((err: unknown) => (logFailure ??= err)); // the poll's delivery, in the background
    await advance(inHandoff, inClaimed, claimed);
    await line(); // claim
    await advance(inClaimed, inArchive, archived);
    await line(); // complete
  };

  try {
    await everyPair(pairs, (p) => lifecycle(p, -1)); // warm-up
    await log.drain();
    let n = 0;
    const fsyncs0 = fsyncs();
    const cpu = cpuWindow(process.pid);
    const steal = stealWindow();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    await everyPair(pairs, async (p, failed) => {
      for (let k = 0; !failed() && performance.now() < end; k++) {
        await lifecycle(p, k);
        n += 1;
      }
    });
    await log.drain();
    const elapsed = (performance.now() - t0) / 1000;
    const used = cpu.stop();
    if (logFailure !== undefined) throw logFailure;
    return {
      pairs,
      audit,
      perSec: n / elapsed,
      fsyncsPerLifecycle: (fsyncs() - fsyncs0) / n,
      cpuMsPerLifecycle: (1000 * used.cpuSec) / n,
      cpuPct: used.corePct,
      stealPct: steal.stop(),
    };
  } finally {
    await log.drain(); // after a failure too: no line may be written once the descriptor is closed
    await fs.close(logFd);
  }
}

/** The storage floor with `pairs` pairs for `seconds`, with or without the audit lines, in the spools' file system. */
export async function measureStorageFloor(pairs: number, seconds: number, audit: boolean): Promise<StorageFloorRow> {
  return run(await benchDir('storage'), pairs, seconds, audit);
}
