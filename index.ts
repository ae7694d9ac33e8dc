/**
 * handoff-relay's library API, for TypeScript voice servers: sign and start a handoff, wait for
 * its outcome, read the bootstrap file on the receiving side, verify a payload. The CLI is built
 * on the same pieces.
 */
import { HubClient, type HandoffView } from './agent-listener/index.js';
import { buildPayload, HandoffError, keyFilePath, readKeyFile, type BuildInput, type SignedPayload } from './protocol/index.js';

export { BOOTSTRAP_SOURCE, bootstrapPath, composeResumeContext, DEFAULT_RESUME_WINDOW_SEC, readBootstrap } from './agent-listener/index.js';
export type { BootstrapFile } from './agent-listener/index.js';
export { HubClient } from './agent-listener/index.js';
export type { AcceptResult, HandoffView, HubClientOptions, StartResult } from './agent-listener/index.js';
export {
  buildPayload,
  callerHash,
  canonicalJson,
  ERROR_CODES,
  HandoffError,
  keyRingFromSecrets,
  loadKeyRing,
  parsePayload,
  signPayload,
  verifyPayload,
} from './protocol/index.js';
export type { BuildInput, ErrorCode, KeyRing, ParsedPayload, SignedPayload, TranscriptEntry, VerifyResult } from './protocol/index.js';

export interface StartHandoffOptions extends BuildInput {
  /** The hub, e.g. `https://hub.example.com`. */
  hubUrl: string;
  /** This agent's hub token. */
  token: string;
  /** The pair secret shared with `to`; or `keysDir` to read `voice-handoff-<to>.key`. */
  secret?: string | Uint8Array;
  keysDir?: string;
  now?: number;
}

/**
 * Signs a handoff for `to` and submits it to the hub; resolves once the hub stored it durably.
 * @throws HandoffError SCHEMA (bad fields), KEY_FILE, UNAUTHORIZED, FORBIDDEN, ADDRESSING (unknown
 * target at the hub), CONFLICT, QUEUE_FULL, UNAVAILABLE, TIMEOUT.
 */
export async function startHandoff(opts: StartHandoffOptions): Promise<SignedPayload & { status: string }> {
  let secret = opts.secret;
  if (secret === undefined) {
    if (!opts.keysDir) throw new HandoffError('CONFIG', 'startHandoff needs secret or keysDir');
    secret = (await readKeyFile(keyFilePath(opts.keysDir, opts.to))).secrets[0];
  }
  const signed = buildPayload(opts, secret as Uint8Array | string, opts.now ?? Date.now());
  const client = new HubClient({ url: opts.hubUrl, token: opts.token, keepAlive: false });
  try {
    const r = await client.start(signed.text);
    return { ...signed, status: r.status };
  } finally {
    await client.close();
  }
}

/**
 * Waits until a handoff leaves `pending` (accepted, rejected or expired) or `timeoutSec` passes;
 * resolves with its state and relay facts.
 * @throws HandoffError NOT_FOUND, UNAUTHORIZED, FORBIDDEN, UNAVAILABLE, TIMEOUT.
 */
export async function waitForOutcome(opts: { hubUrl: string; token: string; handoffId: string; timeoutSec?: number }): Promise<HandoffView> {
  const client = new HubClient({ url: opts.hubUrl, token: opts.token });
  const deadline = Date.now() + (opts.timeoutSec ?? 60) * 1000;
  try {
    for (;;) {
      const left = Math.max(0, Math.min(25, Math.ceil((deadline - Date.now()) / 1000)));
      const view = await client.get(opts.handoffId, { waitSec: left, since: 'pending' });
      if (view.state !== 'pending' || left === 0) return view;
    }
  } finally {
    await client.close();
  }
}
