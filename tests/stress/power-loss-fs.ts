/**
 * A power-loss model under the spool's FsOps.
 *
 * Every call is passed to the real file system (so the spool runs normally) and mirrored in an
 * in-memory model of what a power cut would keep:
 * - file data survives only as of the last `fsync` of that file (a file never fsynced comes back
 *   empty, the harshest thing a file system with delayed allocation does);
 * - a directory's entries survive only as of the last `fsyncDir` of that directory: a link,
 *   rename or unlink not followed by an fsync of the directory it changed is undone, and a
 *   directory whose own entry was never made durable disappears with everything in it;
 * - a rename is one unit (as ext4, xfs and btrfs journal it): its new name is durable once the
 *   destination directory is fsynced, and the old name does not disappear from the durable image
 *   before the new one is there, even when the source directory is fsynced first (by this
 *   operation or any other). The outcomes are "still at the old name", "at both" (recovery keeps
 *   the later state) or "at the new name", never "at neither". With `strictRenames` the two
 *   halves become durable independently, the weaker promise of POSIX alone; the spool does not
 *   claim to survive that (a concurrent fsync of the source directory can lose the file), and the
 *   long profile reports what it would lose there without counting it as a failure.
 *
 * `cutAfter(k)` makes the (k+1)-th mutating call and every later call fail, as if the power went
 * out right there; `materialize(dest)` then writes the durable image elsewhere, ready to be
 * reopened. Snapshots are taken when an fsync is called and kept once it succeeds, so an entry
 * added while an fsync is in flight is not counted as covered by it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRealFsOps, MUTATING_FS_CALLS, type FsFd, type FsOps } from '../../spool/index.js';

interface FileNode {
  kind: 'file';
  data: Buffer;
  synced: Buffer;
}

interface DirNode {
  kind: 'dir';
  entries: Map<string, Node>;
  synced: Map<string, Node>;
}

type Node = FileNode | DirNode;

export interface PowerLossOptions {
  /** When false, `fsyncDir` reaches the disk but makes nothing durable (a negative control). */
  dirSync?: boolean;
  /** The two directories of a rename become durable independently (see the header). */
  strictRenames?: boolean;
}

/** A rename whose new name is not durable yet: its old name stays in the source's durable image. */
interface PendingRename {
  from: DirNode;
  fromName: string;
  to: DirNode;
  toName: string;
  node: Node;
}

function cutError(op: string): Error {
  return Object.assign(new Error(`power cut before ${op}`), { code: 'EPOWERCUT' });
}

function scan(full: string): Node {
  const st = fs.statSync(full);
  if (!st.isDirectory()) {
    const data = fs.readFileSync(full);
    return { kind: 'file', data, synced: Buffer.from(data) };
  }
  const entries = new Map<string, Node>();
  for (const name of fs.readdirSync(full)) entries.set(name, scan(path.join(full, name)));
  return { kind: 'dir', entries, synced: new Map(entries) };
}

/** The FsOps wrapper and its model of durable state, rooted at `base` (everything there is durable now). */
export class PowerLossFs {
  readonly ops: FsOps;
  readonly base: string;
  /** Mutating calls made so far (the steps a cut can fall between). */
  steps = 0;
  /** Set once the cut has happened: every later call fails. */
  cut = false;
  dirSync: boolean;
  /** Every mutating call as `<step> <op> <path relative to base>`, for explaining a failure. */
  readonly trace: string[] = [];
  #cutAt: number | undefined;
  readonly #root: DirNode;
  readonly #fds = new Map<FsFd, FileNode>();
  readonly #strictRenames: boolean;
  #renames: PendingRename[] = [];

  constructor(base: string, options: PowerLossOptions = {}, inner: FsOps = createRealFsOps()) {
    this.base = path.resolve(base);
    this.dirSync = options.dirSync ?? true;
    this.#strictRenames = options.strictRenames ?? false;
    const root = scan(this.base);
    if (root.kind !== 'dir') throw new Error(`${base} is not a directory`);
    this.#root = root;
    const mutating = new Set<string>(MUTATING_FS_CALLS);
    const wrapped = {} as Record<keyof FsOps, (...args: unknown[]) => Promise<unknown>>;
    for (const op of Object.keys(inner) as (keyof FsOps)[]) {
      const fn = inner[op] as (...args: unknown[]) => Promise<unknown>;
      wrapped[op] = async (...args: unknown[]) => {
        if (this.cut) throw cutError(op);
        if (mutating.has(op)) {
          if (this.#cutAt !== undefined && this.steps >= this.#cutAt) {
            this.cut = true;
            throw cutError(op);
          }
          this.steps++;
          this.trace.push(`${this.steps} ${op} ${args.filter((a) => typeof a === 'string').map((a) => path.relative(this.base, a)).join(' ')}`);
        }
        // A descriptor number is free for reuse as soon as close is called.
        if (op === 'close') this.#fds.delete(args[0] as FsFd);
        // What an fsync covers is fixed when it is called, not when it returns.
        const commit = op === 'fsync' ? this.#snapshotFile(args[0] as FsFd) : op === 'fsyncDir' ? this.#snapshotDir(String(args[0])) : undefined;
        const result = await fn(...args);
        commit?.();
        this.#mirror(op, args, result);
        return result;
      };
    }
    this.ops = wrapped as unknown as FsOps;
  }

  /** Lets `k` more mutating calls through (counted from now), then cuts the power. */
  cutAfter(k: number): void {
    this.#cutAt = this.steps + k;
  }

  /**
   * Writes what survives the power cut (the durable image of `base`) to `dest`, a directory that
   * must not exist yet. Call it once nothing runs on the tree any more.
   */
  materialize(dest: string): void {
    fs.mkdirSync(dest, { mode: 0o700 });
    const written = new Map<FileNode, string>();
    const write = (dir: DirNode, full: string): void => {
      for (const [name, node] of dir.synced) {
        const target = path.join(full, name);
        if (node.kind === 'dir') {
          fs.mkdirSync(target, { mode: 0o700 });
          write(node, target);
        } else if (written.has(node)) {
          fs.linkSync(written.get(node) as string, target);
        } else {
          fs.writeFileSync(target, node.synced, { mode: 0o600 });
          written.set(node, target);
        }
      }
    };
    write(this.#root, dest);
  }

  #lookup(full: string): Node | undefined {
    const rel = path.relative(this.base, path.resolve(full));
    if (rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    let node: Node = this.#root;
    for (const part of rel === '' ? [] : rel.split(path.sep)) {
      if (node.kind !== 'dir') return undefined;
      const next = node.entries.get(part);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  #parent(full: string): { dir: DirNode; name: string } | undefined {
    const dir = this.#lookup(path.dirname(full));
    return dir?.kind === 'dir' ? { dir, name: path.basename(full) } : undefined;
  }

  #snapshotFile(fd: FsFd): () => void {
    const node = this.#fds.get(fd);
    const data = node ? Buffer.from(node.data) : undefined;
    return () => {
      if (node && data) node.synced = data;
    };
  }

  #snapshotDir(full: string): () => void {
    const node = this.#lookup(full);
    if (!this.dirSync || node?.kind !== 'dir') return () => undefined;
    const entries = new Map(node.entries);
    if (!this.#strictRenames) {
      for (const r of this.#renames) {
        if (r.from === node && !entries.has(r.fromName)) entries.set(r.fromName, r.node);
      }
    }
    return () => {
      node.synced = entries;
      // Renames into this directory are durable now (even if the name was since rewritten in place
      // by another rename): their old names may go.
      this.#renames = this.#renames.filter((r) => !(r.to === node && entries.has(r.toName)));
    };
  }

  /** Applies a call that succeeded on the real file system to the model. */
  #mirror(op: keyof FsOps, args: unknown[], result: unknown): void {
    switch (op) {
      case 'createExclusive':
      case 'openAppend': {
        const at = this.#parent(String(args[0]));
        if (!at) return;
        let node = at.dir.entries.get(at.name);
        if (node === undefined) {
          node = { kind: 'file', data: Buffer.alloc(0), synced: Buffer.alloc(0) };
          at.dir.entries.set(at.name, node);
        }
        if (node.kind === 'file') this.#fds.set(result as FsFd, node);
        return;
      }
      case 'write': {
        const node = this.#fds.get(args[0] as FsFd);
        if (node) node.data = Buffer.concat([node.data, Buffer.from(args[1] as Uint8Array)]);
        return;
      }
      case 'rename': {
        const from = this.#parent(String(args[0]));
        const to = this.#parent(String(args[1]));
        const node = from?.dir.entries.get(from.name);
        if (!from || !to || node === undefined) return;
        from.dir.entries.delete(from.name);
        to.dir.entries.set(to.name, node);
        this.#renames.push({ from: from.dir, fromName: from.name, to: to.dir, toName: to.name, node });
        return;
      }
      case 'link': {
        const node = this.#lookup(String(args[0]));
        const to = this.#parent(String(args[1]));
        if (node && to) to.dir.entries.set(to.name, node);
        return;
      }
      case 'unlink': {
        const at = this.#parent(String(args[0]));
        at?.dir.entries.delete(at.name);
        return;
      }
      case 'truncate': {
        const node = this.#lookup(String(args[0]));
        if (node?.kind === 'file') node.data = node.data.subarray(0, Number(args[1]));
        return;
      }
      case 'mkdir': {
        const at = this.#parent(String(args[0]));
        if (result === true && at) at.dir.entries.set(at.name, { kind: 'dir', entries: new Map(), synced: new Map() });
        return;
      }
      default:
        return;
    }
  }
}
