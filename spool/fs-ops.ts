/**
 * The file-system calls the spool makes, behind one small interface.
 *
 * Every durable step of the spool (create a tmp file, write it, fsync it, rename or link it into
 * place, fsync a directory) is a separate call here, so that a wrapper can record the order of the
 * steps, inject an error into any one of them, or stop after the k-th step to simulate a crash.
 * The spool never touches `node:fs` directly; the exceptions are advisory and correctness does not
 * depend on them: the cross-process locks (proper-lockfile) and the owner record (owner.ts).
 *
 * Errors are Node's own (`err.code` = `ENOENT`, `EEXIST`, …): the spool branches on those codes and
 * wraps anything unexpected into `HandoffError('IO')`. Two codes come from the reads themselves:
 * `NOT_REGULAR_FILE` (`EFTYPE`) for a name that is not a regular file (a directory, FIFO, socket
 * or device: a person's or another tool's, never a handoff) and `FILE_TOO_LARGE` (`EFBIG`) for a
 * file over the caller's limit, both raised before any byte is read.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

/** What the spool needs to know from `stat(2)`. */
export interface FsStat {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  isFile: boolean;
  isDirectory: boolean;
}

/** A file descriptor returned by `createExclusive` or `openAppend`. */
export type FsFd = number;

/** Every file-system call of the spool, one step each (see the header of this file). */
export interface FsOps {
  /** `open(O_WRONLY|O_CREAT|O_EXCL)`: fails with EEXIST if the path exists. */
  createExclusive(path: string, mode: number): Promise<FsFd>;
  /** `open(O_WRONLY|O_CREAT|O_APPEND)`. */
  openAppend(path: string, mode: number): Promise<FsFd>;
  /** Writes all of `data` at the current position (or at the end for an append descriptor). */
  write(fd: FsFd, data: Uint8Array): Promise<void>;
  fsync(fd: FsFd): Promise<void>;
  close(fd: FsFd): Promise<void>;
  /** `rename(2)`: atomically replaces `to` if it exists. */
  rename(from: string, to: string): Promise<void>;
  /** `link(2)`: fails with EEXIST if `newPath` exists (never replaces it). */
  link(existing: string, newPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  truncate(path: string, length: number): Promise<void>;
  /** Creates one directory; resolves false (not an error) when it already exists. */
  mkdir(path: string, mode: number): Promise<boolean>;
  /** Opens a directory and fsyncs it, so that renames/links/unlinks in it survive power loss. */
  fsyncDir(path: string): Promise<void>;
  /**
   * The whole content of a regular file: EFTYPE when `path` is not one (opened without blocking,
   * so a FIFO cannot hang the read), EFBIG when it holds more than `maxBytes` (checked by fstat
   * before reading, and again while reading: a file that grows is never read past the limit).
   */
  readFile(path: string, maxBytes?: number): Promise<Uint8Array>;
  /** Up to `length` bytes of a regular file starting at `position` (fewer at its end); EFTYPE as `readFile`. */
  readRange(path: string, position: number, length: number): Promise<Uint8Array>;
  readdir(path: string): Promise<string[]>;
  stat(path: string): Promise<FsStat>;
}

/** `err.code` of a read of a name that is not a regular file (BSD's "inappropriate file type"). */
export const NOT_REGULAR_FILE = 'EFTYPE';
/** `err.code` of a `readFile` of a file larger than the caller's limit. */
export const FILE_TOO_LARGE = 'EFBIG';

/** The names of the calls that change what is on disk (for fault injection and step counting). */
export const MUTATING_FS_CALLS = Object.freeze([
  'createExclusive',
  'openAppend',
  'write',
  'fsync',
  'rename',
  'link',
  'unlink',
  'truncate',
  'mkdir',
  'fsyncDir',
] as const satisfies readonly (keyof FsOps)[]);

// The callback API, promisified, costs about half as much per call as `fs.promises` on Node 20
// (no FileHandle objects, no extra promise layers); the spool makes dozens of calls per handoff.
const openP = promisify(fs.open);
const writeP = promisify(fs.write);
const readP = promisify(fs.read);
const fsyncP = promisify(fs.fsync);
const closeP = promisify(fs.close);
const renameP = promisify(fs.rename);
const linkP = promisify(fs.link);
const unlinkP = promisify(fs.unlink);
const truncateP = promisify(fs.truncate);
const mkdirP = promisify(fs.mkdir);
const readdirP = promisify(fs.readdir);
const statP = promisify(fs.stat);

/** Smallest buffer of `readFile` (it is sized from fstat otherwise, one byte over the file). */
const READ_CHUNK = 16 * 1024;

const { O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_RDONLY, O_NONBLOCK } = fs.constants;

function toStat(s: fs.Stats): FsStat {
  return {
    size: s.size,
    mtimeMs: s.mtimeMs,
    ctimeMs: s.ctimeMs,
    ino: s.ino,
    isFile: s.isFile(),
    isDirectory: s.isDirectory(),
  };
}

async function writeAll(fd: number, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await writeP(fd, data, offset, data.length - offset, null);
    offset += bytesWritten;
  }
}

function readError(code: string, message: string, cause?: unknown): NodeJS.ErrnoException {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

/**
 * Opens `path` for reading only if it is a regular file. O_NONBLOCK makes the open of a FIFO
 * return at once instead of waiting for a writer (in a pool thread, where it would hold up every
 * later file-system call and the process's exit); on a regular file the flag changes nothing.
 * Opening a socket fails with ENXIO: not a regular file either.
 */
async function openRegular(path: string): Promise<{ fd: number; size: number }> {
  let fd: number;
  try {
    fd = await openP(path, O_RDONLY | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') throw readError(NOT_REGULAR_FILE, `${path} is not a regular file`, err);
    throw err;
  }
  try {
    // Synchronous on purpose: on an open descriptor fstat reads the inode already in memory (no
    // path lookup, no disk), and a trip through the thread pool would cost more than the call.
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw readError(NOT_REGULAR_FILE, `${path} is not a regular file`);
    return { fd, size: st.size };
  } catch (err) {
    await closeP(fd).catch(() => undefined);
    throw err;
  }
}

/**
 * Reads a whole regular file of at most `maxBytes` (see `FsOps.readFile`). The buffer is sized from
 * fstat, so an ordinary file takes one read; a short read is its end (spool files are complete
 * before they become visible: tmp, fsync, rename).
 */
async function readWhole(path: string, maxBytes = Infinity): Promise<Uint8Array> {
  const { fd, size } = await openRegular(path);
  try {
    if (size > maxBytes) throw readError(FILE_TOO_LARGE, `${path} is larger than ${maxBytes} bytes`);
    // One byte more than the size seen, so that a file that did not grow is done in one read.
    let buf = Buffer.allocUnsafe(Math.max(READ_CHUNK, size + 1));
    let filled = 0;
    for (;;) {
      const { bytesRead } = await readP(fd, buf, filled, buf.length - filled, null);
      filled += bytesRead;
      if (filled > maxBytes) throw readError(FILE_TOO_LARGE, `${path} is larger than ${maxBytes} bytes`);
      if (bytesRead === 0 || filled < buf.length) return buf.subarray(0, filled);
      const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, maxBytes + 1));
      buf.copy(bigger, 0, 0, filled);
      buf = bigger;
    }
  } finally {
    await closeP(fd);
  }
}

async function readRange(path: string, position: number, length: number): Promise<Uint8Array> {
  const { fd } = await openRegular(path);
  try {
    const buf = Buffer.alloc(length);
    let filled = 0;
    while (filled < length) {
      const { bytesRead } = await readP(fd, buf, filled, length - filled, position + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buf.subarray(0, filled);
  } finally {
    await closeP(fd);
  }
}

/** The real implementation on `node:fs` (callback API with numeric descriptors: the fastest path). */
export function createRealFsOps(): FsOps {
  return {
    createExclusive: (path, mode) => openP(path, O_WRONLY | O_CREAT | O_EXCL, mode),
    openAppend: (path, mode) => openP(path, O_WRONLY | O_CREAT | O_APPEND, mode),
    write: writeAll,
    fsync: (fd) => fsyncP(fd),
    close: (fd) => closeP(fd),
    rename: (from, to) => renameP(from, to),
    link: (existing, newPath) => linkP(existing, newPath),
    unlink: (path) => unlinkP(path),
    truncate: (path, length) => truncateP(path, length),
    mkdir: async (path, mode) => {
      try {
        await mkdirP(path, { mode });
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    },
    fsyncDir: async (path) => {
      const fd = await openP(path, O_RDONLY);
      try {
        await fsyncP(fd);
      } finally {
        await closeP(fd);
      }
    },
    readFile: readWhole,
    readRange,
    readdir: (path) => readdirP(path),
    stat: async (path) => toStat(await statP(path)),
  };
}

/**
 * `fsOps` calling `forget(path)` before every call that changes which file a path names (rename,
 * link, unlink, truncate), so that a cache of file contents kept by the caller can never outlive
 * the file it describes.
 */
export function forgetting(fsOps: FsOps, forget: (path: string) => void): FsOps {
  return {
    ...fsOps,
    rename: (from, to) => {
      forget(from);
      forget(to);
      return fsOps.rename(from, to);
    },
    link: (existing, newPath) => {
      forget(newPath);
      return fsOps.link(existing, newPath);
    },
    unlink: (path) => {
      forget(path);
      return fsOps.unlink(path);
    },
    truncate: (path, length) => {
      forget(path);
      return fsOps.truncate(path, length);
    },
  };
}

/** `fsOps` that refuses every call changing what is on disk (EROFS), for a read-only spool. */
export function refusingWrites(fsOps: FsOps): FsOps {
  const out: FsOps = { ...fsOps };
  for (const op of MUTATING_FS_CALLS) {
    (out as unknown as Record<string, (...args: unknown[]) => Promise<never>>)[op] = async () => {
      throw Object.assign(new Error(`${op} refused: the spool was opened read-only`), { code: 'EROFS' });
    };
  }
  return out;
}
