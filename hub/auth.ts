/**
 * Per-agent bearer tokens of the hub.
 *
 * The hub config file is JSON, `{"agents": {"<name>": {"token_sha256": "<64 hex>"}}}`, mode 0600.
 * Only the SHA-256 of each token is stored: a leaked config file does not let anyone speak for an
 * agent. A token is 32 random bytes in base64url, shown once by `addAgent`. Presented tokens are
 * hashed and compared with every stored hash in constant time (no early exit), so neither the
 * content nor the position of a match leaks through timing.
 *
 * The file is read as key files are (`readSmallFile`): refused when others can read or write it,
 * when it is a symlink, not a regular file (a FIFO must not hang the hub) or over 1 MiB (some ten
 * thousand agents). It is parsed strictly: a duplicate key is refused (JSON.parse would keep the
 * last "bob" silently), and so are two agents with the same token hash (a token must name one
 * agent; the hub would otherwise answer with whichever came first). Every write is atomic: a
 * temporary file in the same directory, fsync, rename, fsync of the directory; concurrent
 * `add-agent`/`remove-agent` runs are serialised by a lock file.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import * as path from 'node:path';
import lockfile from 'proper-lockfile';
import * as z from 'zod';
import type { MiddlewareHandler } from 'hono';
import { AGENT_NAME_RE, HandoffError, parseJson, readSmallFile, toJs } from '../protocol/index.js';

const HubConfigSchema = z.object({
  agents: z.record(
    z.string().regex(AGENT_NAME_RE, { message: 'agent names must match [a-z][a-z0-9_-]{0,31}' }),
    z.object({ token_sha256: z.string().regex(/^[0-9a-f]{64}$/, { message: 'must be 64 lowercase hex chars' }) }),
  ),
});

export type HubConfig = z.infer<typeof HubConfigSchema>;

/** Identity of a loaded config file, to notice that it changed on disk. */
export interface ConfigStamp {
  ino: number;
  size: number;
  mtimeMs: number;
}

const TOKEN_BYTES = 32;
// base64url of 32 bytes is 43 characters; allow some room for other token generators.
const BEARER_RE = /^Bearer +([A-Za-z0-9._~+/-]{16,512}=*) *$/i;

/** The SHA-256 (hex) of a token, as stored in the config file. */
export function tokenSha256(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random token: 32 bytes, base64url. */
export function generateToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

/** An empty config (no agents): every request is refused until an agent is added. */
export function emptyHubConfig(): HubConfig {
  return { agents: {} };
}

/** A hub config is about 100 bytes per agent: 1 MiB is some ten thousand agents. */
const MAX_HUB_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads and checks a hub config file.
 * @throws HandoffError CONFIG when it is missing (unless `missingOk`), a symlink, not a regular
 *   file, readable or writable by others, over 1 MiB, not valid JSON (a duplicate key included),
 *   not a valid config, or gives two agents the same token hash.
 */
export async function loadHubConfig(file: string, options: { missingOk?: boolean } = {}): Promise<{ config: HubConfig; stamp?: ConfigStamp }> {
  const loaded = await readHubConfig(file, options);
  checkDistinctTokens(loaded.config, `hub config ${file}`);
  return loaded;
}

/** `loadHubConfig` without the check of distinct token hashes, which `updateConfig` makes after its change. */
async function readHubConfig(file: string, options: { missingOk?: boolean }): Promise<{ config: HubConfig; stamp?: ConfigStamp }> {
  const read = await readSmallFile(file, {
    label: `hub config ${file}`,
    code: 'CONFIG',
    maxBytes: MAX_HUB_CONFIG_BYTES,
    noFollow: true,
    private: true,
    missingOk: options.missingOk ?? false,
  });
  if (read === undefined) return { config: emptyHubConfig() };
  let raw: unknown;
  try {
    // Our parser, not JSON.parse, which keeps the last of two "bob" keys without a word.
    raw = toJs(parseJson(read.bytes));
  } catch (cause) {
    throw new HandoffError('CONFIG', `hub config ${file} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const parsed = HubConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new HandoffError('CONFIG', `hub config ${file}: ${issue ? `${issue.path.join('.')} ${issue.message}` : 'invalid'}`);
  }
  const { ino, size, mtimeMs } = read.stat;
  return { config: parsed.data, stamp: { ino, size, mtimeMs } };
}

/**
 * Refuses two agents with the same token hash: the token would name both, and the hub would answer
 * with whichever came first.
 */
function checkDistinctTokens(config: HubConfig, where: string): void {
  const seen = new Map<string, string>();
  for (const [name, { token_sha256 }] of Object.entries(config.agents)) {
    const other = seen.get(token_sha256);
    if (other !== undefined) {
      throw new HandoffError('CONFIG', `${where}: agents "${other}" and "${name}" have the same token_sha256; give one of them a new token (hub add-agent) or remove it`);
    }
    seen.set(token_sha256, name);
  }
}

/** The stamp of a config file now, or undefined when it does not exist. */
export async function configStamp(file: string): Promise<ConfigStamp | undefined> {
  try {
    const info = await lstat(file);
    return { ino: info.ino, size: info.size, mtimeMs: info.mtimeMs };
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new HandoffError('CONFIG', `cannot stat hub config ${file}`, { cause });
  }
}

async function writeConfigAtomically(file: string, config: HubConfig): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const text = `${JSON.stringify(config, null, 2)}\n`;
  try {
    const handle = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    try {
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
    const dirHandle = await open(dir, fsConstants.O_RDONLY);
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } catch (cause) {
    await unlink(tmp).catch(() => undefined);
    throw new HandoffError('CONFIG', `cannot write hub config ${file}`, { cause });
  }
}

async function updateConfig<T>(file: string, change: (config: HubConfig) => T): Promise<T> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, {
      realpath: false,
      lockfilePath: `${file}.lock`,
      stale: 10_000,
      retries: { retries: 20, minTimeout: 20, maxTimeout: 200 },
    });
  } catch (cause) {
    throw new HandoffError('CONFIG', `cannot lock hub config ${file}`, { cause });
  }
  try {
    // Two agents sharing a token hash are checked after the change, so that add-agent or
    // remove-agent of one of them is the way out.
    const { config } = await readHubConfig(file, { missingOk: true });
    const result = change(config);
    checkDistinctTokens(config, `hub config ${file}`);
    await writeConfigAtomically(file, config);
    return result;
  } finally {
    await release().catch(() => undefined);
  }
}

/**
 * Registers `name` (or replaces its token) and returns the new token; only its hash is stored.
 * @throws HandoffError USAGE for an invalid name, CONFIG when the file cannot be read or written.
 */
export async function addAgent(file: string, name: string): Promise<string> {
  if (!AGENT_NAME_RE.test(name)) throw new HandoffError('USAGE', 'agent names must match [a-z][a-z0-9_-]{0,31}');
  const token = generateToken();
  await updateConfig(file, (config) => {
    config.agents[name] = { token_sha256: tokenSha256(token) };
  });
  return token;
}

/**
 * Removes `name`; resolves to false when it was not registered.
 * @throws HandoffError CONFIG when the file cannot be read or written.
 */
export async function removeAgent(file: string, name: string): Promise<boolean> {
  return updateConfig(file, (config) => {
    if (!Object.hasOwn(config.agents, name)) return false;
    delete config.agents[name];
    return true;
  });
}

/** The hub's in-memory view of the registered agents, replaceable when the file changes. */
export class HubAuth {
  #entries: Array<{ name: string; hash: Buffer }> = [];

  constructor(config: HubConfig) {
    this.replace(config);
  }

  /**
   * Swaps in a newly loaded config (the hub reloads its file when it changes).
   * @throws HandoffError CONFIG when two agents have the same token hash; the old agents stay.
   */
  replace(config: HubConfig): void {
    const parsed = HubConfigSchema.parse(config);
    checkDistinctTokens(parsed, 'hub config');
    this.#entries = Object.entries(parsed.agents).map(([name, { token_sha256 }]) => ({ name, hash: Buffer.from(token_sha256, 'hex') }));
  }

  /** The agent a token belongs to, or undefined. Compares against every entry in constant time. */
  identify(token: string): string | undefined {
    const presented = createHash('sha256').update(token, 'utf8').digest();
    let found: string | undefined;
    for (const entry of this.#entries) {
      if (timingSafeEqual(presented, entry.hash) && found === undefined) found = entry.name;
    }
    return found;
  }

  isAgent(name: string): boolean {
    return this.#entries.some((entry) => entry.name === name);
  }

  get agentNames(): string[] {
    return this.#entries.map((entry) => entry.name);
  }
}

/** The Hono variables set by `bearerAuth`. */
export interface AuthVariables {
  agent: string;
}

/**
 * Hono middleware: resolves the bearer token to an agent (`c.get('agent')`).
 * @throws HandoffError UNAUTHORIZED when the header is missing, malformed or the token unknown.
 */
export function bearerAuth(auth: HubAuth): MiddlewareHandler<{ Variables: AuthVariables }> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    if (header === undefined) throw new HandoffError('UNAUTHORIZED', 'missing bearer token');
    const match = BEARER_RE.exec(header);
    const agent = match?.[1] === undefined ? undefined : auth.identify(match[1]);
    if (agent === undefined) throw new HandoffError('UNAUTHORIZED', 'unknown bearer token');
    c.set('agent', agent);
    await next();
  };
}
