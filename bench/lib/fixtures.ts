/**
 * What every scenario needs: temp directories, agents with hub tokens, signed payloads with unique
 * ids, and an archive pre-filled with completed handoffs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { tokenSha256 } from '../../hub/index.js';
import { buildPayload, isoMillis, type SignedPayload, type TranscriptEntry } from '../../protocol/index.js';
import { bucketOf, encodeEnvelope } from '../../spool/index.js';

/** The pair secret every bench pair signs with (the hub never sees it). */
export const BENCH_SECRET = 'bench-pair-secret-0123456789abcdef0123456789abcdef';

/** A short but realistic conversation (the payload is about 1.3 KB). */
export const TRANSCRIPT: TranscriptEntry[] = [
  { role: 'user', text: 'Hi Bob, I need to move the weekly standup with Patrik to Thursdays.' },
  { role: 'assistant', text: 'I can note that, but Alice manages the calendar. Shall I hand you over to her?' },
  { role: 'user', text: 'Yes please, and tell her it should stay at 9:30 if possible.' },
  { role: 'assistant', text: 'Will do. Alice will call you back in a moment with the details.' },
];

/** A temp directory under os.tmpdir(); `cleanup()` removes everything made by this run. */
export async function benchDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `handoff-bench-${prefix}-`));
  createdDirs.push(dir);
  return dir;
}

const createdDirs: string[] = [];

/**
 * Removes every directory made with `benchDir`, in a detached `rm -rf` that outlives this process:
 * deleting an archive of 100,000 files takes seconds and measures nothing.
 */
export function cleanup(): void {
  const dirs = createdDirs.splice(0);
  if (dirs.length === 0) return;
  spawn('rm', ['-rf', '--', ...dirs], { detached: true, stdio: 'ignore' }).unref();
}

/** Agent names with fresh bearer tokens. */
export type Tokens = Map<string, string>;

/** Writes a hub config (mode 0600) for `agents` and returns their tokens. */
export async function writeHubConfig(file: string, agents: readonly string[]): Promise<Tokens> {
  const tokens: Tokens = new Map(agents.map((name) => [name, randomBytes(32).toString('base64url')]));
  const config = { agents: Object.fromEntries([...tokens].map(([name, token]) => [name, { token_sha256: tokenSha256(token) }])) };
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(config), { mode: 0o600 });
  await chmod(file, 0o600);
  return tokens;
}

/** Returns the token of `agent` or throws (a typo in a scenario, not a runtime condition). */
export function tokenOf(tokens: Tokens, agent: string): string {
  const token = tokens.get(agent);
  if (token === undefined) throw new Error(`bench: no token for ${agent}`);
  return token;
}

const RUN_PREFIX = randomBytes(4).toString('hex');
let counter = 0;

/** A caller hash no other handoff of this run has, so that every id is unique. */
export function uniqueCallerHash(): string {
  counter += 1;
  return `${RUN_PREFIX}${counter.toString(16).padStart(8, '0')}`;
}

/** A signed payload from `from` to `to` with a unique id, as `handoff start` builds it. */
export function signedPayload(from: string, to: string, options: { ttlSec?: number; nowMs?: number } = {}): SignedPayload {
  return buildPayload(
    {
      from,
      to,
      callerHash: uniqueCallerHash(),
      reason: 'scheduling_capability',
      transcript: TRANSCRIPT,
      resumeHint: "Bob passed me context about Patrik's standup — what cadence did you have in mind?",
      summary: 'Caller wants the weekly standup with Patrik moved to Thursdays at 9:30.',
      ttlSec: options.ttlSec ?? 60,
    },
    BENCH_SECRET,
    options.nowMs ?? Date.now(),
  );
}

const PLACEHOLDER_HASH = 'ffffffffffffffff';

/**
 * Signed payloads that differ only in their caller hash (and so their id), made by substituting
 * into one canonical text and computing each HMAC directly: about 20 times cheaper than building
 * each one, which matters for 100,000 of them. The first one is checked against `buildPayload`.
 */
function payloadFactory(nowMs: number): (hash: string) => string {
  const build = (hash: string): string =>
    buildPayload({ from: 'bob', to: 'alice', callerHash: hash, reason: 'scheduling_capability', transcript: TRANSCRIPT, ttlSec: 60 }, BENCH_SECRET, nowMs).text;
  const template = build(PLACEHOLDER_HASH);
  const hmacField = /"hmac":"[A-Za-z0-9+/=]+",/.exec(template)?.[0];
  if (hmacField === undefined) throw new Error('bench: no hmac field in a built payload');
  const at = template.indexOf(hmacField);
  const unsigned = template.slice(0, at) + template.slice(at + hmacField.length);
  const make = (hash: string): string => {
    // A hash has the placeholder's length, so the hmac field goes back exactly where it was.
    const canonical = unsigned.replaceAll(PLACEHOLDER_HASH, hash);
    const hmac = createHmac('sha256', BENCH_SECRET).update(canonical, 'utf8').digest('base64');
    return `${canonical.slice(0, at)}"hmac":"${hmac}",${canonical.slice(at)}`;
  };
  const probe = uniqueCallerHash();
  if (make(probe) !== build(probe)) throw new Error('bench: the payload template does not reproduce buildPayload');
  return make;
}

/**
 * Adds `count` completed handoffs to `<spoolDir>/archive/` in the spool's own envelope format,
 * written directly (no fsync: filling is not what is measured), then runs `sync` so that their
 * write-back does not compete with the measurements that follow.
 */
export async function prefillArchive(spoolDir: string, count: number): Promise<void> {
  const archive = path.join(spoolDir, 'archive');
  await mkdir(archive, { recursive: true, mode: 0o700 });
  // One mkdir per bucket, awaited by every writer into it (not only the first to see the bucket).
  const buckets = new Map<string, Promise<unknown>>();
  const nowMs = Date.now();
  const makePayload = payloadFactory(nowMs - 3_600_000);
  let next = 0;
  const writeOne = async (): Promise<void> => {
    while (next < count) {
      next += 1;
      const hash = uniqueCallerHash();
      const text = makePayload(hash);
      const id = `${Math.floor((nowMs - 3_600_000) / 1000)}-bob-alice-${hash}`;
      const bucket = bucketOf(id);
      const dir = path.join(archive, bucket);
      let made = buckets.get(bucket);
      if (made === undefined) {
        made = mkdir(dir, { recursive: true, mode: 0o700 });
        buckets.set(bucket, made);
      }
      await made;
      const at = isoMillis(nowMs - 3_500_000);
      const relay = {
        state: 'archived' as const,
        handoff_id: id,
        from_agent: 'bob',
        to_agent: 'alice',
        received_at: at,
        claimed_by: 'alice',
        claimed_at: at,
        lease_until: at,
        claim_token_sha256: '0'.repeat(64),
        completed_at: at,
        outcome: 'connected',
      };
      await writeFile(path.join(dir, `${id}.json`), encodeEnvelope(relay, text), { mode: 0o600 });
    }
  };
  await Promise.all(Array.from({ length: 32 }, writeOne));
  spawnSync('sync');
}
