/**
 * (7) The same lifecycle through BullMQ on a local Redis, the queue users would otherwise reach
 * for. Each step maps one to one, using BullMQ's manual-processing API:
 *   start    = queue.add (resolves when Redis acknowledged the job)
 *   poll     = worker.getNextJob(token, {block: true}) (a blocking wait on the queue)
 *   accept   = the same call: BullMQ moves the job to `active` under the worker's lock token
 *   complete = job.moveToCompleted(result, token, false)
 * One queue per target agent, as with the relay's `to_agent`; completed jobs are kept (the
 * default), as the relay keeps `archive/`.
 */
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { runLanes } from '../lib/lanes.js';
import type { BenchRedis } from '../lib/redis.js';
import { signedPayload } from '../lib/fixtures.js';
import { delay, summarize, until, type Summary } from '../lib/stats.js';

export interface BullWakeupResult {
  ackToReceive: Summary;
  sendToReceive: Summary;
}

export interface BullLifecycleResult {
  pairs: number;
  seconds: number;
  handoffs: number;
  perSec: number;
  lifecycle: Summary;
  redisCpuPct: number;
  redisPeakRssMiB: number;
  /** CPU of this process (the BullMQ clients), % of one core. */
  clientCpuPct: number;
  /** The machine's CPU time taken by the hypervisor during the run, % of all vCPU time. */
  stealPct: number;
}

type Data = { payload: string };

function connection(redis: BenchRedis) {
  return { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
}

/** Wake-up of one worker blocked in getNextJob, timed like the relay's (add acknowledged → job). */
export async function measureBullWakeup(redis: BenchRedis, prefix: string, count: number): Promise<BullWakeupResult> {
  const name = `${prefix}-wake`;
  const queue = new Queue<Data>(name, { connection: connection(redis) });
  const worker = new Worker<Data>(name, null, { connection: connection(redis), autorun: false, drainDelay: 30 });
  await queue.waitUntilReady();
  await worker.waitUntilReady();
  const token = randomUUID();
  const received = new Map<string, number>();
  const settled = new Set<string>();
  let waitingSince = Number.POSITIVE_INFINITY;
  let stopping = false;
  let failure: unknown;
  const loop = (async () => {
    while (!stopping) {
      waitingSince = performance.now();
      const job = (await worker.getNextJob(token, { block: true })) as Job<Data> | undefined;
      const at = performance.now();
      waitingSince = Number.POSITIVE_INFINITY;
      if (job === undefined || job.id === undefined) continue;
      received.set(job.id, at);
      await job.moveToCompleted('connected', token, false);
      settled.add(job.id);
    }
  })().catch((err: unknown) => {
    if (!stopping) failure = err;
  });
  const ackToReceive: number[] = [];
  const sendToReceive: number[] = [];
  try {
    for (let i = 0; i < count + 5; i++) {
      await until('the BullMQ worker blocked', () => failure !== undefined || performance.now() - waitingSince >= 3);
      if (failure !== undefined) throw failure;
      const signed = signedPayload('bob', 'alice');
      const sentAt = performance.now();
      const job = await queue.add('handoff', { payload: signed.text });
      const ackAt = performance.now();
      const id = job.id as string;
      await until(`BullMQ job ${id} completed`, () => settled.has(id) || failure !== undefined);
      if (failure !== undefined) throw failure;
      if (i < 5) continue;
      ackToReceive.push((received.get(id) as number) - ackAt);
      sendToReceive.push((received.get(id) as number) - sentAt);
    }
  } finally {
    stopping = true;
    // Wakes the blocked getNextJob so the loop can end.
    await queue.add('stop', { payload: '' });
    await loop;
    await worker.close();
    await queue.close();
  }
  return { ackToReceive: summarize(ackToReceive), sendToReceive: summarize(sendToReceive) };
}

/** P pairs, each add → getNextJob → moveToCompleted back to back for `seconds`. */
export async function measureBullLifecycle(redis: BenchRedis, prefix: string, pairs: number, seconds: number): Promise<BullLifecycleResult> {
  const lanes = await Promise.all(
    Array.from({ length: pairs }, async (_, k) => {
      const name = `${prefix}-pair-${k}`;
      const queue = new Queue<Data>(name, { connection: connection(redis) });
      const worker = new Worker<Data>(name, null, { connection: connection(redis), autorun: false });
      await queue.waitUntilReady();
      await worker.waitUntilReady();
      return { queue, worker, token: randomUUID(), from: `i${k}`, to: `t${k}` };
    }),
  );
  const one = async (lane: (typeof lanes)[number]): Promise<void> => {
    const signed = signedPayload(lane.from, lane.to);
    await lane.queue.add('handoff', { payload: signed.text });
    const job = (await lane.worker.getNextJob(lane.token, { block: true })) as Job<Data> | undefined;
    if (job === undefined) throw new Error('bench: BullMQ getNextJob found nothing after add');
    await job.moveToCompleted('connected', lane.token, false);
  };
  await Promise.all(lanes.map(one));
  const run = await runLanes(lanes, one, seconds, () => redis.cpu());
  await Promise.all(lanes.flatMap((l) => [l.worker.close(), l.queue.close()]));
  await delay(10);
  const { seconds: wallSec, handoffs, perSec, lifecycle, clientCpuPct, stealPct } = run;
  return { pairs, seconds: wallSec, handoffs, perSec, lifecycle, redisCpuPct: run.serverCpuPct, redisPeakRssMiB: redis.peakRssMiB(), clientCpuPct, stealPct };
}
