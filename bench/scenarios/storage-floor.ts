/**
 * The storage floor of a lifecycle: the file-system calls the hub's spool makes for one start →
 * poll → accept → complete, in the same order and with the same waits, and nothing else: no HTTP,
 * no parsing, no checks, no index, no logs. It answers a question the disk floor cannot: how many
 * lifecycles per second could any relay do on this disk while keeping the spool's durability (one
 * fsynced file per state, a fsynced directory entry, a fsynced audit line, each before the next
 * step), however fast its own code.
 *
 * The calls, as `strace` shows them for the hub's exclusive spool (steady state, bucket present):
 *   put       open tmp (O_EXCL), write, fsync, close; link into handoff/; unlink tmp;
 *             open, fsync, close handoff/; then the audit line
 *   poll      the audit line of the delivery
 *   claim     rename handoff/ → claimed/; write, fsync, close a tmp with the claim; rename it over;
 *             open, fsync, close claimed/; then the audit line
 *   complete  rename claimed/ → archive/<bucket>/; the same tmp write and rename; fsync of the
 *             bucket; then the audit line
 * Audit lines of one tick share one write and one fsync, and a line waits for the batch before it
 * to finish, as the spool's AuditLog does. The spool's reads that find nothing (ENOENT probes) and
 * its stats are left out: the floor is the durable work.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { close, fsync, fsyncDir, open, write, writeFsynced } from '../lib/durable-fs.js';
import { benchDir } from '../lib/fixtures.js';
import { cpuWindow, stealWindow } from '../lib/proc.js';

const link = promisify(fs.link);
const unlink = promisify(fs.unlink);
const rename = promisify(fs.rename);

export interface StorageFloorRow {
  pairs: number;
  /** Whether the audit lines were written (false: the state files alone). */
  audit: boolean;
  perSec: number;
  /** CPU of this process (main thread and the thread pool, user + system) per lifecycle. */
  cpuMsPerLifecycle: number;
  /** Share of one core this process used. */
  cpuPct: number;
  stealPct: number;
}

/** One write + fsync for every line appended in the same tick; a batch waits for the one before. */
class BatchedLog {
  #queue: Array<{ line: string; done: () => void; fail: (err: unknown) => void }> = [];
  #scheduled = false;
  #previous: Promise<void> = Promise.resolve();

  constructor(private readonly fd: number) {}

  append(line: string): Promise<void> {
    return new Promise((done, fail) => {
      this.#queue.push({ line, done, fail });
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const batch = this.#queue.splice(0);
    this.#scheduled = false;
    const text = batch.map((p) => p.line).join('');
    this.#previous = this.#previous.then(async () => {
      await write(this.fd, text);
      await fsync(this.fd);
    });
    this.#previous.then(
      () => batch.forEach((p) => p.done()),
      (err: unknown) => batch.forEach((p) => p.fail(err)),
    );
  }
}

async function run(root: string, pairs: number, seconds: number, audit: boolean): Promise<StorageFloorRow> {
  const dirs = { tmp: path.join(root, 'tmp'), handoff: path.join(root, 'handoff'), claimed: path.join(root, 'claimed'), bucket: path.join(root, 'archive', 'f1') };
  for (const dir of Object.values(dirs)) await fs.promises.mkdir(dir, { recursive: true });
  await fs.promises.mkdir(path.join(root, 'events'));
  const logFd = await open(path.join(root, 'events', 'day.jsonl'), 'a', 0o600);
  const log = new BatchedLog(logFd);
  const line = `${'x'.repeat(240)}\n`;
  const line_ = (): Promise<void> => (audit ? log.append(line) : Promise.resolve());
  // Sizes of the three files a lifecycle writes (payload, with claim facts, with final facts).
  const put = Buffer.alloc(900, 0x78);
  const claimed = Buffer.alloc(1260, 0x78);
  const archived = Buffer.alloc(1330, 0x78);
  let n = 0;
  let tmpSeq = 0;
  const tmp = (): string => path.join(dirs.tmp, `t${tmpSeq++}`);

  // A claim or completion: the rename into the next state, then the file with the relay's facts
  // written in tmp/ and renamed over it, then that directory fsynced.
  const advance = async (from: string, to: string, withFacts: Buffer): Promise<void> => {
    await rename(from, to);
    const t = tmp();
    await writeFsynced(t, withFacts);
    await rename(t, to);
    await fsyncDir(path.dirname(to));
  };

  const lifecycle = async (p: number, k: number): Promise<void> => {
    const name = `${p}-${k}.json`;
    const inHandoff = path.join(dirs.handoff, name);
    const inClaimed = path.join(dirs.claimed, name);
    const inArchive = path.join(dirs.bucket, name);
    const t1 = tmp();
    await writeFsynced(t1, put);
    await link(t1, inHandoff);
    await unlink(t1);
    await fsyncDir(dirs.handoff);
    await line_(); // put
    await line_(); // the poll's delivery
    await advance(inHandoff, inClaimed, claimed);
    await line_(); // claim
    await advance(inClaimed, inArchive, archived);
    await line_(); // complete
  };

  try {
    await Promise.all(Array.from({ length: pairs }, (_, p) => lifecycle(p, -1))); // warm-up
    const cpu = cpuWindow(process.pid);
    const steal = stealWindow();
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    await Promise.all(
      Array.from({ length: pairs }, async (_, p) => {
        for (let k = 0; performance.now() < end; k++) {
          await lifecycle(p, k);
          n += 1;
        }
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    const used = cpu.stop();
    return { pairs, audit, perSec: n / elapsed, cpuMsPerLifecycle: (1000 * used.cpuSec) / n, cpuPct: used.corePct, stealPct: steal.stop() };
  } finally {
    await close(logFd);
  }
}

/** The storage floor with `pairs` pairs for `seconds`, with or without the audit lines, in the spools' file system. */
export async function measureStorageFloor(pairs: number, seconds: number, audit: boolean): Promise<StorageFloorRow> {
  const dir = await benchDir('storage');
  return run(dir, pairs, seconds, audit);
}
