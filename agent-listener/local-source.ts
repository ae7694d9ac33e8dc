/**
 * Local mode: agents on one host share a spool directory. Handoffs are claimed by rename exactly
 * as the hub claims them. chokidar's events are only hints (they can be coalesced or lost, e.g. on
 * network file systems), so a periodic rescan of `handoff/` is the truth.
 */
import { watch, type FSWatcher } from 'chokidar';
import * as path from 'node:path';
import { HandoffError } from '../protocol/index.js';
import { HANDOFF_STATES, type SpoolApi } from '../spool/index.js';
import type { WorkItem, WorkSource } from './listener.js';

export interface LocalSourceOptions {
  spool: SpoolApi;
  agent: string;
  /** Rescan interval: the upper bound on pickup latency when a watcher event is missed. */
  rescanMs?: number;
  /** Told when the audit line of a read could not be written (the delivery goes on regardless). */
  onAuditError?: (id: string, err: unknown) => void;
}

export class LocalSource implements WorkSource {
  readonly kind = 'local' as const;
  private readonly rescanMs: number;
  private readonly watcher: FSWatcher;
  private readonly offered = new Set<string>();
  private wake: (() => void) | undefined;
  private hinted = true;
  private lastRescan = 0;

  constructor(private readonly opts: LocalSourceOptions) {
    this.rescanMs = opts.rescanMs ?? 2000;
    if (!(this.rescanMs >= 10)) throw new HandoffError('CONFIG', 'rescan interval must be at least 10 ms');
    const dir = path.join(opts.spool.root, HANDOFF_STATES.pending);
    this.watcher = watch(dir, { depth: 0, ignoreInitial: true, awaitWriteFinish: false });
    this.watcher.on('add', () => this.hint());
    this.watcher.on('change', () => this.hint());
  }

  private hint(): void {
    this.hinted = true;
    this.wake?.();
  }

  async next(signal: AbortSignal): Promise<WorkItem[]> {
    if (!this.hinted) {
      // Woken by a watcher hint, the rescan deadline or a stop, whichever comes first; every
      // path clears the timer and the abort listener, so waits do not pile up.
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, Math.max(0, this.lastRescan + this.rescanMs - Date.now()));
        signal.addEventListener('abort', done, { once: true });
        this.wake = done;
      });
    }
    if (signal.aborted) return [];
    this.hinted = false;
    const periodic = Date.now() - this.lastRescan >= this.rescanMs;
    if (periodic) {
      // Each periodic rescan offers again what is still pending, so a failed attempt is retried.
      this.offered.clear();
      this.lastRescan = Date.now();
    }
    const items: WorkItem[] = [];
    for (const entry of await this.opts.spool.listPending(this.opts.agent)) {
      if (this.offered.has(entry.id)) continue;
      const record = await this.opts.spool.get(entry.id);
      if (record?.state !== 'pending') continue;
      this.offered.add(entry.id);
      items.push({ id: entry.id, text: record.payloadText });
    }
    // Every read of a payload is in the audit log, as the hub records its polls: queued now, so
    // it comes before this listener's claim in the chain, and written without holding up the
    // caller, who is waiting on the line (the line's fsync, behind another process's lock, costs
    // milliseconds).
    for (const item of items) {
      this.opts.spool.auditRead(item.id, this.opts.agent).catch((err: unknown) => this.opts.onAuditError?.(item.id, err));
    }
    return items;
  }

  async accept(id: string, token: string): Promise<{ token: string; leaseUntil: string }> {
    const claim = await this.opts.spool.claim(id, this.opts.agent, { token });
    return { token: claim.token, leaseUntil: claim.leaseUntil };
  }

  async renew(id: string, token: string): Promise<{ leaseUntil: string }> {
    const record = await this.opts.spool.renew(id, token);
    return { leaseUntil: record.relay.lease_until ?? '' };
  }

  async complete(id: string, token: string, outcome: string, notes?: string): Promise<void> {
    await this.opts.spool.complete(id, token, { outcome, notes });
  }

  async reject(id: string, reason: string, token?: string): Promise<void> {
    await this.opts.spool.reject(id, { reason, by: this.opts.agent, token });
  }

  async close(): Promise<void> {
    await this.watcher.close();
  }
}
