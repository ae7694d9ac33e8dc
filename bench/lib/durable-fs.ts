/**
 * The durable file-system steps the floors are built from, on Node's callback API as the spool's
 * FsOps is (each call one request to libuv's thread pool), so that a floor pays what the spool pays.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

export const open = promisify(fs.open);
export const write = promisify(fs.write);
export const fsync = promisify(fs.fsync);
export const close = promisify(fs.close);

/** Creates `file` (it must not exist), writes `data` and fsyncs it. */
export async function writeFsynced(file: string, data: Buffer): Promise<void> {
  const fd = await open(file, 'wx', 0o600);
  try {
    await write(fd, data);
    await fsync(fd);
  } finally {
    await close(fd);
  }
}

/** Fsyncs `dir`, which makes the entries created or renamed in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, 'r');
  try {
    await fsync(fd);
  } finally {
    await close(fd);
  }
}
