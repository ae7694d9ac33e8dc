/**
 * The HTTP floor: the lifecycle's four requests (start with a 1.3 KB payload, poll answered with
 * one, accept, complete), P pairs back to back, against a server on the hub's stack that does no
 * work at all (bench/lib/floor-server.ts), with clients like the relay's (one keep-alive undici
 * Agent per agent). No relay can go faster than this on the same machine, whatever its storage;
 * the relay's lifecycle rate is reported as a share of it.
 *
 * With `storage`, the server also makes the spool's durable steps in its handlers (the same
 * calls as the storage floor, bench/lib/floor-storage.ts), with or without the audit lines: the
 * HTTP + storage floor, what a relay with the spool's durability and no other work at all would
 * do through HTTP on this machine.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Agent, request } from 'undici';
import { firstLine, REPO_ROOT } from '../lib/hub-process.js';
import { runLanes } from '../lib/lanes.js';
import { cpuWindow } from '../lib/proc.js';
import { benchDir, signedPayload } from '../lib/fixtures.js';

export interface HttpFloorResult {
  pairs: number;
  perSec: number;
  serverCpuPct: number;
  /** The server's main thread: CPU ms per lifecycle. */
  serverMainMs: number;
  clientCpuPct: number;
  /** The machine's CPU time taken by the hypervisor during the run, % of all vCPU time. */
  stealPct: number;
  /** With storage: whether the audit lines were written, and the fsyncs the server made per lifecycle. */
  storage?: { audit: boolean; fsyncsPerLifecycle: number };
}

export async function measureHttpFloor(pairs: number, seconds: number, options: { storage?: { audit: boolean } }): Promise<HttpFloorResult> {
  const args = options.storage ? ['--storage', await benchDir('http-storage'), ...(options.storage.audit ? [] : ['--no-audit'])] : [];
  const server = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', 'lib', 'floor-server.ts'), ...args], {
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
    const clients = Array.from({ length: pairs }, (_, k) => ({ target: `t${k}`, done: 0, initiator: new Agent(), targetAgent: new Agent() }));
    const send = async (agent: Agent, method: 'GET' | 'POST', route: string, text?: string): Promise<string> => {
      const res = await request(`${url}${route}`, {
        method,
        dispatcher: agent,
        body: text,
        headers: { authorization: 'Bearer floor', ...(text === undefined ? {} : { 'content-type': 'application/json' }) },
      });
      const reply = await res.body.text();
      if (res.statusCode !== 200 && res.statusCode !== 201) throw new Error(`bench: floor server answered ${res.statusCode}`);
      return reply;
    };
    // Read outside the lanes' connections, right before and after the timed window.
    const statsAgent = new Agent();
    const fsyncs = async (): Promise<number> => (JSON.parse(await send(statsAgent, 'GET', '/stats')) as { fsyncs: number }).fsyncs;
    // Ids and targets go in the query, which only the HTTP + storage floor's server reads.
    const one = async (c: (typeof clients)[number]): Promise<void> => {
      const id = `${c.target}-${c.done++}`;
      await send(c.initiator, 'POST', `/api/v1/handoffs/start?id=${id}&to=${c.target}`, body);
      await send(c.targetAgent, 'GET', `/api/v1/handoffs/poll?agent=${c.target}&wait=5`);
      await send(c.targetAgent, 'POST', `/api/v1/handoffs/${id}/accept`);
      await send(c.targetAgent, 'POST', `/api/v1/handoffs/${id}/complete`, complete);
    };
    // Warm up connections and code before the clock starts, as the lifecycle scenario does: about
    // 400 lifecycles, in 10 to 50 rounds (64 durable pairs would take seconds over 50).
    const rounds = Math.min(50, Math.max(10, Math.ceil(400 / pairs)));
    for (let i = 0; i < rounds; i++) await Promise.all(clients.map(one));
    const fsyncs0 = await fsyncs();
    const run = await runLanes(clients, one, seconds, () => cpuWindow(server.pid as number));
    const fsyncsPerLifecycle = ((await fsyncs()) - fsyncs0) / run.handoffs;
    await Promise.all([statsAgent.close(), ...clients.flatMap((c) => [c.initiator.close(), c.targetAgent.close()])]);
    return {
      pairs,
      perSec: run.perSec,
      serverCpuPct: run.serverCpuPct,
      serverMainMs: run.serverMainMs,
      clientCpuPct: run.clientCpuPct,
      stealPct: run.stealPct,
      ...(options.storage ? { storage: { audit: options.storage.audit, fsyncsPerLifecycle } } : {}),
    };
  } finally {
    if (server.exitCode === null) server.kill('SIGTERM');
    await exited;
  }
}
