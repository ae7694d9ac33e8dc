/**
 * The HTTP floor: the lifecycle's four requests (start with a 1.3 KB payload, poll answered with
 * one, accept, complete), P pairs back to back, against a server on the hub's stack that does no
 * work at all (bench/lib/floor-server.ts), with clients like the relay's (one keep-alive undici
 * Agent per agent). No relay can go faster than this on the same machine, whatever its storage;
 * the relay's lifecycle rate is reported as a share of it.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Agent, request } from 'undici';
import { firstLine, REPO_ROOT } from '../lib/hub-process.js';
import { runLanes } from '../lib/lanes.js';
import { cpuWindow } from '../lib/proc.js';
import { signedPayload } from '../lib/fixtures.js';

export interface HttpFloorResult {
  pairs: number;
  perSec: number;
  serverCpuPct: number;
  /** The server's main thread: CPU ms per lifecycle. */
  serverMainMs: number;
  clientCpuPct: number;
  /** The machine's CPU time taken by the hypervisor during the run, % of all vCPU time. */
  stealPct: number;
}

export async function measureHttpFloor(pairs: number, seconds: number): Promise<HttpFloorResult> {
  const server = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'floor-server.ts')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => server.once('close', () => resolve()));
  try {
    const line = await firstLine(server);
    const m = /^listening on (http:\/\/\S+)$/.exec(line);
    if (!m) throw new Error(`bench: unexpected floor server output ${JSON.stringify(line)}`);
    const url = m[1] as string;
    const body = signedPayload('i0', 't0').text;
    const complete = JSON.stringify({ claim_token: 't'.repeat(43), outcome: 'connected' });
    const clients = Array.from({ length: pairs }, () => ({ initiator: new Agent(), target: new Agent() }));
    const send = async (agent: Agent, method: 'GET' | 'POST', route: string, text?: string): Promise<void> => {
      const res = await request(`${url}${route}`, {
        method,
        dispatcher: agent,
        body: text,
        headers: { authorization: 'Bearer floor', ...(text === undefined ? {} : { 'content-type': 'application/json' }) },
      });
      await res.body.text();
      if (res.statusCode >= 300) throw new Error(`bench: floor server answered ${res.statusCode}`);
    };
    const one = async (c: (typeof clients)[number]): Promise<void> => {
      await send(c.initiator, 'POST', '/api/v1/handoffs/start', body);
      await send(c.target, 'GET', '/api/v1/handoffs/poll?agent=t0&wait=5');
      await send(c.target, 'POST', '/api/v1/handoffs/floor/accept');
      await send(c.target, 'POST', '/api/v1/handoffs/floor/complete', complete);
    };
    // Warm up connections and code before the clock starts, as the lifecycle scenario does.
    for (let i = 0; i < 50; i++) await Promise.all(clients.map(one));
    const run = await runLanes(clients, one, seconds, () => cpuWindow(server.pid as number));
    await Promise.all(clients.flatMap((c) => [c.initiator.close(), c.target.close()]));
    return { pairs, perSec: run.perSec, serverCpuPct: run.serverCpuPct, serverMainMs: run.serverMainMs, clientCpuPct: run.clientCpuPct, stealPct: run.stealPct };
  } finally {
    if (server.exitCode === null) server.kill('SIGTERM');
    await exited;
  }
}
