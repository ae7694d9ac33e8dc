/**
 * `handoff hub serve`: resolves the flags, starts the hub, and shuts it down gracefully on
 * SIGINT/SIGTERM. The action resolves only after the shutdown, so `main.ts` exits with 0.
 */
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import pino from 'pino';
import { HandoffError } from '../../protocol/index.js';
import { createHubLogger, startHub } from '../../hub/index.js';
import { defaultSpoolDir, resolveHubConfig, type HubServeFlags } from './hub.js';

function integer(name: string, text: string | undefined, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new HandoffError('USAGE', `${name} must be an integer`);
  const value = Number(text);
  if (value < min || value > max) throw new HandoffError('USAGE', `${name} must be between ${min} and ${max}`);
  return value;
}

/** Serves until SIGINT or SIGTERM; `ready(url)` is called once the hub listens. */
export async function serveHub(flags: HubServeFlags, ready: (url: string) => void): Promise<void> {
  const port = integer('--port', flags.port, 0, 65535) ?? 8787;
  const bodyLimitBytes = integer('--body-limit', flags.bodyLimit, 1024, 64 * 1024 * 1024);
  const maxPendingPerTarget = integer('--max-pending', flags.maxPending, 1, 1_000_000);
  const sweepIntervalMs = integer('--sweep-interval', flags.sweepInterval, 10, 3_600_000);
  const config = resolveHubConfig(flags.config);
  if (!pino.levels.values[flags.logLevel] && flags.logLevel !== 'silent') throw new HandoffError('USAGE', `unknown log level ${flags.logLevel}`);
  // Logs go to stderr so that stdout carries only the command's result (the URL line).
  const destination = pino.destination({ fd: 2, sync: false });
  const logger = createHubLogger({ level: flags.logLevel, destination });

  // The spool wants an existing parent (a mistyped --spool should not create a tree); the default
  // location is ours to create.
  if (flags.spool === defaultSpoolDir()) await mkdir(path.dirname(flags.spool), { recursive: true, mode: 0o700 });
  const hub = await startHub({
    spoolDir: flags.spool,
    host: flags.host,
    port,
    configFile: config.file,
    configMissingOk: !config.named,
    logger,
    limits: { ...(bodyLimitBytes === undefined ? {} : { bodyLimitBytes }), ...(maxPendingPerTarget === undefined ? {} : { maxPendingPerTarget }) },
    sweepIntervalMs,
  });

  let stop: (signal: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<void>((resolve, reject) => {
    stop = (signal) => {
      logger.info({ signal }, 'shutting down');
      hub.close().then(resolve, reject);
    };
  });
  // `on`, not `once`: a second signal during the shutdown must not kill the process half-way.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    ready(hub.url);
    await stopped;
  } catch (err) {
    await hub.close();
    throw err;
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
  destination.flushSync();
}
