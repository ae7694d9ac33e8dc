/**
 * The storage floor of a lifecycle: the file-system calls the hub's spool makes for one start →
 * poll → accept → complete, in the same order, with the same waits and the same sharing of
 * fsyncs, and nothing else (bench/lib/floor-storage.ts lists them). The disk floor says what one
 * durable write costs; this says what the chain of them a lifecycle needs costs, which is the
 * most any relay with the spool's durability can do on this disk.
 */
import { openFloorStorage } from '../lib/floor-storage.js';
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

/** The size of a pending file (the signed payload as the relay stores it). */
const PUT_SIZE = 900;

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
  const storage = await openFloorStorage(root, { audit });
  const put = Buffer.alloc(PUT_SIZE, 0x78);
  const lifecycle = async (p: number, k: number): Promise<void> => {
    const id = `${p}-${k}`;
    await storage.put(id, put);
    storage.delivered();
    await storage.claim(id);
    await storage.complete(id);
  };

  try {
    await everyPair(pairs, (p) => lifecycle(p, -1)); // warm-up
    await storage.drain();
    let n = 0;
    const fsyncs0 = storage.fsyncs();
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
    await storage.drain();
    const elapsed = (performance.now() - t0) / 1000;
    const used = cpu.stop();
    return {
      pairs,
      audit,
      perSec: n / elapsed,
      fsyncsPerLifecycle: (storage.fsyncs() - fsyncs0) / n,
      cpuMsPerLifecycle: (1000 * used.cpuSec) / n,
      cpuPct: used.corePct,
      stealPct: steal.stop(),
    };
  } finally {
    await storage.close();
  }
}

/** The storage floor with `pairs` pairs for `seconds`, with or without the audit lines, in the spools' file system. */
export async function measureStorageFloor(pairs: number, seconds: number, audit: boolean): Promise<StorageFloorRow> {
  return run(await benchDir('storage'), pairs, seconds, audit);
}
