/**
 * `handoff hub serve`: resolves the flags, starts the hub, and shuts it down gracefully on
 * SIGINT/SIGTERM. The action resolves only after the shutdown, so `main.ts` exits with 0.
 */
import { mkdir } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { createHubLogger, startHub } from '../../hub/index.js';
import { resolveConfig, retentionMsOf, type ResolvedConfig } from '../config.js';
import type { HubServeFlags } from './hub.js';

const DEFAULT_SPOOL = ['.handoff', 'spool'];
const DEFAULT_HUB_CONFIG = ['.handoff', 'hub.json'];

/** The hub's settings through the one configuration model (`--config` here names the hub's agents file). */
function hubSettings(flags: HubServeFlags | { config?: string }): { cfg: ResolvedConfig; spool: string; hubConfig: string; named: boolean } {
  const cfg = resolveConfig({ flags: { ...flags, hubConfig: flags.config }, env: process.env, cwd: process.cwd() });
  const home = os.homedir();
  return {
    cfg,
    spool: cfg.config.spool ?? path.join(home, ...DEFAULT_SPOOL),
    hubConfig: cfg.config.hubConfig ?? path.join(home, ...DEFAULT_HUB_CONFIG),
    named: cfg.config.hubConfig !== undefined,
  };
}

/** The hub config file named by `--config`, `HANDOFF_HUB_CONFIG` or the config file, else the default. */
export function hubConfigFile(flag: string | undefined): { file: string; named: boolean } {
  const s = hubSettings({ config: flag });
  return { file: s.hubConfig, named: s.named };
}

/** Serves until SIGINT or SIGTERM; `ready(url)` is called once the hub listens. */
export async function serveHub(flags: HubServeFlags, ready: (url: string) => void): Promise<void> {
  const { cfg, spool, hubConfig, named } = hubSettings(flags);
  const c = cfg.config;
  // Logs go to stderr so that stdout carries only the command's result (the URL line).
  const destination = pino.destination({ fd: 2, sync: false });
  const logger = createHubLogger({ level: c.logLevel, destination });

  // The spool wants an existing parent (a mistyped --spool should not create a tree); the default
  // location is ours to create.
  if (c.spool === undefined) await mkdir(path.dirname(spool), { recursive: true, mode: 0o700 });
  const hub = await startHub({
    spoolDir: spool,
    host: c.host,
    port: c.port,
    configFile: hubConfig,
    configMissingOk: !named,
    logger,
    limits: { bodyLimitBytes: c.bodyLimit, maxPendingPerTarget: c.maxPending, maxParkedPerAgent: c.maxParked },
    sweepIntervalMs: c.sweepIntervalMs,
    retentionMs: retentionMsOf(c),
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
