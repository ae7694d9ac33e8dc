/**
 * Durable file writes and coalesced directory fsyncs.
 *
 * A file becomes visible only complete: it is written under `tmp/`, fsynced, closed, and only then
 * renamed or linked into place by the caller. A rename/link is durable once the destination
 * directory is fsynced; `DirSyncer` coalesces those fsyncs (group commit): while an fsync of a
 * directory is in flight, later requesters share the NEXT fsync of it instead of issuing their own.
 * That is safe because each requester's rename happened before the fsync it waits for started.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { HandoffError } from '../protocol/index.js';
import type { FsOps } from './fs-ops.js';

/** The errno code of a Node error, if any. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * What `op` resolves to, or `absent` when it fails because the path does not exist (ENOENT): in a
 * spool that other processes change, a file may go at any moment, and that is an answer.
 */
export async function unlessMissing<T, A>(op: Promise<T>, absent: A): Promise<T | A> {
  try {
    return await op;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return absent;
    throw err;
  }
}

/** Wraps an unexpected file-system error; a HandoffError passes through unchanged. */
export function ioError(what: string, err: unknown): HandoffError {
  if (err instanceof HandoffError) return err;
  const code = errnoCode(err);
  return new HandoffError('IO', `${what} failed${code ? ` (${code})` : ''}`, { cause: err });
}

interface DirSyncState {
  running: Promise<void> | null;
  queued: Promise<void> | null;
}

/** Group-committed `fsync` of directories. */
export class DirSyncer {
  readonly #fs: FsOps;
  readonly #dirs = new Map<string, DirSyncState>();

  constructor(fsOps: FsOps) {
    this.#fs = fsOps;
  }

  /** Resolves once an fsync of `dir` that started after this call has completed. */
  sync(dir: string): Promise<void> {
    let state = this.#dirs.get(dir);
    if (!state) {
      state = { running: null, queued: null };
      this.#dirs.set(dir, state);
    }
    const s = state;
    if (!s.running) return this.#start(dir, s);
    if (!s.queued) {
      const after = s.running.then(
        () => undefined,
        () => undefined,
      );
      s.queued = after.then(() => {
        s.queued = null;
        return this.#start(dir, s);
      });
    }
    return s.queued;
  }

  #start(dir: string, s: DirSyncState): Promise<void> {
    const run: Promise<void> = this.#fs.fsyncDir(dir).finally(() => {
      if (s.running === run) s.running = null;
    });
    s.running = run;
    return run;
  }
}

/** Writes complete, fsynced files under `tmp/` with names that say which process wrote them. */
export class TmpWriter {
  readonly #fs: FsOps;
  readonly #dir: string;
  readonly #mode: number;
  readonly #prefix: string;
  #counter = 0;

  constructor(fsOps: FsOps, tmpDir: string, fileMode: number, owner: TmpOwner) {
    this.#fs = fsOps;
    this.#dir = tmpDir;
    this.#mode = fileMode;
    this.#prefix = `${owner.pid}.${owner.instance}`;
  }

  /** Creates `tmp/<pid>.<instance>.<n>` with `data`, fsynced and closed; returns its path. */
  async write(data: Uint8Array): Promise<string> {
    const file = path.join(this.#dir, `${this.#prefix}.${++this.#counter}`);
    const fd = await this.#fs.createExclusive(file, this.#mode);
    try {
      await this.#fs.write(fd, data);
      await this.#fs.fsync(fd);
    } catch (err) {
      await this.#fs.close(fd).catch(() => undefined);
      await this.#fs.unlink(file).catch(() => undefined);
      throw err;
    }
    await this.#fs.close(fd);
    return file;
  }
}

/** Who owns a tmp file: recovery deletes a tmp file only when its owner can no longer finish it. */
export interface TmpOwner {
  pid: number;
  instance: string;
}

/** A fresh owner id for one spool instance of this process. */
export function newTmpOwner(): TmpOwner {
  return { pid: process.pid, instance: randomBytes(6).toString('hex') };
}

/** Parses `<pid>.<instance>.<n>`; undefined for any other name. */
export function parseTmpName(name: string): TmpOwner | undefined {
  const m = /^(\d+)\.([0-9a-f]{12})\.\d+$/.exec(name);
  if (!m) return undefined;
  return { pid: Number(m[1]), instance: m[2] as string };
}
