/**
 * (3) End-to-end relay overhead: from `handoff start` in the initiator to the call-creation request
 * arriving at a Twilio stand-in, through the compiled hub and a real listener in hub mode (HubSource
 * long-poll, HMAC verification, durable journal, accept, bootstrap file) with the real TwilioDialer
 * (the official SDK) pointed at a local stub.
 *
 * The initiator runs the CLI's own `start` action in this process (key file, signing, a fresh hub
 * connection, as `handoff start` does after parsing its flags); a second, smaller series spawns the
 * compiled CLI for every handoff, which adds the process's cold start.
 *
 * Every handoff runs alone: the next one starts after the listener has completed the previous.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { followCallByPolling, HubClient, HubSource, Listener, ListenerState, sleep, type ListenerEvent } from '../../agent-listener/index.js';
import { TwilioDialer } from '../../agent-listener/twilio-dialer.js';
import { start as startCommand } from '../../cli/commands/lifecycle-impl.js';
import { callerHash, keyFilePath, keyRingFromSecrets, writeKeyFile } from '../../protocol/index.js';
import { CLI_BIN, type BenchHub } from '../lib/hub-process.js';
import { BENCH_SECRET, benchDir, tokenOf, TRANSCRIPT } from '../lib/fixtures.js';
import { delay, summarize, until, type Summary } from '../lib/stats.js';

export interface E2eResult {
  /** In-process `handoff start` → call-creation request at the stub. */
  inProcess: Summary;
  /** Spawned `node dist/bin/handoff.js start …` → call-creation request at the stub. */
  cliProcess: Summary;
}

const ACCOUNT_SID = `AC${'0'.repeat(32)}`;
const ALICE_NUMBER = '+15550001111';

interface TwilioStandIn {
  baseUrl: string;
  /** Arrival time (performance.now) of the call-creation request, by handoff id. */
  callsAt: Map<string, number>;
  close(): Promise<void>;
}

/** Answers call creation with a queued call and every call fetch with an answered, finished call. */
async function startTwilioStandIn(): Promise<TwilioStandIn> {
  const callsAt = new Map<string, number>();
  let sid = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const url = new URL(req.url ?? '/', 'http://stub');
      res.setHeader('content-type', 'application/json');
      if (req.method === 'POST' && url.pathname.endsWith('/Calls.json')) {
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        const id = /name="handoff_id" value="([^"]+)"/.exec(form.get('Twiml') ?? '')?.[1];
        if (id !== undefined) callsAt.set(id, at);
        sid += 1;
        res.statusCode = 201;
        res.end(JSON.stringify({ sid: `CA${String(sid).padStart(32, '0')}`, status: 'queued', to: form.get('To'), from: form.get('From') }));
        return;
      }
      const callSid = /\/Calls\/(CA[0-9a-zA-Z]{32})\.json$/.exec(url.pathname)?.[1];
      if (callSid !== undefined) {
        res.end(JSON.stringify({ sid: callSid, status: 'completed', answered_by: 'human', duration: '42' }));
        return;
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ code: 20404, message: 'not found', status: 404 }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    callsAt,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

let callerSeq = 0;
/** A caller number no other handoff of this run uses (the id is built from its hash). */
function nextCaller(): string {
  callerSeq += 1;
  return `+1555${String(process.pid % 1000).padStart(3, '0')}${String(callerSeq).padStart(4, '0')}`;
}

/** Measures `count` in-process starts and `cliCount` spawned-CLI starts through one listener. */
export async function measureE2e(hub: BenchHub, count: number, cliCount: number): Promise<E2eResult> {
  const dir = await benchDir('e2e');
  const keysDir = path.join(dir, 'keys');
  await writeKeyFile(keyFilePath(keysDir, 'alice'), BENCH_SECRET);
  const tokenFile = path.join(dir, 'bob.token');
  await writeFile(tokenFile, tokenOf(hub.tokens, 'bob'), { mode: 0o600 });
  const transcriptFile = path.join(dir, 'transcript.json');
  await writeFile(transcriptFile, JSON.stringify(TRANSCRIPT));

  const stub = await startTwilioStandIn();
  const dialer = new TwilioDialer({ accountSid: ACCOUNT_SID, authToken: 'bench-auth-token', apiBaseUrl: stub.baseUrl, callsPerSecond: 100 });
  const completed = new Set<string>();
  const failures: ListenerEvent[] = [];
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const listener = new Listener({
    agent: 'alice',
    keys: keyRingFromSecrets({ bob: [BENCH_SECRET] }),
    source: new HubSource({ client: new HubClient({ url: hub.url, token: tokenOf(hub.tokens, 'alice') }), agent: 'alice', waitSec: 25 }),
    dialer,
    state: await ListenerState.open(path.join(dir, 'state')),
    bootstrapDir: path.join(dir, 'voice', 'handoffs'),
    telephony: {
      from: ALICE_NUMBER,
      target: { kind: 'stream', url: 'wss://alice.example.com/twilio' },
      leadIn: false,
      ringTimeoutSec: 20,
      machineDetection: true,
      fallbackSms: false,
      completeAfterSec: 0,
    },
    contacts: new Map(),
    followCall: (sid, _id, signal) => followCallByPolling({ getCall: (s) => dialer.getCall(s), sid, intervalMs: 5, sleep, clock: Date.now, signal }),
    logger: quiet,
    onEvent: (e) => {
      if (e.event === 'completed' || e.event === 'rejected') completed.add(e.handoff_id);
      if (e.event === 'error' || e.event === 'refused' || e.event === 'rejected') failures.push(e);
    },
  });
  listener.start();
  const flags = (caller: string) => ({
    agent: 'bob',
    to: 'alice',
    caller,
    reason: 'scheduling_capability',
    transcript: transcriptFile,
    resumeHint: "Bob passed me context about Patrik's standup — what cadence did you have in mind?",
    summary: 'Caller wants the weekly standup with Patrik moved to Thursdays at 9:30.',
    hub: hub.url,
    tokenFile,
    keys: keysDir,
    ttl: '30',
    sendNumber: true,
  });
  const settle = async (id: string): Promise<void> => {
    await until(`listener finished ${id}`, () => completed.has(id), 15_000);
    const failure = failures.find((f) => f.handoff_id === id);
    if (failure) throw new Error(`bench: e2e handoff ${id} failed: ${failure.event} ${failure.code ?? ''} ${failure.detail ?? ''}`);
  };

  const inProcess: number[] = [];
  const cliProcess: number[] = [];
  try {
    // Two warm-up handoffs (connections, JIT), not counted.
    for (let i = 0; i < count + 2; i++) {
      const caller = nextCaller();
      const t0 = performance.now();
      const out = await startCommand(flags(caller));
      await settle(out.handoff_id);
      if (i >= 2) inProcess.push((stub.callsAt.get(out.handoff_id) as number) - t0);
      await delay(2);
    }
    for (let i = 0; i < cliCount; i++) {
      const caller = nextCaller();
      const f = flags(caller);
      const args = [CLI_BIN, 'start', '--agent', 'bob', '--to', 'alice', '--caller', caller, '--reason', f.reason, '--transcript', transcriptFile, '--resume-hint', f.resumeHint, '--summary', f.summary, '--hub', hub.url, '--token-file', tokenFile, '--keys', keysDir, '--ttl', '30', '--send-number', '--json'];
      const t0 = performance.now();
      const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      const [code] = (await once(child, 'close')) as [number | null];
      if (code !== 0) throw new Error(`bench: handoff start exited with ${code}`);
      const handoffId = (JSON.parse(out) as { handoff_id: string }).handoff_id;
      if (!handoffId.endsWith(callerHash(caller))) throw new Error(`bench: unexpected id ${handoffId}`);
      await settle(handoffId);
      cliProcess.push((stub.callsAt.get(handoffId) as number) - t0);
      await delay(2);
    }
  } finally {
    await listener.stop();
    await stub.close();
  }
  return { inProcess: summarize(inProcess), cliProcess: summarize(cliProcess) };
}
