/**
 * LocalSource (local mode): offers what is pending for its agent and records each read in the
 * audit log without holding up the delivery.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { LocalSource } from '../agent-listener/local-source.js';
import { HandoffError } from '../protocol/index.js';
import { openSpool, type Spool } from '../spool/index.js';
import { makePayload } from './helpers/spool-fixtures.js';
import { tmpDir } from './helpers/tmp.js';

/** `spool` with `auditRead` replaced (every other call goes to the real instance). */
function withAuditRead(spool: Spool, auditRead: Spool['auditRead']): Spool {
  return new Proxy(spool, {
    get(target, prop) {
      if (prop === 'auditRead') return auditRead;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

test('a read that cannot be audited is reported, and the payload is still delivered', async (t) => {
  const root = path.join(await tmpDir(t), 'spool');
  const spool = await openSpool({ root });
  t.after(() => spool.close());
  const p = makePayload({ id: 'ls-audit-fails', nowMs: Date.now() });
  await spool.put(p.text);
  const failures: Array<[string, string]> = [];
  let reported!: () => void;
  const isReported = new Promise<void>((resolve) => (reported = resolve));
  const source = new LocalSource({
    spool: withAuditRead(spool, async () => {
      throw new HandoffError('IO', 'audit log append failed (ENOSPC)');
    }),
    agent: 'alice',
    rescanMs: 60_000,
    onAuditError: (id, err) => {
      failures.push([id, (err as HandoffError).code]);
      reported();
    },
  });
  t.after(() => source.close());
  const items = await source.next(new AbortController().signal);
  assert.deepEqual(items.map((i) => i.id), ['ls-audit-fails']);
  await isReported;
  assert.deepEqual(failures, [['ls-audit-fails', 'IO']]);
});
