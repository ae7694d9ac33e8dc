/**
 * The listener's endpoint for Twilio call status callbacks: a small Hono app, served by
 * @hono/node-server in the listener (tested here without a socket through `app.request`).
 *
 * Twilio signs `X-Twilio-Signature` over the URL it called (the status callback URL we gave it,
 * query included) and the form parameters. Behind a TLS-terminating proxy the request reaches us
 * as http://127.0.0.1:…/…, which is not what was signed, so the URL checked is always the
 * configured PUBLIC URL plus the query string of the request; the internal URL is never used.
 * The status callback URL is `<public URL>?handoff_id=<id>` (`statusCallbackUrl`), which is how an
 * event finds its handoff.
 *
 * Replies: 204 for an accepted event; 403 for a missing or wrong signature (checked before the
 * request is interpreted in any other way); 415 for a signed body that is not form-encoded; 400
 * for a signed but unusable event; 413 over the size limit; 500 when the event handler fails.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HandoffError, isSafeId } from '../protocol/index.js';
import { isAnsweredBy, isCallStatus } from './dialer.js';
import type { AnsweredBy, CallStatus, SignatureValidator } from './dialer.js';

/** One call progress report from Twilio. */
export interface CallStatusEvent {
  handoffId: string;
  callSid: string;
  callStatus: CallStatus;
  answeredBy?: AnsweredBy;
  durationSec?: number;
  /** Twilio's order of the callbacks of one call; events can arrive out of order. */
  sequenceNumber?: number;
}

/** The subset of a pino logger the webhook uses. */
export interface WebhookLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface CallWebhookOptions {
  /** The endpoint's public URL as Twilio reaches it (https://host/path), without a query. */
  publicUrl: string;
  /** Route inside this app; default the public URL's path (a proxy that rewrites paths needs it). */
  path?: string;
  /** Usually `createTwilioSignatureValidator(authToken)` from twilio-dialer.ts. */
  validateSignature: SignatureValidator;
  onEvent: (event: CallStatusEvent) => void | Promise<void>;
  logger?: WebhookLogger;
  /** Default 64 KiB; Twilio's callbacks are a few hundred bytes. */
  maxBodyBytes?: number;
}

const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
const CALL_SID_RE = /^CA[0-9a-zA-Z]{32}$/;

/** The status callback URL to give Twilio for one handoff. Throws CONFIG/INVALID_ID. */
export function statusCallbackUrl(publicUrl: string, handoffId: string): string {
  const base = checkPublicUrl(publicUrl);
  if (!isSafeId(handoffId)) throw new HandoffError('INVALID_ID', 'handoff id must match [A-Za-z0-9_-]{1,128}');
  return `${base}?handoff_id=${handoffId}`;
}

/** The Hono app that receives status callbacks (see the header comment). Throws CONFIG. */
export function createCallWebhookApp(options: CallWebhookOptions): Hono {
  const publicUrl = checkPublicUrl(options.publicUrl);
  const path = options.path ?? new URL(publicUrl).pathname;
  if (!path.startsWith('/')) throw new HandoffError('CONFIG', 'webhook path must start with /');
  if (typeof options.validateSignature !== 'function') throw new HandoffError('CONFIG', 'webhook needs a signature validator');
  if (typeof options.onEvent !== 'function') throw new HandoffError('CONFIG', 'webhook needs an event handler');
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const { validateSignature, onEvent, logger } = options;

  const app = new Hono();
  app.post(
    path,
    bodyLimit({ maxSize: maxBodyBytes, onError: (c) => c.text('request body too large', 413) }),
    async (c) => {
      const requestUrl = c.req.url;
      const queryStart = requestUrl.indexOf('?');
      const query = queryStart === -1 ? '' : requestUrl.slice(queryStart);
      const handoffParam = new URLSearchParams(query).get('handoff_id');
      const handoffId = isSafeId(handoffParam) ? handoffParam : undefined;

      const contentType = (c.req.header('content-type') ?? '').toLowerCase();
      const isForm = contentType.startsWith('application/x-www-form-urlencoded');
      const body = await c.req.text();
      const params = isForm ? formParams(body) : {};

      const signature = c.req.header('x-twilio-signature');
      if (signature === undefined || signature === '' || !validateSignature(signature, publicUrl + query, params)) {
        // A security event: logged with the handoff id only, never the parameters.
        logger?.warn({ handoff_id: handoffId, event: 'twilio_signature_rejected' }, 'status callback with a bad or missing signature');
        return c.text('invalid signature', 403);
      }
      if (!isForm) return c.text('expected application/x-www-form-urlencoded', 415);

      const event = parseEvent(params, handoffId);
      if (event === undefined) return c.text('unusable status callback', 400);
      try {
        await onEvent(event);
      } catch (err) {
        logger?.error(
          { handoff_id: event.handoffId, code: err instanceof HandoffError ? err.code : 'INTERNAL' },
          'status callback handler failed',
        );
        return c.text('handler failed', 500);
      }
      return c.body(null, 204);
    },
  );
  return app;
}

function checkPublicUrl(publicUrl: string): string {
  let parsed: URL;
  try {
    parsed = new URL(publicUrl);
  } catch (err) {
    throw new HandoffError('CONFIG', 'webhook public URL is not an absolute URL', { cause: err });
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new HandoffError('CONFIG', 'webhook public URL must be http(s)');
  }
  if (publicUrl.includes('?') || publicUrl.includes('#')) {
    throw new HandoffError('CONFIG', 'webhook public URL must not have a query string or fragment');
  }
  // Kept as written, not re-serialised: the signature is over the exact text Twilio was given.
  return publicUrl;
}

/** Form fields; a repeated key becomes an array, as the SDK's validator expects. */
function formParams(body: string): Record<string, string | string[]> {
  const params: Record<string, string | string[]> = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const existing = params[key];
    if (existing === undefined) params[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else params[key] = [existing, value];
  }
  return params;
}

function parseEvent(params: Record<string, string | string[]>, handoffId: string | undefined): CallStatusEvent | undefined {
  const callSid = params['CallSid'];
  const callStatus = params['CallStatus'];
  if (handoffId === undefined || typeof callSid !== 'string' || !CALL_SID_RE.test(callSid) || !isCallStatus(callStatus)) {
    return undefined;
  }
  const event: CallStatusEvent = { handoffId, callSid, callStatus };
  const answeredBy = params['AnsweredBy'];
  if (isAnsweredBy(answeredBy)) event.answeredBy = answeredBy;
  const duration = params['CallDuration'];
  if (typeof duration === 'string' && /^\d+$/.test(duration)) event.durationSec = Number(duration);
  const sequence = params['SequenceNumber'];
  if (typeof sequence === 'string' && /^\d+$/.test(sequence)) event.sequenceNumber = Number(sequence);
  return event;
}
