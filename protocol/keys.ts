/**
 * Pair secrets (DESIGN.md §3.3): one file per peer, `<dir>/voice-handoff-<peer>.key`, the same
 * secret on both sides. The secret is the file's text without its trailing newline, used as UTF-8
 * bytes (as the reference reads it from an environment variable). Several lines are several
 * accepted secrets during a rotation; the first one signs.
 *
 * A key file is refused when it is a symlink (it could be swapped to point anywhere), readable or
 * writable by group or others, not a regular file, over 64 KiB, empty, or shorter than
 * `MIN_SECRET_BYTES`; and when its text could not be the same secret on the reference's side: bytes
 * that are not UTF-8 (decoding would silently replace them, collapsing different binary keys into
 * one) or a carriage return (a file saved with CRLF: the reference keeps the CR in its secret, so
 * stripping it here would make every signature disagree; refusing says why). Config and token
 * files are read through the same `readSmallFile`.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HandoffError, type ErrorCode } from './errors.js';
import { AGENT_NAME_RE } from './payload.js';

/** Secrets shorter than this are refused outright. */
export const MIN_SECRET_BYTES = 16;
/** Secrets shorter than this load with a warning. */
export const RECOMMENDED_SECRET_BYTES = 32;

const KEY_PREFIX = 'voice-handoff-';
const KEY_SUFFIX = '.key';

/** The secrets this agent shares with each peer. */
export interface KeyRing {
  /** Accepted secrets for `peer`, the signing one first; undefined for an unknown peer. */
  secretsFor(peer: string): readonly Buffer[] | undefined;
  peers(): string[];
  /** Non-fatal findings (short secrets), safe to print: they never contain a secret. */
  readonly warnings: readonly string[];
}

/** The conventional key file path for `peer` inside `dir`. */
export function keyFilePath(dir: string, peer: string): string {
  if (!AGENT_NAME_RE.test(peer)) throw new HandoffError('USAGE', `invalid peer name ${JSON.stringify(peer)}`);
  return path.join(dir, `${KEY_PREFIX}${peer}${KEY_SUFFIX}`);
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The text of key material read as bytes (a key file, `keys import`'s standard input).
 * @throws HandoffError KEY_FILE when the bytes are not UTF-8.
 */
export function decodeKeyBytes(bytes: Uint8Array, where: string): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch (cause) {
    throw new HandoffError('KEY_FILE', `${where}: not UTF-8 text (a binary key? store it as text, e.g. base64)`, { cause });
  }
}

/** A key file holds a few lines of secrets; anything near this size is the wrong file. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/** How `readSmallFile` checks a file before it reads it. */
export interface SmallFileRules {
  /** Names the file in every message, e.g. "hub token file /etc/handoff/token". */
  label: string;
  /** The code of every refusal. */
  code: ErrorCode;
  /** More bytes than this are refused (the file is never read past it). */
  maxBytes: number;
  /** Refuse a symlink: it could be swapped to point anywhere. */
  noFollow?: boolean;
  /** Refuse a file that group or others may read or write (mode & 0o077). */
  private?: boolean;
  /** Give undefined, not an error, when the file does not exist. */
  missingOk?: boolean;
}

/** The bytes of a file read by `readSmallFile`, and the status of the very file they came from. */
export interface SmallFile {
  bytes: Buffer;
  stat: Stats;
}

const READ_CHUNK = 64 * 1024;

// O_NONBLOCK keeps a FIFO (or a device) from hanging the open itself, where no signal handler
// runs; the fstat of the opened file then refuses it. On a regular file the flag changes nothing.
// O_NOFOLLOW makes a symlink fail the open: no gap between a check and the open.
function openFlags(rules: SmallFileRules): number {
  return fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | (rules.noFollow ? fsConstants.O_NOFOLLOW : 0);
}

function openError(file: string, rules: SmallFileRules, cause: unknown): HandoffError {
  const code = (cause as NodeJS.ErrnoException).code;
  // Linux and macOS say ELOOP when O_NOFOLLOW meets a symlink, FreeBSD says EMLINK.
  const why =
    rules.noFollow && (code === 'ELOOP' || code === 'EMLINK')
      ? 'is a symlink; refusing it'
      : code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES'
          ? 'cannot be opened (permission denied)'
          : `cannot be opened (${code ?? 'unknown error'})`;
  return new HandoffError(rules.code, `${rules.label} ${why}`, { cause });
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a plain file';
}

/** The checks on the opened file's own status (not on the path, which may have changed). */
function checkStat(st: Stats, rules: SmallFileRules): void {
  if (!st.isFile()) throw new HandoffError(rules.code, `${rules.label} is not a regular file (${kindOf(st)})`);
  if (rules.private && (st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    const who = (st.mode & 0o044) !== 0 ? 'others can read it' : 'others can write it';
    throw new HandoffError(rules.code, `${rules.label} has mode ${mode}; ${who} (run chmod 600)`);
  }
  if (st.size > rules.maxBytes) throw tooLarge(rules);
}

function tooLarge(rules: SmallFileRules): HandoffError {
  const limit = rules.maxBytes % 1024 === 0 ? `${rules.maxBytes / 1024} KiB` : `${rules.maxBytes} bytes`;
  return new HandoffError(rules.code, `${rules.label} is larger than ${limit}; is it the right file?`);
}

/**
 * Reads a small file safely, as every config, token and key file is read: opened without
 * following a symlink (when asked) and without blocking, then refused unless the opened file is a
 * regular file, private (when asked) and at most `maxBytes` long. Never puts the content in a
 * message.
 * @throws HandoffError `rules.code` naming the file and what is wrong.
 */
export function readSmallFileSync(file: string, rules: SmallFileRules & { missingOk?: false }): SmallFile;
export function readSmallFileSync(file: string, rules: SmallFileRules): SmallFile | undefined;
export function readSmallFileSync(file: string, rules: SmallFileRules): SmallFile | undefined {
  let fd: number;
  try {
    fd = openSync(file, openFlags(rules));
  } catch (cause) {
    if (rules.missingOk && (cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw openError(file, rules, cause);
  }
  try {
    const stat = fstatSync(fd);
    checkStat(stat, rules);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.alloc(READ_CHUNK);
      const bytesRead = readSync(fd, chunk, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > rules.maxBytes) throw tooLarge(rules);
      chunks.push(chunk.subarray(0, bytesRead));
    }
    return { bytes: Buffer.concat(chunks, total), stat };
  } catch (cause) {
    if (cause instanceof HandoffError) throw cause;
    throw new HandoffError(rules.code, `${rules.label} cannot be read (${(cause as NodeJS.ErrnoException).code ?? 'unknown error'})`, { cause });
  } finally {
    closeSync(fd);
  }
}

/**
 * `readSmallFileSync` for async callers. One implementation: these files are a few kilobytes,
 * read at start or at a config reload, and the non-blocking open means not even a FIFO can hold
 * the event loop.
 */
export async function readSmallFile(file: string, rules: SmallFileRules & { missingOk?: false }): Promise<SmallFile>;
export async function readSmallFile(file: string, rules: SmallFileRules): Promise<SmallFile | undefined>;
export async function readSmallFile(file: string, rules: SmallFileRules): Promise<SmallFile | undefined> {
  return readSmallFileSync(file, rules);
}

/** Splits key file text into secrets: one per line, the final newline ignored. */
export function parseKeyText(text: string, where: string): { secrets: Buffer[]; warnings: string[] } {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  if (body.length === 0) throw new HandoffError('KEY_FILE', `${where}: key file is empty`);
  if (body.includes('\r')) throw new HandoffError('KEY_FILE', `${where}: contains a carriage return (CRLF line ends?); save it with LF line ends`);
  const warnings: string[] = [];
  const secrets = body.split('\n').map((line, i) => {
    const secret = Buffer.from(line, 'utf8');
    const label = `${where} line ${i + 1}`;
    if (secret.length === 0) throw new HandoffError('KEY_FILE', `${label}: empty secret`);
    if (secret.length < MIN_SECRET_BYTES) {
      throw new HandoffError('KEY_FILE', `${label}: secret is ${secret.length} bytes; at least ${MIN_SECRET_BYTES} required`);
    }
    if (secret.length < RECOMMENDED_SECRET_BYTES) {
      warnings.push(`${label}: secret is ${secret.length} bytes; ${RECOMMENDED_SECRET_BYTES} or more recommended`);
    }
    return secret;
  });
  return { secrets, warnings };
}

/**
 * Reads one key file with the safety checks of §3.3.
 * @throws HandoffError KEY_FILE (missing, symlink, not a regular file, mode & 0o077, over 64 KiB,
 *   not UTF-8, CR, empty, short).
 */
export async function readKeyFile(file: string): Promise<{ secrets: Buffer[]; warnings: string[] }> {
  const { bytes } = await readSmallFile(file, { label: file, code: 'KEY_FILE', maxBytes: MAX_KEY_FILE_BYTES, noFollow: true, private: true });
  return parseKeyText(decodeKeyBytes(bytes, file), file);
}

class MapKeyRing implements KeyRing {
  constructor(
    private readonly map: ReadonlyMap<string, readonly Buffer[]>,
    readonly warnings: readonly string[] = [],
  ) {}

  secretsFor(peer: string): readonly Buffer[] | undefined {
    return this.map.get(peer);
  }

  peers(): string[] {
    return [...this.map.keys()].sort();
  }
}

/** A key ring from secrets held in memory (tests, the demo, library callers). */
export function keyRingFromSecrets(secrets: Record<string, ReadonlyArray<string | Uint8Array>>): KeyRing {
  const map = new Map<string, Buffer[]>();
  for (const [peer, list] of Object.entries(secrets)) {
    if (list.length === 0) throw new HandoffError('KEY_FILE', `no secret for peer ${peer}`);
    map.set(peer, list.map((s) => (typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s))));
  }
  return new MapKeyRing(map);
}

/**
 * Loads the key files of `peers` from `dir` (all `voice-handoff-*.key` files when omitted), so that
 * a bad key file stops the program at start rather than at the first handoff.
 * @throws HandoffError KEY_FILE for any unusable file or a missing directory.
 */
export async function loadKeyRing(dir: string, peers?: readonly string[]): Promise<KeyRing> {
  let names = peers ? [...peers] : undefined;
  if (!names) {
    let entries: string[];
    try {
      entries = await fs.readdir(dir);
    } catch (cause) {
      throw new HandoffError('KEY_FILE', `cannot read key directory ${dir}`, { cause });
    }
    names = entries
      .filter((f) => f.startsWith(KEY_PREFIX) && f.endsWith(KEY_SUFFIX))
      .map((f) => f.slice(KEY_PREFIX.length, -KEY_SUFFIX.length))
      .filter((peer) => AGENT_NAME_RE.test(peer));
  }
  const map = new Map<string, Buffer[]>();
  const warnings: string[] = [];
  for (const peer of names) {
    const loaded = await readKeyFile(keyFilePath(dir, peer));
    map.set(peer, loaded.secrets);
    warnings.push(...loaded.warnings);
  }
  return new MapKeyRing(map, warnings);
}

/** A new random secret: 32 random bytes as base64url text (43 ASCII characters). */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Writes a key file with mode 0600, durably, refusing to overwrite an existing one.
 * @throws HandoffError KEY_FILE when the file exists or the secret is unusable; IO on write errors.
 */
export async function writeKeyFile(file: string, secretText: string): Promise<void> {
  parseKeyText(secretText, 'new secret');
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new HandoffError('KEY_FILE', `${file} already exists; refusing to overwrite it`, { cause });
    throw new HandoffError('IO', `cannot create ${file} (${code})`, { cause });
  }
  try {
    await handle.writeFile(secretText.endsWith('\n') ? secretText : `${secretText}\n`);
    await handle.sync();
  } catch (cause) {
    throw new HandoffError('IO', `cannot write ${file}`, { cause });
  } finally {
    await handle.close();
  }
  const dirHandle = await fs.open(path.dirname(file), fsConstants.O_RDONLY);
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
