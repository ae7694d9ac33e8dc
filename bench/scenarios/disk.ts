/**
 * The physical floor: how many "write a small file, fsync it, rename it into place" this disk does
 * per second, the smallest unit of durable work the spool is built from. A durable directory
 * entry also needs an fsync of the directory; that is measured as a second figure.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { benchDir } from '../lib/fixtures.js';

const open = promisify(fs.open);
const write = promisify(fs.write);
const fsync = promisify(fs.fsync);
const close = promisify(fs.close);

export interface DiskResult {
  /** write+fsync+rename per second, one at a time. */
  serialPerSec: number;
  /** The same with 8 in flight (as many as the lifecycle's 8 pairs). */
  parallel8PerSec: number;
  /** write+fsync+rename+fsync(dir) per second, one at a time. */
  serialWithDirSyncPerSec: number;
}

async function durableWrite(tmp: string, dest: string, data: Buffer, dirToSync?: string): Promise<void> {
  const fd = await open(tmp, 'wx', 0o600);
  try {
    await write(fd, data);
    await fsync(fd);
  } finally {
    await close(fd);
  }
  await fs.promises.rename(tmp, dest);
  if (dirToSync !== undefined) {
    const dfd = await open(dirToSync, 'r');
    try {
      await fsync(dfd);
    } finally {
      await close(dfd);
    }
  }
}

async function rate(dir: string, inFlight: number, seconds: number, dirSync: boolean): Promise<number> {
  const tmp = path.join(dir, 'tmp');
  const out = path.join(dir, 'out');
  await fs.promises.mkdir(tmp, { recursive: true });
  await fs.promises.mkdir(out, { recursive: true });
  const data = Buffer.alloc(1400, 0x78);
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (w: number): Promise<void> => {
    while (performance.now() < end) {
      const name = `${w}-${n++}`;
      await durableWrite(path.join(tmp, name), path.join(out, `${name}.json`), data, dirSync ? out : undefined);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, (_, w) => worker(w)));
  return n / ((performance.now() - t0) / 1000);
}

/** Measures the disk under os.tmpdir() (where every scenario's spool lives). */
export async function measureDisk(seconds: number): Promise<DiskResult> {
  const dir = await benchDir('disk');
  return {
    serialPerSec: await rate(path.join(dir, 'a'), 1, seconds, false),
    parallel8PerSec: await rate(path.join(dir, 'b'), 8, seconds, false),
    serialWithDirSyncPerSec: await rate(path.join(dir, 'c'), 1, seconds, true),
  };
}
