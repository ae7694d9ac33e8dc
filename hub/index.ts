/**
 * hub/: the HTTP relay over the spool (DESIGN.md §5): per-agent bearer tokens, long-poll, state
 * transitions, janitor, metrics. It holds no pair secrets, so it cannot forge a handoff.
 */

/** Builds the hub's Hono app over an open spool (throws CONFIG on bad limits); see app.ts for the API. */
export { createHubApp, DEFAULT_HUB_LIMITS } from './app.js';
export type { HubApp, HubAppOptions, HubLimits, HubSpool } from './app.js';

/** Hub config file and bearer tokens: add/remove agents (CONFIG, USAGE), load (CONFIG), authenticate (UNAUTHORIZED). */
export { addAgent, bearerAuth, emptyHubConfig, generateToken, HubAuth, loadHubConfig, removeAgent, tokenSha256 } from './auth.js';
export type { AuthVariables, HubConfig } from './auth.js';

/** The janitor that expires pending handoffs at their deadline and stale claims periodically. */
export { Janitor } from './janitor.js';
export type { JanitorOptions } from './janitor.js';

/** A pino logger with the hub's redaction rules (tokens, transcripts, numbers, payloads). */
export { createHubLogger, REDACT_PATHS } from './logger.js';
export type { HubLoggerOptions } from './logger.js';

/** The hub's Prometheus metrics in a registry of its own. */
export { createHubMetrics } from './metrics.js';
export type { HubMetrics } from './metrics.js';

/** Starts the hub server (throws CONFIG, IO, UNAVAILABLE); `close()` shuts it down gracefully. */
export { startHub } from './server.js';
export type { RunningHub, StartHubOptions } from './server.js';

/** The registry of parked long-polls and id watchers, woken by spool transitions. */
export { WaiterRegistry } from './waiters.js';
export type { Parked, ParkOptions, WakeReason } from './waiters.js';
