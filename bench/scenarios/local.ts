/**
 * (5) Local mode: the wake-up latency of the chokidar watcher path. An initiator's spool instance
 * puts a handoff into a shared spool directory; the target's LocalSource (a second spool instance
 * on the same directory, as a separate listener process would have) is woken by the watcher event.
 * The periodic rescan is set to a minute so that only the watcher can wake it.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { LocalSource } from '../../agent-listener/index.js';
import { openSpool } from '../../spool/index.js';
import { benchDir, signedPayload } from '../lib/fixtures.js';
import { delay, summarize, until, type Summary } from '../lib/stats.js';

export interface LocalResult {
  /** put acknowledged → LocalSource.next() returns it. */
  ackToReceive: Summary;
}

const WARM_UP = 5;

export async function measureLocal(count: number): Promise<LocalResult> {
  const root = path.join(await benchDir('local'), 'spool');
  const bob = await openSpool({ root });
  const aliceSpool = await openSpool({ root });
  const source = new LocalSource({ spool: aliceSpool, agent: 'alice', rescanMs: 60_000 });
  const abort = new AbortController();
  const received = new Map<string, number>();
  const settled = new Set<string>();
  let waitingSince = Number.POSITIVE_INFINITY;
  let failure: unknown;
  const loop = (async () => {
    while (!abort.signal.aborted) {
      waitingSince = performance.now();
      const items = await source.next(abort.signal);
      const at = performance.now();
      waitingSince = Number.POSITIVE_INFINITY;
      for (const item of items) if (!received.has(item.id)) received.set(item.id, at);
      for (const item of items) {
        const { token } = await source.accept(item.id, randomBytes(32).toString('base64url'));
        await source.complete(item.id, token, 'connected');
        settled.add(item.id);
      }
    }
  })().catch((err: unknown) => {
    if (!abort.signal.aborted) failure = err;
  });

  const samples: number[] = [];
  try {
    // The watcher needs a moment to be ready; warm-up handoffs are not counted.
    await delay(200);
    for (let i = 0; i < count + WARM_UP; i++) {
      await until('the local listener waiting', () => failure !== undefined || performance.now() - waitingSince >= 3);
      if (failure !== undefined) throw failure;
      const signed = signedPayload('bob', 'alice');
      const id = signed.payload.handoff_id;
      await bob.put(signed.text);
      const ackAt = performance.now();
      await until(`local handoff ${id} settled`, () => settled.has(id) || failure !== undefined, 70_000);
      if (failure !== undefined) throw failure;
      if (i >= WARM_UP) samples.push((received.get(id) as number) - ackAt);
    }
  } finally {
    abort.abort();
    await loop;
    await source.close();
    await aliceSpool.close();
    await bob.close();
  }
  return { ackToReceive: summarize(samples) };
}
