/**
 * The hub as a running HTTP server: opens the spool, loads the agents, serves the app with
 * @hono/node-server, reloads the config file when it changes (so `handoff hub add-agent` takes
 * effect without a restart), and shuts down gracefully.
 *
 * Shutdown order: stop accepting connections; stop the janitor and answer every parked request
 * (polls get 204); wait for in-flight requests (a client still trickling its body after
 * `shutdownGraceMs` has its connection closed); close the spool last, so that nothing
 * acknowledged is lost. `close()` is idempotent.
 */
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { serve } from '@hono/node-server';
import type { Logger } from 'pino';
import { HandoffError, toHandoffError } from '../protocol/index.js';
import { openSpool } from '../spool/index.js';
import { createHubApp, type HubApp, type HubLimits } from './app.js';
import { configStamp, HubAuth, loadHubConfig, type ConfigStamp } from './auth.js';
import { createHubLogger } from './logger.js';

/** How often a parked poll looks at a spool that other processes write too. */
const SHARED_SPOOL_RECHECK_MS = 250;

export interface StartHubOptions {
  spoolDir: string;
  /** The hub config file (agents and token hashes). */
  configFile: string;
  /** When true, a missing config file means "no agents yet" instead of an error. */
  configMissingOk?: boolean;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8787; 0 picks a free port. */
  port?: number;
  clock?: () => number;
  logger?: Logger;
  limits?: Partial<HubLimits>;
  /** Period of the janitor's background sweep; default 1000 ms. */
  sweepIntervalMs?: number;
  /** Finished handoffs older than this are deleted by the janitor (hourly); default kept forever. */
  retentionMs?: number;
  /** Claim lease given to accepted handoffs; the spool's default when omitted. */
  leaseMs?: number;
  /**
   * False when another process also writes the spool: the pending index then rescans handoff/,
   * and parked polls look again every 250 ms (nothing wakes them for another process's put).
   * Default true.
   */
  exclusiveSpool?: boolean;
  /** How often the config file is checked for changes; default 1000 ms. */
  configReloadMs?: number;
  /** How long shutdown waits for in-flight requests before closing their connections; default 5000 ms. */
  shutdownGraceMs?: number;
}

export interface RunningHub {
  /** Base URL, e.g. `http://127.0.0.1:8787`. */
  readonly url: string;
  readonly port: number;
  readonly app: HubApp;
  /** Graceful shutdown; idempotent (every call returns the same promise). */
  close(): Promise<void>;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new HandoffError('CONFIG', `${name} must be a positive number`);
  return v;
}

/**
 * Opens the spool and serves the hub until `close()`.
 * @throws HandoffError CONFIG (bad options or config file), IO (spool), UNAVAILABLE (cannot listen).
 */
export async function startHub(options: StartHubOptions): Promise<RunningHub> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8787;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new HandoffError('CONFIG', 'port must be an integer 0..65535');
  if (options.spoolDir === '') throw new HandoffError('CONFIG', 'spoolDir is required');
  const reloadMs = positive('configReloadMs', options.configReloadMs, 1000);
  const graceMs = positive('shutdownGraceMs', options.shutdownGraceMs, 5000);
  const clock = options.clock ?? Date.now;
  const logger = options.logger ?? createHubLogger();

  const loaded = await loadHubConfig(options.configFile, { missingOk: options.configMissingOk ?? false });
  const auth = new HubAuth(loaded.config);
  // In hub mode the hub owns its spool, so the pending index needs no rescan of handoff/.
  const spool = await openSpool({ root: options.spoolDir, clock, leaseMs: options.leaseMs, exclusive: options.exclusiveSpool ?? true });
  let app: HubApp;
  try {
    app = createHubApp({
      spool,
      auth,
      clock,
      logger,
      limits: options.limits,
      janitor: { sweepIntervalMs: options.sweepIntervalMs, retentionMs: options.retentionMs },
      // Handoffs another process puts wake no parked poll: those look again this often.
      pollRecheckMs: options.exclusiveSpool === false ? SHARED_SPOOL_RECHECK_MS : undefined,
    });
  } catch (err) {
    await spool.close();
    throw err;
  }

  let server: Server;
  let address: AddressInfo;
  try {
    [server, address] = await listen(app, host, port);
  } catch (err) {
    await app.close();
    await spool.close();
    throw err;
  }

  const connections = trackConnections(server);

  let stamp: ConfigStamp | undefined = loaded.stamp;
  let reloading = false;
  const reload = setInterval(() => {
    if (reloading) return;
    reloading = true;
    void reloadConfig()
      .catch((err: unknown) => {
        const e = toHandoffError(err, 'CONFIG');
        logger.warn({ code: e.code, err: e.message }, 'hub config not reloaded; keeping the previous agents');
      })
      .finally(() => {
        reloading = false;
      });
  }, reloadMs);
  reload.unref();

  async function reloadConfig(): Promise<void> {
    const now = await configStamp(options.configFile);
    if (sameStamp(now, stamp)) return;
    const next = await loadHubConfig(options.configFile, { missingOk: options.configMissingOk ?? false });
    auth.replace(next.config);
    stamp = next.stamp;
    logger.info({ agents: auth.agentNames.length }, 'hub config reloaded');
  }

  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  logger.info({ url }, 'hub listening');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      clearInterval(reload);
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      const appClosed = app.close();
      if (!(await settlesWithin(appClosed, graceMs))) server.closeAllConnections();
      await appClosed;
      connections.endIdle();
      if (!(await settlesWithin(serverClosed, graceMs))) server.closeAllConnections();
      await serverClosed;
      await spool.close();
      logger.info('hub stopped');
    })());

  return { url, port: address.port, app, close };
}

function listen(app: HubApp, host: string, port: number): Promise<[Server, AddressInfo]> {
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        fetch: app.fetch,
        hostname: host,
        port,
        serverOptions: {
          // A request (headers and body) must arrive in time; a long-poll's wait does not count.
          headersTimeout: 10_000,
          requestTimeout: 30_000,
          keepAliveTimeout: 65_000,
        },
      },
      (info) => {
        server.off('error', onError);
        resolve([server as Server, info]);
      },
    );
    const onError = (err: Error): void => {
      reject(new HandoffError('UNAVAILABLE', `cannot listen on ${host}:${port}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.on('clientError', answerMalformed);
  });
}

/**
 * A request Node's parser refuses (a negative Content-Length, both Content-Length and chunked,
 * a broken request line) never reaches the app; it gets the same error shape as every other
 * refusal, `{"error":{"code","message"}}`, instead of Node's bare 400, and the connection closes.
 */
function answerMalformed(err: NodeJS.ErrnoException, socket: Duplex): void {
  // `_httpMessage` is how Node links a socket to the response of the request it is serving; it
  // is set once that request's headers are parsed. If the request is whole (or its response has
  // begun), the bytes Node refused belong to a later, pipelined request, and a 400 would be read
  // as the answer to the earlier one (a parked poll, say): the connection just ends. Node's own
  // handler still answers when the earlier response has not begun; we do not. A fault in the
  // body of the request being served (a bad chunk) is answered as usual.
  const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean; req?: { complete?: boolean } } | null })._httpMessage;
  const later = current != null && (current.headersSent === true || current.req?.complete !== false);
  if (err.code === 'ECONNRESET' || !socket.writable || later) {
    socket.destroy();
    return;
  }
  const [status, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? ['408 Request Timeout', 'TIMEOUT', 'the request did not arrive in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? ['431 Request Header Fields Too Large', 'BAD_REQUEST', 'request headers too large']
        : ['400 Bad Request', 'BAD_REQUEST', 'malformed HTTP request'];
  const body = JSON.stringify({ error: { code, message } });
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * Counts the requests in progress on each connection so that shutdown can end every connection
 * that is not in the middle of a request, including ones a client opened but never used (Node's
 * `closeIdleConnections` leaves those open until `headersTimeout`), while a reply still being
 * written is let finish first.
 */
function trackConnections(server: Server): { endIdle(): void } {
  const active = new Map<Socket, number>();
  let ending = false;
  server.on('connection', (socket: Socket) => {
    active.set(socket, 0);
    socket.once('close', () => active.delete(socket));
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    active.set(socket, (active.get(socket) ?? 0) + 1);
    res.once('close', () => {
      if (!active.has(socket)) return;
      const left = (active.get(socket) ?? 1) - 1;
      active.set(socket, left);
      if (ending && left === 0) socket.end();
    });
  });
  return {
    endIdle() {
      ending = true;
      for (const [socket, count] of active) if (count === 0) socket.end();
    },
  };
}

function sameStamp(a: ConfigStamp | undefined, b: ConfigStamp | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
