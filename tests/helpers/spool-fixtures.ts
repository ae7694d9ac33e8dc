/**
 * Payloads and file-system wrappers for the spool tests.
 */
import assert from 'node:assert/strict';
import { HandoffError, signPayload, isoSeconds } from '../../protocol/index.js';
import { MUTATING_FS_CALLS, createRealFsOps, type FsOps } from '../../spool/index.js';

export const TEST_SECRET = 'bob-alice-pair-secret-0123456789abcdef';

export interface TestPayloadOptions {
  id?: string;
  from?: string;
  to?: string;
  /** Milliseconds since the epoch of `initiated_at`. */
  nowMs?: number;
  ttlMs?: number;
  reason?: string;
  /** Extra fields (they are signed too). */
  extra?: Record<string, unknown>;
}

let counter = 0;

/** A signed v1 payload text (canonical form, as our initiator writes it) and its id. */
export function makePayload(options: TestPayloadOptions = {}): { id: string; text: string } {
  const nowMs = options.nowMs ?? Date.now();
  const id = options.id ?? `${Math.floor(nowMs / 1000)}-bob-alice-${(++counter).toString(16).padStart(16, '0')}`;
  const signed = signPayload(
    {
      protocol_version: 1,
      handoff_id: id,
      caller_hash: '8a59780bb8cd2ba0',
      from_agent: options.from ?? 'bob',
      to_agent: options.to ?? 'alice',
      reason: options.reason ?? 'scheduling_capability',
      initiated_at: isoSeconds(nowMs),
      expires_at: isoSeconds(nowMs + (options.ttlMs ?? 60_000)),
      transcript: [
        { role: 'user', text: 'Can Alice set up a standup with Patrik? Ünïcödé ✓ 3.0', ts: isoSeconds(nowMs - 5000) },
        { role: 'assistant', text: "Sure, I'll hand you to Alice.", ts: isoSeconds(nowMs - 1000) },
      ],
      confidence: 0.62,
      ...options.extra,
    },
    TEST_SECRET,
  );
  return { id, text: signed.text };
}

export interface FsCall {
  op: keyof FsOps;
  args: unknown[];
}

/**
 * Wraps the real FsOps: records every call; can fail one chosen call (`failWhen`), or stop the
 * world after `crashAfter` mutating calls (every later call throws, as if the process had died).
 */
export class TestFs {
  readonly calls: FsCall[] = [];
  readonly ops: FsOps;
  mutating = 0;
  crashAfter: number | undefined;
  crashed = false;
  failWhen: ((call: FsCall) => boolean) | undefined;

  constructor(inner: FsOps = createRealFsOps()) {
    const mutatingNames = new Set<string>(MUTATING_FS_CALLS);
    const ops = {} as Record<keyof FsOps, (...args: unknown[]) => Promise<unknown>>;
    for (const op of Object.keys(inner) as (keyof FsOps)[]) {
      const fn = inner[op] as (...args: unknown[]) => Promise<unknown>;
      ops[op] = async (...args: unknown[]) => {
        const call: FsCall = { op, args };
        if (this.crashed) throw crashError(op);
        if (mutatingNames.has(op)) {
          if (this.crashAfter !== undefined && this.mutating >= this.crashAfter) {
            this.crashed = true;
            throw crashError(op);
          }
          this.mutating++;
        }
        this.calls.push(call);
        if (this.failWhen?.(call)) {
          this.failWhen = undefined;
          throw Object.assign(new Error(`injected ${op} failure`), { code: 'EIO' });
        }
        return fn(...args);
      };
    }
    this.ops = ops as unknown as FsOps;
  }

  /** Forgets the calls so far and starts counting mutating calls from zero. */
  reset(): void {
    this.calls.length = 0;
    this.mutating = 0;
  }

  mutatingCalls(): FsCall[] {
    const names = new Set<string>(MUTATING_FS_CALLS);
    return this.calls.filter((c) => names.has(c.op));
  }
}

function crashError(op: string): Error {
  return Object.assign(new Error(`simulated crash before ${op}`), { code: 'ECRASH' });
}

/** Asserts that `p` rejects with a HandoffError of `code`. */
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof HandoffError, `expected a HandoffError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}
