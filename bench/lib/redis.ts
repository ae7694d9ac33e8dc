/**
 * A private redis-server for the BullMQ comparison, started through bench/setup.sh (which installs
 * it from Debian's packages when missing) on a free port of 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { REPO_ROOT } from './hub-process.js';
import { cpuWindow, peakRssMiB, type CpuUse } from './proc.js';
import { delay } from './stats.js';

export interface BenchRedis {
  port: number;
  pid: number;
  /** Persistence settings as the server reports them (CONFIG GET). */
  persistence: { save: string; appendonly: string; appendfsync: string };
  cpu(): { stop(): CpuUse };
  peakRssMiB(): number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/**
 * Starts redis-server; resolves undefined (with `why`) when it is not available on this machine.
 * `durable` adds appendonly yes + appendfsync always.
 */
export async function startBenchRedis(dir: string, durable: boolean): Promise<{ redis?: BenchRedis; why?: string }> {
  const port = await freePort();
  const logFile = path.join(dir, durable ? 'redis-durable.log' : 'redis.log');
  const log = openSync(logFile, 'a');
  const args = [path.join(REPO_ROOT, 'bench', 'setup.sh'), 'run', String(port), dir, ...(durable ? ['durable'] : [])];
  const child = spawn('sh', args, { stdio: ['ignore', log, log] });
  closeSync(log);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.once('close', (code) => {
      exitCode = code;
      resolve();
    }),
  );
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  // Installing from apt can take a while the first time.
  const deadline = performance.now() + 180_000;
  for (;;) {
    if (exitCode !== undefined) {
      return { why: `redis-server is not available (bench/setup.sh exited with ${exitCode}; see ${logFile})` };
    }
    try {
      await client.connect();
      await client.ping();
      break;
    } catch {
      client.disconnect();
      if (performance.now() > deadline) {
        child.kill('SIGTERM');
        await exited;
        return { why: `redis-server did not answer on port ${port} (see ${logFile})` };
      }
      await delay(50);
    }
  }
  const get = async (key: string): Promise<string> => ((await client.config('GET', key)) as string[])[1] ?? '';
  const persistence = { save: await get('save'), appendonly: await get('appendonly'), appendfsync: await get('appendfsync') };
  client.disconnect();
  const pid = child.pid as number;
  return {
    redis: {
      port,
      pid,
      persistence,
      cpu: () => cpuWindow(pid),
      peakRssMiB: () => peakRssMiB(pid),
      stop: async () => {
        if (exitCode === undefined) child.kill('SIGTERM');
        await exited;
      },
    },
  };
}
