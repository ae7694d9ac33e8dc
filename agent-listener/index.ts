/**
 * agent-listener/: the per-agent daemon — sources of work (hub long-poll, local spool), the
 * delivery state machine, its journal, the bootstrap file, call following and the dialers.
 * `twilio-dialer.ts` is deliberately not re-exported here: it is the only module that loads the
 * twilio SDK, and importing it only where a real dialer is built keeps every other command fast.
 * `metrics.ts` (prom-client) is left out for the same reason; only its types are exported.
 */

/** Writes and reads the gptme-voice bootstrap file; composes the resume context (IO, INVALID_ID). */
export { assertPrivateDir, BOOTSTRAP_SOURCE, bootstrapPath, buildBootstrap, composeResumeContext, DEFAULT_RESUME_WINDOW_SEC, readBootstrap, writeBootstrap, writeFileAtomic } from './bootstrap.js';
export type { BootstrapFile } from './bootstrap.js';

/** Follows calls by validated status callbacks, with polling as a safety net. */
export { CallEventHub } from './call-events.js';
export type { CallEventHubOptions } from './call-events.js';

/** Follows a call by polling until it ends (TIMEOUT when a maximum duration passes). */
export { followCallByPolling } from './call-follow.js';
export type { FinishedCall, FollowCallOptions } from './call-follow.js';

/** The Twilio status-callback endpoint, checking X-Twilio-Signature over the public URL. */
export { createCallWebhookApp, statusCallbackUrl } from './call-webhook.js';
export type { CallStatusEvent, CallWebhookOptions } from './call-webhook.js';

/** The telephony boundary (DIAL_FAILED, DIAL_UNCERTAIN, OPTED_OUT, UNAVAILABLE, TIMEOUT, CONFIG). */
export { callEnd, isFinalCallStatus } from './dialer.js';
export type { CallEnd, CallInfo, CallStatus, DialRequest, DialResult, DialTarget, Dialer, MessageRequest, SignatureValidator } from './dialer.js';

/** Prints what would be sent to Twilio and simulates an outcome; never the default with credentials. */
export { DryRunDialer } from './dry-run-dialer.js';

// Checks of a dial target's URL (the TwiML itself is built inside the dialers).
export { assertDialTarget } from './twiml.js';

/** HTTP client of the hub; errors come back as HandoffError by code (UNAVAILABLE, TIMEOUT, …). */
export { HubClient, hubEndpoint } from './hub-client.js';
export type { AcceptResult, HandoffView, HubClientOptions, HubHandoffState, StartResult } from './hub-client.js';

/** Hub mode: long-polls the hub for this agent's handoffs. */
export { HubSource } from './hub-source.js';

/** The listener loop and delivery state machine; `stop()` is idempotent. */
export { handoffIdOf, Listener, sleep } from './listener.js';
export type { CallFollower, ListenerEvent, ListenerOptions, Logger, TelephonyOptions, WorkItem, WorkSource } from './listener.js';

/** The listener's Prometheus metrics (types only; load `metrics.ts` with a dynamic import). */
export type { DeliveryEnd, ListenerMetrics } from './metrics.js';

/** Local mode: watches a shared spool, claims by rename (CONFIG on bad options). */
export { LocalSource } from './local-source.js';

/** Abortable sleep that rejects on abort (the `Sleep` contract of the dialer and follower). */
export { abortableSleep } from './pacer.js';
export type { Sleep } from './pacer.js';

/** The fallback SMS: GSM-7, one segment, names and reason only. */
export { composeFallbackSms } from './sms.js';

/** The listener's durable journal: replay set, delivery phases, opt-outs (IO). */
export { ListenerState } from './state.js';
export type { DeliveryJournal, DeliveryPhase } from './state.js';
