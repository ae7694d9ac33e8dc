import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import pino from 'pino';
import { abortableSleep, assertDialTarget, assertPrivateDir, CallEventHub, createCallWebhookApp, DryRunDialer, followCallByPolling, HubClient, HubSource, Listener, ListenerState, LocalSource, sleep, statusCallbackUrl, type CallFollower, type DialTarget, type Dialer, type ListenerEvent, type WorkSource } from '../../agent-listener/index.js';
import { callerHash, HandoffError, loadKeyRing, toHandoffError } from '../../protocol/index.js';
import { REDACT_PATHS } from '../../hub/index.js';
import { openSpool } from '../../spool/index.js';
import { readSecret, required, resolveConfig, stateDirOf, type ResolvedConfig } from '../config.js';

const DRY_RUN_FROM = '+15550100000';

/** The dialer: Twilio when credentials are configured (never dry-run by default then). */
async function makeDialer(cfg: ResolvedConfig): Promise<Dialer> {
  const c = cfg.config;
  const hasTwilio = Boolean(c.twilioAccountSid && (process.env.TWILIO_AUTH_TOKEN || c.twilioAuthTokenFile));
  const kind = c.dialer ?? (hasTwilio ? 'twilio' : 'dry-run');
  if (kind === 'dry-run') return new DryRunDialer({ write: (line) => process.stderr.write(`${line}\n`) });
  const { TwilioDialer } = await import('../../agent-listener/twilio-dialer.js');
  const authToken = readSecret('Twilio auth token (TWILIO_AUTH_TOKEN or twilio.auth_token_file)', process.env.TWILIO_AUTH_TOKEN, c.twilioAuthTokenFile);
  return new TwilioDialer({
    accountSid: required(cfg, 'twilioAccountSid'),
    authToken,
    apiBaseUrl: c.twilioApiBaseUrl,
    callsPerSecond: c.cps,
  });
}

/** The voice server to connect calls to, checked (CONFIG) before anything starts. */
function targetOf(cfg: ResolvedConfig): DialTarget {
  const url = required(cfg, 'targetUrl');
  const target: DialTarget = cfg.config.targetKind === 'stream' ? { kind: 'stream', url } : { kind: 'twiml-url', url };
  assertDialTarget(target);
  return target;
}

/**
 * Serves `fetch` on HOST:PORT and resolves once it listens.
 * @throws HandoffError UNAVAILABLE when the address cannot be bound (in use, not a local address).
 */
function serveOn(fetch: (req: Request) => Response | Promise<Response>, address: string, what: string): Promise<ServerType> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(new HandoffError('UNAVAILABLE', `cannot serve ${what} on ${address}: ${err.message}`, { cause: err }));
    try {
      const server = serve({ fetch, hostname: host, port }, () => {
        server.off('error', fail);
        resolve(server);
      });
      server.once('error', fail);
    } catch (err) {
      fail(err as Error);
    }
  });
}

function closeServer(server: ServerType | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
}

function describe(e: ListenerEvent): string {
  return `${e.at} ${e.handoff_id} ${e.event}${e.code ? ` ${e.code}` : ''}${e.detail && e.event !== 'refused' ? ` ${e.detail}` : ''}`;
}

/** Runs the listener until SIGINT/SIGTERM, then stops it gracefully. */
export async function listen(flags: Record<string, unknown>): Promise<void> {
  const cfg = resolveConfig({ flags, env: process.env, cwd: process.cwd(), configFile: flags.config as string | undefined });
  const c = cfg.config;
  const agent = required(cfg, 'agent');
  // The hub's redaction list, and the numbers only a listener handles: the second line of defence
  // for a field someone adds to a log call later.
  const redact = [...REDACT_PATHS, 'to', '*.to', 'from_number', '*.from_number'];
  const logger = pino({ level: c.logLevel, base: { component: 'listener', agent }, redact: { paths: redact, censor: '[redacted]' } }, pino.destination(2));
  const keys = await loadKeyRing(c.keysDir);
  for (const warning of keys.warnings) logger.warn({ warning }, 'key file');
  if (keys.peers().length === 0) throw new HandoffError('KEY_FILE', `no voice-handoff-<peer>.key files in ${c.keysDir}`);
  const target = targetOf(cfg);
  const state = await ListenerState.open(stateDirOf(c, agent));
  await assertPrivateDir(required(cfg, 'bootstrapDir'), 'bootstrap dir');
  const dialer = await makeDialer(cfg);
  const dryRun = dialer instanceof DryRunDialer;

  let source: WorkSource;
  let janitor: (() => Promise<void>) | undefined;
  if (c.hubUrl) {
    const token = readSecret('hub token (HANDOFF_TOKEN or --token-file)', process.env.HANDOFF_TOKEN, c.tokenFile);
    source = new HubSource({ client: new HubClient({ url: c.hubUrl, token }), agent, waitSec: c.pollWaitSec });
  } else if (c.spool) {
    const spool = await openSpool({ root: path.resolve(c.spool) });
    const onAuditError = (id: string, err: unknown) => {
      const e = toHandoffError(err, 'IO');
      logger.error({ handoff_id: id, code: e.code, err: e.message }, 'audit of a read failed');
    };
    source = new LocalSource({ spool, agent, onAuditError });
    // Local mode has no hub: the listeners run the janitor (the spool's lock keeps it single).
    const stop = new AbortController();
    const loop = (async () => {
      while (!stop.signal.aborted) {
        await spool.sweep().catch((err: unknown) => logger.warn({ err: String(err) }, 'sweep failed'));
        await sleep(1000, stop.signal);
      }
    })();
    janitor = async () => {
      stop.abort();
      await loop;
      await spool.close();
    };
  } else throw new HandoffError('CONFIG', 'say where the handoffs are: --hub URL (hub mode) or --spool DIR (local mode)');

  const events = new CallEventHub();
  let webhook: ServerType | undefined;
  let follow: CallFollower;
  if (c.webhookListen && c.webhookPublicUrl && !dryRun) {
    const { createTwilioSignatureValidator } = await import('../../agent-listener/twilio-dialer.js');
    const authToken = readSecret('Twilio auth token', process.env.TWILIO_AUTH_TOKEN, c.twilioAuthTokenFile);
    const app = createCallWebhookApp({ publicUrl: c.webhookPublicUrl, validateSignature: createTwilioSignatureValidator(authToken), onEvent: (e) => events.push(e), logger });
    try {
      webhook = await serveOn(app.fetch, c.webhookListen, 'status callbacks');
    } catch (err) {
      await janitor?.(); // local mode's sweep loop would keep the process from exiting with the error
      throw err;
    }
    follow = (sid, _id, signal) => events.wait(sid, (s) => dialer.getCall(s), 30_000, signal);
  } else {
    follow = (sid, _id, signal) =>
      followCallByPolling({ getCall: (s) => dialer.getCall(s), sid, intervalMs: c.callPollSec * 1000, sleep: abortableSleep, clock: Date.now, signal });
  }

  // Loaded only when asked for: prom-client is slow to import.
  const metricsModule = c.metricsListen ? await import('../../agent-listener/metrics.js') : undefined;
  const metrics = metricsModule?.createListenerMetrics();

  const listener = new Listener({
    agent,
    keys,
    source,
    dialer,
    state,
    bootstrapDir: required(cfg, 'bootstrapDir'),
    telephony: {
      from: c.fromNumber ?? (dryRun ? DRY_RUN_FROM : required(cfg, 'fromNumber')),
      target,
      leadIn: c.leadIn,
      ringTimeoutSec: c.ringTimeoutSec,
      machineDetection: c.machineDetection,
      statusCallbackUrl: webhook && c.webhookPublicUrl ? (id) => statusCallbackUrl(c.webhookPublicUrl as string, id) : undefined,
      fallbackSms: c.fallbackSms,
      completeAfterSec: c.completeAfterSec,
    },
    contacts: new Map(c.contacts.map((n) => [callerHash(n), n])),
    followCall: follow,
    logger,
    onEvent: (e) => process.stdout.write(flags.json ? `${JSON.stringify(e)}\n` : `${describe(e)}\n`),
    metrics,
  });

  let metricsServer: ServerType | undefined;
  const shutdown = async () => {
    await listener.stop();
    await janitor?.();
    await closeServer(webhook);
    await closeServer(metricsServer);
  };
  if (metricsModule && metrics && c.metricsListen) {
    try {
      metricsServer = await serveOn(metricsModule.createMetricsApp(metrics.registry).fetch, c.metricsListen, 'metrics');
    } catch (err) {
      // Nothing was taken yet; close what is open so the process can exit with the error.
      await shutdown();
      throw err;
    }
    const bound = metricsServer.address() as AddressInfo;
    logger.info({ url: `http://${bound.address}:${bound.port}/metrics` }, 'serving metrics');
  }

  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      void shutdown().then(resolve);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  listener.start();
  logger.info({ mode: source.kind, dialer: dryRun ? 'dry-run' : 'twilio', peers: keys.peers() }, 'listening');
  if (!flags.json) process.stdout.write(`listening as ${agent} (${source.kind} mode, ${dryRun ? 'dry-run' : 'twilio'} dialer)\n`);
  await stopped;
}
