/**
 * `handoff demo`: one complete, real handoff on this machine with no accounts and no
 * configuration. Everything is real except the telephone network: a hub on a free port over a
 * spool in a temporary directory, two agents with generated tokens, a generated pair secret, bob
 * signing and starting a handoff, alice's listener verifying, accepting, writing the bootstrap file
 * and "dialing" with the dry-run dialer. It prints a timeline with the latency of each step.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { DryRunDialer, HubClient, HubSource, Listener, ListenerState, bootstrapPath, type ListenerEvent } from '../../agent-listener/index.js';
import { addAgent, createHubLogger, startHub } from '../../hub/index.js';
import { buildPayload, callerHash, generateSecret, HandoffError, keyFilePath, loadKeyRing, writeKeyFile } from '../../protocol/index.js';
import { bucketOf } from '../../spool/index.js';

const CALLER = '+15555550123';

export interface DemoStep {
  step: string;
  at_ms: number;
  delta_ms: number;
  detail?: string;
}

export interface DemoResult {
  handoff_id: string;
  outcome: string;
  dir: string;
  kept: boolean;
  steps: DemoStep[];
  dial_requests: string[];
  look: string[];
}

/** Runs the demo; `write` receives the human timeline as it happens (nothing when JSON is wanted). */
export async function runDemo(opts: { keep?: boolean; write?: (line: string) => void }): Promise<DemoResult> {
  const write = opts.write ?? (() => undefined);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'handoff-demo-'));
  const t0 = performance.now();
  const steps: DemoStep[] = [];
  const mark = (step: string, detail?: string) => {
    const at = performance.now() - t0;
    const prev = steps.at(-1)?.at_ms ?? 0;
    const entry = { step, at_ms: round(at), delta_ms: round(at - prev), ...(detail ? { detail } : {}) };
    steps.push(entry);
    write(`  ${fmt(entry.at_ms).padStart(9)}  ${`+${fmt(entry.delta_ms)}`.padStart(9)}  ${step}${detail ? `  (${detail})` : ''}`);
  };
  const dialLines: string[] = [];
  let hub: Awaited<ReturnType<typeof startHub>> | undefined;
  let listener: Listener | undefined;
  let bob: HubClient | undefined;
  try {
    write(`handoff-relay demo in ${dir}\n`);
    write('       at       step');
    const hubConfig = path.join(dir, 'hub.json');
    const tokens = { bob: await addAgent(hubConfig, 'bob'), alice: await addAgent(hubConfig, 'alice') };
    const secret = generateSecret();
    await writeKeyFile(keyFilePath(path.join(dir, 'bob', 'keys'), 'alice'), secret);
    await writeKeyFile(keyFilePath(path.join(dir, 'alice', 'keys'), 'bob'), secret);
    mark('set up', 'two agents with hub tokens, one bob–alice pair secret');
    hub = await startHub({
      spoolDir: path.join(dir, 'spool'),
      configFile: hubConfig,
      host: '127.0.0.1',
      port: 0,
      logger: createHubLogger({ level: 'silent' }),
      shutdownGraceMs: 500,
    });
    mark('hub listening', hub.url);

    const events: ListenerEvent[] = [];
    let settled: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (settled = resolve));
    const bootstrapDir = path.join(dir, 'alice', 'voice-state', 'handoffs');
    const dialer = new DryRunDialer({ write: (line) => dialLines.push(line) });
    listener = new Listener({
      agent: 'alice',
      keys: await loadKeyRing(path.join(dir, 'alice', 'keys')),
      source: new HubSource({ client: new HubClient({ url: hub.url, token: tokens.alice }), agent: 'alice', waitSec: 25 }),
      dialer,
      state: await ListenerState.open(path.join(dir, 'alice', 'state')),
      bootstrapDir,
      telephony: {
        from: '+15555550100',
        target: { kind: 'stream', url: 'wss://alice.example.com/twilio' },
        leadIn: false,
        ringTimeoutSec: 25,
        machineDetection: true,
        fallbackSms: true,
        completeAfterSec: 0,
      },
      contacts: new Map([[callerHash(CALLER), CALLER]]),
      followCall: (sid) => dialer.getCall(sid),
      logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
      onEvent: (e) => {
        events.push(e);
        const label: Record<string, string> = {
          refused: 'alice refused it',
          accepted: 'alice verified the HMAC, claimed it, journaled the claim',
          bootstrap_written: 'alice wrote the bootstrap file',
          dialed: 'alice redialed the caller (dry run)',
          call_ended: 'the call ended',
          completed: 'alice completed the handoff',
          rejected: 'alice rejected the handoff',
          sms_sent: 'fallback SMS sent',
        };
        mark(label[e.event] ?? e.event, e.code ?? (e.event === 'dialed' ? e.detail : undefined));
        if (e.event === 'completed' || e.event === 'rejected' || e.event === 'refused' || e.event === 'error') settled();
      },
    });
    listener.start();
    mark("alice's listener is long-polling the hub");

    bob = new HubClient({ url: hub.url, token: tokens.bob });
    const signed = buildPayload(
      {
        from: 'bob',
        to: 'alice',
        callerId: CALLER,
        reason: 'scheduling_capability',
        transcript: [
          { role: 'user', text: 'Hi Bob, can you get Alice to set up a weekly standup with Patrik?' },
          { role: 'assistant', text: 'Scheduling is Alice’s job — I’ll hand you over with the details.' },
        ],
        summary: 'Caller wants a weekly standup with Patrik; cadence and time not decided yet.',
        resumeHint: 'Bob passed me context about scheduling Patrik’s standup — what cadence did you have in mind?',
        pendingActions: [{ kind: 'schedule_meeting', with: 'Patrik', cadence: null }],
        consent: { granted: true, method: 'verbal', at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), utterance: 'yes, put me through' },
      },
      secret,
      Date.now(),
    );
    const id = signed.payload.handoff_id;
    mark('bob signed the handoff', `HMAC-SHA256, ${signed.text.length} bytes`);
    await bob.start(signed.text);
    mark('hub stored it durably and acknowledged', '201 pending');
    const seen = await bob.get(id, { waitSec: 10, since: 'pending' });
    mark(`bob's long-poll saw it ${seen.state === 'claimed' ? 'claimed by alice' : seen.state}`);
    const timer = setTimeout(settled, 15_000);
    await done;
    clearTimeout(timer);
    const final = await bob.get(id);
    const outcome = final.state === 'archived' ? `archived (${(final as { outcome?: string }).outcome})` : final.state;
    if (final.state !== 'archived') throw new HandoffError('INTERNAL', `the demo handoff ended ${outcome}`);

    const spool = path.join(dir, 'spool');
    const archived = path.join(spool, 'archive', bucketOf(id), `${id}.json`);
    const look = [
      `ls -R ${spool}`,
      `jq .relay ${archived}`,
      `jq -r .resume_context ${bootstrapPath(bootstrapDir, id)}`,
      `npx handoff verify ${archived} --agent alice --keys ${path.join(dir, 'alice', 'keys')} --at ${signed.payload.initiated_at}`,
      `cat ${path.join(spool, 'events')}/*.jsonl`,
    ];
    write('');
    write(`what the dry-run dialer would have sent to Twilio:`);
    for (const line of dialLines) write(`  ${line}`);
    write('');
    write(`outcome: ${outcome}; from signing to completion: ${fmt(steps.at(-1)!.at_ms - (steps.find((s) => s.step.startsWith('bob signed'))?.at_ms ?? 0))}`);
    if (opts.keep) {
      write('\nwhere to look:');
      for (const cmd of look) write(`  ${cmd}`);
    } else write(`\n(run with --keep to keep ${dir} and inspect the spool files)`);
    return { handoff_id: id, outcome, dir, kept: Boolean(opts.keep), steps, dial_requests: dialLines, look: opts.keep ? look : [] };
  } finally {
    await listener?.stop();
    await bob?.close();
    await hub?.close();
    if (!opts.keep) await rm(dir, { recursive: true, force: true });
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function fmt(ms: number): string {
  return `${ms.toFixed(1)} ms`;
}
