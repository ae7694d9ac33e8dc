/**
 * `handoff doctor`: checks everything a listener or initiator needs and says exactly what to fix.
 * Each check is independent, so one problem does not hide the next. No network call to Twilio
 * unless `--online` is given; the hub is contacted when one is configured (that is its point).
 */
import { constants as fsConstants } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { request } from 'undici';
import { assertDialTarget, assertPrivateDir, hubEndpoint } from '../../agent-listener/index.js';
import { AGENT_NAME_RE, E164_RE, readKeyFile, toHandoffError } from '../../protocol/index.js';
import { readSecret, resolveConfig, stateDirOf, type ResolvedConfig } from '../config.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Check {
  check: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

/** Clock skew beyond this is reported: expiry is judged by each side's own clock. */
const MAX_SKEW_MS = 2000;

/** Why `dir` cannot be used (undefined when it can); a missing one must be creatable. */
async function writableDir(dir: string): Promise<string | undefined> {
  let probe = path.resolve(dir);
  // Look at the nearest existing ancestor: doctor checks, it does not create.
  for (;;) {
    try {
      const st = await stat(probe);
      if (!st.isDirectory()) return `${probe} is not a directory`;
      await access(probe, fsConstants.W_OK);
      return undefined;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') return code ?? String(err);
      const parent = path.dirname(probe);
      if (parent === probe) return 'no existing ancestor';
      probe = parent;
    }
  }
}

async function keyChecks(cfg: ResolvedConfig): Promise<Check[]> {
  const dir = cfg.config.keysDir;
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /^voice-handoff-.+\.key$/.test(n)).sort();
  } catch {
    return [{ check: 'key files', status: 'fail', detail: `cannot read ${dir}`, fix: `mkdir -m 700 ${dir}, then handoff keys gen --peer NAME --keys ${dir}` }];
  }
  if (names.length === 0) {
    return [{ check: 'key files', status: 'fail', detail: `no voice-handoff-<peer>.key in ${dir}`, fix: `handoff keys gen --peer NAME --keys ${dir} (and the same secret on the peer's side)` }];
  }
  const out: Check[] = [];
  for (const name of names) {
    const peer = name.slice('voice-handoff-'.length, -'.key'.length);
    const file = path.join(dir, name);
    if (!AGENT_NAME_RE.test(peer)) {
      out.push({ check: `key ${peer}`, status: 'warn', detail: `${file}: "${peer}" is not a valid agent name and is ignored` });
      continue;
    }
    try {
      const { secrets, warnings } = await readKeyFile(file);
      out.push(
        warnings.length
          ? { check: `key ${peer}`, status: 'warn', detail: warnings.join('; '), fix: `rotate to a longer secret: handoff keys gen on a new line, both sides` }
          : { check: `key ${peer}`, status: 'ok', detail: `${secrets.length} secret(s), mode 0600` },
      );
    } catch (err) {
      const e = toHandoffError(err);
      const fix = /mode/.test(e.message) ? `chmod 600 ${file}` : /symlink/.test(e.message) ? `replace the symlink ${file} by the file itself` : `handoff keys gen --peer ${peer} --keys ${dir}`;
      out.push({ check: `key ${peer}`, status: 'fail', detail: e.message, fix });
    }
  }
  return out;
}

async function hubChecks(cfg: ResolvedConfig, env: NodeJS.ProcessEnv): Promise<Check[]> {
  const c = cfg.config;
  if (!c.hubUrl) return [{ check: 'hub', status: 'skip', detail: c.spool ? `local mode on ${c.spool}` : 'no hub configured' }];
  const out: Check[] = [];
  const started = Date.now();
  let health;
  try {
    health = await request(hubEndpoint(new URL(c.hubUrl), '/healthz'), { headersTimeout: 5000, bodyTimeout: 5000 });
    await health.body.text();
  } catch (err) {
    return [{ check: 'hub reachable', status: 'fail', detail: `${c.hubUrl}: ${(err as Error).message}`, fix: 'is the hub running (handoff hub serve) and the URL right?' }];
  }
  const rttMs = Date.now() - started;
  out.push(health.statusCode === 200 ? { check: 'hub reachable', status: 'ok', detail: `${c.hubUrl} answered in ${rttMs} ms` } : { check: 'hub reachable', status: 'fail', detail: `/healthz answered ${health.statusCode}` });
  const date = health.headers.date;
  if (typeof date === 'string') {
    const skew = Date.parse(date) - (started + Date.now()) / 2;
    // The Date header has one-second resolution; only a skew well beyond that is meaningful.
    out.push(
      Math.abs(skew) > MAX_SKEW_MS + 1000
        ? { check: 'clock skew', status: 'warn', detail: `this clock is ${Math.round(-skew / 1000)} s off the hub's`, fix: 'enable NTP (timedatectl set-ntp true): expiry is judged by each clock' }
        : { check: 'clock skew', status: 'ok', detail: 'within 2 s of the hub (1 s resolution)' },
    );
  }
  let token: string;
  try {
    token = readSecret('hub token (HANDOFF_TOKEN or hub.token_file)', env.HANDOFF_TOKEN, c.tokenFile);
  } catch (err) {
    out.push({ check: 'hub token', status: 'fail', detail: toHandoffError(err).message, fix: 'handoff hub add-agent NAME on the hub, then put the token in a 0600 file named by hub.token_file' });
    return out;
  }
  if (!c.agent) return out;
  try {
    // whoami, not a poll: a poll would hand over (and audit) the agent's pending payloads.
    const res = await request(hubEndpoint(new URL(c.hubUrl), '/api/v1/whoami'), { headers: { authorization: `Bearer ${token}` }, headersTimeout: 5000, bodyTimeout: 5000 });
    const body = await res.body.text();
    let owner: unknown;
    try {
      owner = (JSON.parse(body) as { agent?: unknown }).agent;
    } catch {
      owner = undefined;
    }
    const renew = `handoff hub add-agent ${c.agent} on the hub and use the new token`;
    out.push(
      // Past the token check (401 comes first), an older hub has no such route.
      res.statusCode === 404
        ? { check: 'hub token', status: 'warn', detail: 'accepted, but this hub is older than /api/v1/whoami: whose token it is was not checked', fix: 'upgrade the hub' }
        : res.statusCode !== 200 || typeof owner !== 'string'
        ? { check: 'hub token', status: 'fail', detail: `the hub answered ${res.statusCode}${res.statusCode === 401 ? ' (an unknown token)' : ''}`, fix: renew }
        : owner === c.agent
          ? { check: 'hub token', status: 'ok', detail: `accepted for ${c.agent}` }
          : { check: 'hub token', status: 'fail', detail: `the token belongs to another agent (${owner}) than ${c.agent}`, fix: `use ${c.agent}'s token` },
    );
  } catch (err) {
    out.push({ check: 'hub token', status: 'fail', detail: (err as Error).message });
  }
  return out;
}

async function dirChecks(cfg: ResolvedConfig): Promise<Check[]> {
  const c = cfg.config;
  const out: Check[] = [];
  const dirs: Array<[string, string | undefined, string]> = [
    ['bootstrap dir', c.bootstrapDir, 'set bootstrap_dir to <voice server state dir>/handoffs'],
    ['state dir', c.agent ? stateDirOf(c, c.agent) : c.stateDir, 'set state_dir'],
    ['spool', c.spool, ''],
  ];
  for (const [check, dir, fix] of dirs) {
    if (!dir) {
      if (check === 'bootstrap dir') out.push({ check, status: 'warn', detail: 'not configured (needed by handoff listen)', fix });
      continue;
    }
    const problem = await writableDir(dir);
    if (problem) {
      out.push({ check, status: 'fail', detail: `${dir} is not writable (${problem})`, fix: `mkdir -p ${dir} && chown $USER ${dir}` });
      continue;
    }
    const open = check === 'spool' ? undefined : await assertPrivateDir(dir, check).then(() => undefined, (err: unknown) => toHandoffError(err).message);
    out.push(open ? { check, status: 'fail', detail: open, fix: `chmod o-w ${dir}` } : { check, status: 'ok', detail: dir });
  }
  return out;
}

async function twilioChecks(cfg: ResolvedConfig, env: NodeJS.ProcessEnv, online: boolean): Promise<Check[]> {
  const c = cfg.config;
  const out: Check[] = [];
  if (c.dialer === 'dry-run') return [{ check: 'dialer', status: 'warn', detail: 'dry-run: calls are printed, never placed', fix: 'remove "dialer": "dry-run" to call for real' }];
  if (!c.twilioAccountSid) {
    out.push({ check: 'twilio account', status: 'warn', detail: 'no TWILIO_ACCOUNT_SID / twilio.account_sid: the listener will use the dry-run dialer', fix: 'set twilio.account_sid (AC…) and twilio.auth_token_file' });
    return out;
  }
  out.push({ check: 'twilio account', status: 'ok', detail: `${c.twilioAccountSid.slice(0, 6)}… (format ok)` });
  let authToken: string | undefined;
  try {
    authToken = readSecret('Twilio auth token (TWILIO_AUTH_TOKEN or twilio.auth_token_file)', env.TWILIO_AUTH_TOKEN, c.twilioAuthTokenFile);
    out.push(/^[0-9a-f]{32}$/.test(authToken) ? { check: 'twilio auth token', status: 'ok', detail: 'present (32 hex characters)' } : { check: 'twilio auth token', status: 'warn', detail: 'present, but not 32 hex characters as Twilio issues them' });
  } catch (err) {
    out.push({ check: 'twilio auth token', status: 'fail', detail: toHandoffError(err).message, fix: 'put the auth token in a 0600 file named by twilio.auth_token_file' });
  }
  out.push(
    c.fromNumber && E164_RE.test(c.fromNumber)
      ? { check: 'from number', status: 'ok', detail: `${c.fromNumber.slice(0, 3)}…${c.fromNumber.slice(-2)}` }
      : { check: 'from number', status: 'fail', detail: 'twilio.from_number is missing', fix: "set twilio.from_number to this agent's Twilio number (E.164)" },
  );
  const target = c.targetUrl;
  if (!target) out.push({ check: 'target', status: 'fail', detail: 'target.url is missing', fix: "set target.url to the voice server's wss://…/twilio stream (or https webhook with target.kind twiml-url)" });
  else {
    try {
      assertDialTarget({ kind: c.targetKind, url: target });
      const u = new URL(target);
      out.push({ check: 'target', status: 'ok', detail: `${c.targetKind} ${u.origin}${u.pathname}` });
    } catch (err) {
      out.push({ check: 'target', status: 'fail', detail: `${c.targetKind}: ${toHandoffError(err).message}`, fix: `${c.targetKind} needs ${c.targetKind === 'stream' ? 'a wss:// URL without a query' : 'an https:// URL'}` });
    }
  }
  if (c.webhookListen && !c.webhookPublicUrl) out.push({ check: 'webhook', status: 'fail', detail: 'webhook.listen without webhook.public_url', fix: 'set webhook.public_url to the https URL Twilio reaches' });
  if (online && authToken) {
    const base = c.twilioApiBaseUrl ?? 'https://api.twilio.com';
    try {
      const res = await request(new URL(`/2010-04-01/Accounts/${c.twilioAccountSid}.json`, base), {
        headers: { authorization: `Basic ${Buffer.from(`${c.twilioAccountSid}:${authToken}`).toString('base64')}` },
        headersTimeout: 8000,
      });
      await res.body.text();
      out.push(res.statusCode === 200 ? { check: 'twilio credentials', status: 'ok', detail: 'accepted by Twilio' } : { check: 'twilio credentials', status: 'fail', detail: `Twilio answered ${res.statusCode}`, fix: 'check the account SID and auth token in the Twilio console' });
    } catch (err) {
      out.push({ check: 'twilio credentials', status: 'fail', detail: (err as Error).message });
    }
  }
  return out;
}

/** Runs every check. */
export async function doctor(flags: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Promise<{ ok: boolean; checks: Check[] }> {
  let cfg: ResolvedConfig;
  try {
    cfg = resolveConfig({ flags, env, cwd: process.cwd(), configFile: flags.config as string | undefined });
  } catch (err) {
    const checks: Check[] = [{ check: 'configuration', status: 'fail', detail: toHandoffError(err).message, fix: 'fix the setting named above' }];
    return { ok: false, checks };
  }
  const checks: Check[] = [
    { check: 'configuration', status: 'ok', detail: cfg.file ? `read ${cfg.file}` : 'no config file; flags, environment and defaults' },
    cfg.config.agent ? { check: 'agent', status: 'ok', detail: cfg.config.agent } : { check: 'agent', status: 'fail', detail: 'no agent name', fix: 'set "agent" in the config file or HANDOFF_AGENT' },
  ];
  checks.push(...(await keyChecks(cfg)), ...(await hubChecks(cfg, env)), ...(await dirChecks(cfg)), ...(await twilioChecks(cfg, env, Boolean(flags.online))));
  return { ok: !checks.some((c) => c.status === 'fail'), checks };
}
