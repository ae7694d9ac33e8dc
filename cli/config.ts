/**
 * The one configuration model of every command. Each setting resolves once, here:
 *
 *   flag ?? env.HANDOFF_X ?? config file ?? default
 *
 * then the whole result is checked by one schema. The config file is `--config FILE` (or
 * `HANDOFF_CONFIG`); without it `./handoff.config.json` if present, then
 * `~/.config/handoff/config.json` if present. A named file that is missing is an error; the default
 * ones being absent is not. Secrets (hub token, Twilio auth token) come only from files or the
 * environment, never from flags, which show up in `ps`.
 *
 * An empty value is an error as a flag or in the config file (it would otherwise fall back to the
 * default unseen); an empty environment variable means unset, as is the convention (`VAR= cmd`).
 * A number from a flag or the environment is written in plain decimal: `Number()` would also take
 * `0x10`, `1e1`, ` 5` or an empty string.
 *
 * Config and secret files are read with `readSmallFileSync` (the checks of key files): a FIFO,
 * directory or device is refused at once instead of hanging or failing later; a secret file must
 * also be private, UTF-8, and a token of printable ASCII.
 */
import { statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as z from 'zod';
import { AGENT_NAME_RE, E164_RE, HandoffError, parseJson, readSmallFileSync, toJs } from '../protocol/index.js';

/** Where a resolved value came from (shown in errors and by `handoff doctor`). */
export type Source = 'flag' | 'env' | 'file' | 'default';

interface Setting {
  /** commander's camelCase option key. */
  flag?: string;
  /** The option as a user types it, when it is not `--<kebab of flag>`. */
  flagName?: string;
  env?: string;
  /** Dotted path in the config file. */
  file: string;
  default?: unknown;
  kind: 'string' | 'path' | 'number' | 'boolean' | 'json';
}

/** Every setting, by its resolved name. */
export const SETTINGS = {
  agent: { flag: 'agent', env: 'HANDOFF_AGENT', file: 'agent', kind: 'string' },
  spool: { flag: 'spool', env: 'HANDOFF_SPOOL', file: 'spool', kind: 'path' },
  hubUrl: { flag: 'hub', env: 'HANDOFF_HUB_URL', file: 'hub.url', kind: 'string' },
  tokenFile: { flag: 'tokenFile', env: 'HANDOFF_TOKEN_FILE', file: 'hub.token_file', kind: 'path' },
  keysDir: { flag: 'keys', env: 'HANDOFF_KEYS_DIR', file: 'keys_dir', default: '~/.secrets', kind: 'path' },
  bootstrapDir: { flag: 'bootstrapDir', env: 'HANDOFF_BOOTSTRAP_DIR', file: 'bootstrap_dir', kind: 'path' },
  stateDir: { flag: 'stateDir', env: 'HANDOFF_STATE_DIR', file: 'state_dir', kind: 'path' },
  ttlSec: { flag: 'ttl', env: 'HANDOFF_TTL_SEC', file: 'ttl_sec', default: 15, kind: 'number' },
  dialer: { flag: 'dialer', env: 'HANDOFF_DIALER', file: 'dialer', kind: 'string' },
  twilioAccountSid: { env: 'TWILIO_ACCOUNT_SID', file: 'twilio.account_sid', kind: 'string' },
  twilioAuthTokenFile: { env: 'HANDOFF_TWILIO_AUTH_TOKEN_FILE', file: 'twilio.auth_token_file', kind: 'path' },
  twilioApiBaseUrl: { env: 'HANDOFF_TWILIO_API_BASE_URL', file: 'twilio.api_base_url', kind: 'string' },
  fromNumber: { flag: 'fromNumber', env: 'HANDOFF_FROM_NUMBER', file: 'twilio.from_number', kind: 'string' },
  cps: { env: 'HANDOFF_TWILIO_CPS', file: 'twilio.cps', default: 1, kind: 'number' },
  targetKind: { env: 'HANDOFF_TARGET_KIND', file: 'target.kind', default: 'stream', kind: 'string' },
  targetUrl: { flag: 'targetUrl', env: 'HANDOFF_TARGET_URL', file: 'target.url', kind: 'string' },
  contacts: { file: 'contacts', default: [], kind: 'json' },
  ringTimeoutSec: { env: 'HANDOFF_RING_TIMEOUT_SEC', file: 'call.ring_timeout_sec', default: 25, kind: 'number' },
  machineDetection: { env: 'HANDOFF_MACHINE_DETECTION', file: 'call.machine_detection', default: true, kind: 'boolean' },
  leadIn: { env: 'HANDOFF_LEAD_IN', file: 'call.lead_in', default: false, kind: 'boolean' },
  fallbackSms: { env: 'HANDOFF_FALLBACK_SMS', file: 'call.fallback_sms', default: true, kind: 'boolean' },
  completeAfterSec: { env: 'HANDOFF_COMPLETE_AFTER_SEC', file: 'call.complete_after_sec', default: 120, kind: 'number' },
  callPollSec: { env: 'HANDOFF_CALL_POLL_SEC', file: 'call.poll_interval_sec', default: 2, kind: 'number' },
  webhookListen: { env: 'HANDOFF_WEBHOOK_LISTEN', file: 'webhook.listen', kind: 'string' },
  webhookPublicUrl: { env: 'HANDOFF_WEBHOOK_PUBLIC_URL', file: 'webhook.public_url', kind: 'string' },
  metricsListen: { flag: 'metricsListen', env: 'HANDOFF_METRICS_LISTEN', file: 'metrics.listen', kind: 'string' },
  pollWaitSec: { flag: 'pollWait', flagName: '--wait', env: 'HANDOFF_POLL_WAIT_SEC', file: 'poll_wait_sec', default: 25, kind: 'number' },
  host: { flag: 'host', env: 'HANDOFF_HUB_HOST', file: 'hub_server.host', default: '127.0.0.1', kind: 'string' },
  port: { flag: 'port', env: 'HANDOFF_HUB_PORT', file: 'hub_server.port', default: 8787, kind: 'number' },
  hubConfig: { flag: 'hubConfig', flagName: '--config', env: 'HANDOFF_HUB_CONFIG', file: 'hub_server.config', kind: 'path' },
  bodyLimit: { flag: 'bodyLimit', env: 'HANDOFF_BODY_LIMIT', file: 'hub_server.body_limit', default: 1_048_576, kind: 'number' },
  maxPending: { flag: 'maxPending', env: 'HANDOFF_MAX_PENDING', file: 'hub_server.max_pending', default: 100, kind: 'number' },
  maxParked: { flag: 'maxParked', env: 'HANDOFF_MAX_PARKED', file: 'hub_server.max_parked', default: 32, kind: 'number' },
  sweepIntervalMs: { flag: 'sweepInterval', env: 'HANDOFF_SWEEP_INTERVAL_MS', file: 'hub_server.sweep_interval_ms', default: 1000, kind: 'number' },
  retentionDays: { flag: 'retentionDays', env: 'HANDOFF_RETENTION_DAYS', file: 'hub_server.retention_days', kind: 'number' },
  logLevel: { flag: 'logLevel', env: 'HANDOFF_LOG_LEVEL', file: 'log_level', default: 'info', kind: 'string' },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

const url = (schemes: string[]) =>
  z.string().refine((s) => {
    try {
      return schemes.includes(new URL(s).protocol);
    } catch {
      return false;
    }
  }, `must be a ${schemes.map((p) => p.replace(':', '://')).join(' or ')} URL`);

const positive = z.number().positive('must be a positive number');

// Whole days, at least one: a slip of the finger must not purge what finished an hour ago.
const retentionDays = z.number().int('must be a whole number of days').min(1, 'must be at least 1 day').max(36_500, 'must be at most 36500 days');

/** An address a listener's own HTTP server binds to (no IPv6 literals: the colon splits it). */
const hostPort = z
  .string()
  .regex(/^[^:]+:\d{1,5}$/, 'must be HOST:PORT')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port must be at most 65535');

/** The schema of resolved settings; messages are completed with the setting's name and source. */
export const ConfigSchema = z.object({
  agent: z.string().regex(AGENT_NAME_RE, 'must match [a-z][a-z0-9_-]{0,31}').optional(),
  spool: z.string().optional(),
  hubUrl: url(['http:', 'https:']).optional(),
  tokenFile: z.string().optional(),
  keysDir: z.string(),
  bootstrapDir: z.string().optional(),
  stateDir: z.string().optional(),
  ttlSec: z.number().int('must be whole seconds').min(1, 'must be at least 1').max(86_400, 'must be at most 86400'),
  dialer: z.enum(['twilio', 'dry-run'], { message: 'must be "twilio" or "dry-run"' }).optional(),
  twilioAccountSid: z.string().regex(/^AC[0-9a-f]{32}$/, 'must look like AC followed by 32 hex characters').optional(),
  twilioAuthTokenFile: z.string().optional(),
  twilioApiBaseUrl: url(['http:', 'https:']).optional(),
  fromNumber: z.string().regex(E164_RE, 'must be an E.164 number like +15551234567').optional(),
  cps: positive.max(100, 'must be at most 100'),
  targetKind: z.enum(['stream', 'twiml-url'], { message: 'must be "stream" or "twiml-url"' }),
  targetUrl: z.string().optional(),
  contacts: z.array(z.string().regex(E164_RE, 'each contact must be an E.164 number'), { message: 'must be a list of E.164 numbers' }),
  // Twilio takes whole seconds: a fraction would fail every dial, not the start.
  ringTimeoutSec: z.number().int('must be whole seconds').min(1, 'must be at least 1').max(600, 'must be at most 600'),
  machineDetection: z.boolean(),
  leadIn: z.boolean(),
  fallbackSms: z.boolean(),
  completeAfterSec: z.number().min(0, 'must be ≥ 0'),
  callPollSec: positive,
  webhookListen: hostPort.optional(),
  webhookPublicUrl: url(['https:', 'http:']).optional(),
  metricsListen: hostPort.optional(),
  pollWaitSec: z.number().min(0, 'must be ≥ 0').max(30, 'must be at most 30'),
  host: z.string().min(1),
  port: z.number().int('must be an integer').min(0).max(65535, 'must be a port number'),
  hubConfig: z.string().optional(),
  bodyLimit: z.number().int().min(1024, 'must be at least 1024 bytes'),
  maxPending: z.number().int().min(1, 'must be at least 1'),
  maxParked: z.number().int().min(1, 'must be at least 1'),
  sweepIntervalMs: z.number().int().min(10, 'must be at least 10 ms').max(3_600_000, 'must be at most an hour'),
  retentionDays: retentionDays.optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { message: 'must be a pino level (fatal … trace, or silent)' }),
});

export type Config = z.infer<typeof ConfigSchema>;

export interface ResolvedConfig {
  config: Config;
  sources: Partial<Record<SettingName, Source>>;
  /** The config file that was read, if any. */
  file?: string;
}

export interface ResolveInput {
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  home?: string;
  /** An explicit config file (`--config`); an error if missing. */
  configFile?: string;
}

function expandHome(p: string, home: string): string {
  return p === '~' ? home : p.startsWith('~/') ? path.join(home, p.slice(2)) : p;
}

function fromDotted(obj: unknown, dotted: string): unknown {
  let cur = obj;
  for (const key of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

/** The config file's keys (dotted) and the sections (objects) that hold them. */
const FILE_KEYS = new Set<string>(Object.values(SETTINGS).map((s: Setting) => s.file));
const FILE_SECTIONS = new Set([...FILE_KEYS].flatMap((k) => k.split('.').slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join('.'))));

/**
 * Refuses a key no setting reads, and a section that is not an object: either would be ignored,
 * and a misspelled `twilio.account_sid` silently turns real calls into a dry run. Keys that start
 * with `_` or `$` ("_comment", "$schema") are notes for people and editors, and are skipped.
 */
function checkFileKeys(doc: Record<string, unknown>, file: string, prefix = ''): void {
  for (const [key, value] of Object.entries(doc)) {
    const dotted = prefix === '' ? key : `${prefix}.${key}`;
    // A dotted name written flat ("twilio.account_sid": …) would match a known key here, but the
    // settings are read from nested objects: it would be ignored just the same.
    if (key.includes('.')) {
      throw new HandoffError('CONFIG', `config file ${file} key "${dotted}": write it nested, as ${nestedExample(dotted)}`);
    }
    if (key === '__proto__') throw new HandoffError('CONFIG', `config file ${file} has a key "${dotted}", which is not a setting`);
    if (key.startsWith('_') || key.startsWith('$')) continue;
    if (FILE_SECTIONS.has(dotted)) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        const inside = [...FILE_KEYS].filter((k) => k.startsWith(`${dotted}.`)).map((k) => k.slice(dotted.length + 1));
        throw new HandoffError('CONFIG', `config file ${file} key "${dotted}" must be an object (with ${inside.join(', ')})`);
      }
      checkFileKeys(value as Record<string, unknown>, file, dotted);
    } else if (!FILE_KEYS.has(dotted)) {
      const near = closestKey(dotted);
      throw new HandoffError('CONFIG', `config file ${file} has an unknown key "${dotted}"${near ? ` (did you mean "${near}"?)` : ''}`);
    }
  }
}

/** `{"a": {"b": …}}` for "a.b". */
function nestedExample(dotted: string): string {
  const parts = dotted.split('.');
  return `${parts.map((p) => `{"${p}": `).join('')}…${'}'.repeat(parts.length)}`;
}

/** The known key nearest to `dotted` (ignoring case and `_`; a few letters apart at most), if any. */
function closestKey(dotted: string): string | undefined {
  const plain = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  let best: { key: string; d: number } | undefined;
  for (const key of [...FILE_KEYS, ...FILE_SECTIONS]) {
    const d = editDistance(plain(key), plain(dotted));
    if (d <= Math.max(2, Math.floor(plain(key).length / 6)) && (best === undefined || d < best.d)) best = { key, d };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}

/**
 * A config file is a few settings and a contacts list: kilobytes. 1 MiB leaves room for thousands
 * of contacts, and stops a wrong path (a log, a disk image) from being read whole and parsed.
 */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/**
 * A token is tens of bytes (a hub token is 43, a Twilio auth token 32), and servers cap a whole
 * header block at 8 to 16 KiB: 64 KiB is generous, and still refuses a wrong file at once.
 */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;

function readConfigFile(file: string, required: boolean): unknown {
  // Neither O_NOFOLLOW nor a mode check: the file holds no secret, and a symlinked config (a
  // dotfile manager's) is common.
  const read = readSmallFileSync(file, { label: `config file ${file}`, code: 'CONFIG', maxBytes: MAX_CONFIG_FILE_BYTES, missingOk: !required });
  if (read === undefined) return undefined;
  let doc: unknown;
  try {
    // Our parser, not JSON.parse: strict UTF-8, duplicate keys refused, and its messages give the
    // offset, never a piece of the text (the file holds phone numbers).
    doc = toJs(parseJson(read.bytes));
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('the file must hold a JSON object');
  } catch (cause) {
    throw new HandoffError('CONFIG', `config file ${file} is not valid: ${(cause as Error).message}`, { cause });
  }
  checkFileKeys(doc as Record<string, unknown>, file);
  return doc;
}

const DECIMAL_RE = /^-?\d+(\.\d+)?$/;

function coerce(setting: Setting, raw: unknown, source: Source, name: string, home: string): unknown {
  const where = `${name} (from ${source === 'file' ? `config file key "${setting.file}"` : source === 'env' ? `environment ${setting.env}` : source === 'flag' ? flagOf(setting, name) : 'default'})`;
  if (source === 'env' || source === 'flag') {
    if (typeof raw === 'boolean' && setting.kind === 'boolean') return raw;
    const text = String(raw);
    if (setting.kind === 'number') {
      // Plain decimal only; the sign and the fraction are then judged by the schema.
      const n = DECIMAL_RE.test(text) ? Number(text) : Number.NaN;
      if (!Number.isFinite(n)) throw new HandoffError('CONFIG', `${where}: must be a number in plain decimal (like 15 or 0.5), got ${JSON.stringify(text)}`);
      return n;
    }
    if (setting.kind === 'boolean') {
      if (/^(1|true|yes|on)$/i.test(text)) return true;
      if (/^(0|false|no|off)$/i.test(text)) return false;
      throw new HandoffError('CONFIG', `${where}: must be true or false, got ${JSON.stringify(text)}`);
    }
    if (setting.kind === 'json') throw new HandoffError('CONFIG', `${where}: can only be set in the config file`);
  }
  if (setting.kind === 'path' && typeof raw === 'string') return expandHome(raw, home);
  return raw;
}

/** The command-line option that sets `setting`, as a user types it. */
function flagOf(setting: Setting, name: string): string {
  return setting.flagName ?? `--${(setting.flag ?? name).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Finds the config file to read: explicit, `HANDOFF_CONFIG`, `./handoff.config.json`, `~/.config/handoff/config.json`. */
export function locateConfigFile(input: ResolveInput): { file?: string; required: boolean } {
  const env = input.env ?? {};
  if (input.configFile === '') throw new HandoffError('CONFIG', '--config is empty: name a config file, or leave the option out');
  const explicit = input.configFile ?? env.HANDOFF_CONFIG;
  if (explicit) return { file: path.resolve(input.cwd ?? '.', explicit), required: true };
  const home = input.home ?? os.homedir();
  for (const candidate of [path.join(input.cwd ?? '.', 'handoff.config.json'), path.join(home, '.config', 'handoff', 'config.json')]) {
    try {
      if (statSync(candidate).isFile()) return { file: path.resolve(candidate), required: false };
    } catch {
      // absent default locations are fine
    }
  }
  return { required: false };
}

/**
 * Resolves every setting by precedence and validates the result.
 * @throws HandoffError CONFIG naming the setting, its source and what is wrong.
 */
export function resolveConfig(input: ResolveInput = {}): ResolvedConfig {
  const env = input.env ?? {};
  const flags = input.flags ?? {};
  const home = input.home ?? os.homedir();
  const located = locateConfigFile(input);
  const fileDoc = located.file ? readConfigFile(located.file, located.required) : undefined;
  const raw: Record<string, unknown> = {};
  const sources: Partial<Record<SettingName, Source>> = {};
  for (const [name, setting] of Object.entries(SETTINGS) as Array<[SettingName, Setting]>) {
    const flag = setting.flag ? flags[setting.flag] : undefined;
    if (flag === '') throw new HandoffError('CONFIG', `${name} (from ${flagOf(setting, name)}): is empty; give a value, or leave the option out`);
    const inFile = fileDoc === undefined ? undefined : fromDotted(fileDoc, setting.file);
    if (inFile === '') throw new HandoffError('CONFIG', `${name} (from config file ${located.file} key "${setting.file}"): is empty; give a value, or remove the key`);
    const candidates: Array<[Source, unknown]> = [
      ['flag', flag],
      // An empty environment variable is unset, as usual (`HANDOFF_TOKEN= handoff …`).
      ['env', setting.env && env[setting.env] !== '' ? env[setting.env] : undefined],
      ['file', inFile],
      ['default', setting.default],
    ];
    const hit = candidates.find(([, v]) => v !== undefined);
    if (!hit) continue;
    raw[name] = coerce(setting, hit[1], hit[0], name, home);
    sources[name] = hit[0];
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'config') as SettingName;
    const setting: Setting | undefined = SETTINGS[name];
    const source = sources[name];
    const from =
      source === 'file' ? `config file ${located.file} key "${setting?.file}"` : source === 'env' ? `environment ${setting?.env}` : source === 'flag' && setting ? flagOf(setting, name) : 'default';
    throw new HandoffError('CONFIG', `${name} (from ${from}): ${issue?.message ?? 'is invalid'}`);
  }
  return { config: parsed.data, sources, ...(located.file && fileDoc !== undefined ? { file: located.file } : {}) };
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** What a token can hold: it travels in an HTTP header, where anything else fails every request. */
const TOKEN_RE = /^[\x21-\x7e]+$/;

/**
 * Reads a secret from the environment or a file, never from a flag. The file is checked like a key
 * file: a regular file (a FIFO must not hang the start; a symlink is followed to it), not readable
 * by others, at most 64 KiB; its text must be UTF-8 and the token, trimmed, printable ASCII without spaces.
 * Messages name the file and what is wrong, never the content.
 * @throws HandoffError CONFIG when neither gives a value or the file or the token is unusable.
 */
export function readSecret(what: string, envValue: string | undefined, file: string | undefined): string {
  if (envValue) return checkToken(envValue.trim(), `${what} from the environment`);
  if (!file) throw new HandoffError('CONFIG', `${what} is not configured`);
  const label = `${what} file ${file}`;
  // A symlink is followed (secret mounts are symlinks); what it names must be a private regular file.
  const { bytes } = readSmallFileSync(file, { label, code: 'CONFIG', maxBytes: MAX_SECRET_FILE_BYTES, private: true });
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch (cause) {
    throw new HandoffError('CONFIG', `${label} is not UTF-8 text`, { cause });
  }
  return checkToken(text.trim(), label);
}

function checkToken(token: string, where: string): string {
  if (token === '') throw new HandoffError('CONFIG', `${where} is empty`);
  if (!TOKEN_RE.test(token)) throw new HandoffError('CONFIG', `${where} holds characters a token cannot have (only printable ASCII, no spaces or line breaks)`);
  return token;
}

/** The listener's state directory: `stateDir`, else `~/.local/state/handoff/<agent>`. */
export function stateDirOf(config: Config, agent: string, home = os.homedir()): string {
  return config.stateDir ?? path.join(home, '.local', 'state', 'handoff', agent);
}

/** The retention of finished handoffs in ms, or undefined: kept forever. */
export function retentionMsOf(config: Config): number | undefined {
  return config.retentionDays === undefined ? undefined : config.retentionDays * 86_400_000;
}

/** The setting's value or a CONFIG error saying how to provide it. */
export function required<K extends SettingName>(resolved: ResolvedConfig, name: K): NonNullable<Config[K]> {
  const value = resolved.config[name];
  if (value === undefined || value === null) {
    const s: Setting = SETTINGS[name];
    const ways = [s.flag ? flagOf(s, name) : undefined, s.env ? `${s.env}=…` : undefined, `"${s.file}" in the config file`].filter(Boolean);
    throw new HandoffError('CONFIG', `${name} is required: set ${ways.join(', or ')}`);
  }
  return value as NonNullable<Config[K]>;
}

/** The key directory as every command resolves it (`--keys`, HANDOFF_KEYS_DIR, `keys_dir`, `~/.secrets`). */
export function keysDirFrom(flags: { keys?: string; config?: string }): string {
  return resolveConfig({ flags, env: process.env, cwd: process.cwd(), configFile: flags.config }).config.keysDir;
}
