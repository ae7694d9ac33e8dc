/**
 * Prometheus metrics of one listener, in a registry of its own (never prom-client's global one,
 * so two listeners in one process, as in tests, do not collide), and the small app that serves
 * them. The hub measures start → accept; the listener measures what only it sees:
 *
 *   accept → dial    from the claim's `accepted_at` (journaled, so a delivery resumed after a
 *                    restart counts its real delay) to Twilio acknowledging the call's creation
 *   dial → answer    from that acknowledgment to this process first seeing the call in progress;
 *                    only for calls this process run dialed and saw answered
 *
 * Label values are bounded: `how` is one of four words, and an outcome or error code is kept only
 * when it looks like a code (`no_answer`, `SIGNATURE`, `claim_lost:FENCED`); anything else is
 * counted as `other`, so a free-text value can neither blow up the series count nor carry a phone
 * number or transcript text into the metrics.
 *
 * Not re-exported by index.ts: prom-client takes tens of milliseconds to load, and only
 * `handoff listen --metrics-listen` needs it.
 */
import { Hono } from 'hono';
import { Counter, Histogram, Registry } from 'prom-client';

const LABEL_RE = /^[A-Za-z0-9_:]{1,40}$/;

/** How a delivery ended, as the listener reports it. */
export type DeliveryEnd = 'completed' | 'rejected' | 'refused' | 'skipped';

export interface ListenerMetrics {
  readonly registry: Registry;
  observeAcceptToDial(ms: number): void;
  observeDialToAnswer(ms: number): void;
  recordDelivery(how: DeliveryEnd, outcome: string): void;
  recordError(code: string): void;
}

/** A label value as it may be exported: itself when it looks like a code, else `other`. */
export function boundedLabel(value: string): string {
  return LABEL_RE.test(value) ? value : 'other';
}

/** Creates the listener's metrics in `registry` (default: a fresh one). */
export function createListenerMetrics(registry = new Registry()): ListenerMetrics {
  const acceptToDial = new Histogram({
    name: 'handoff_listener_accept_to_dial_seconds',
    help: 'Time from accepting a handoff (journaled accepted_at) to Twilio acknowledging the call',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30],
    registers: [registry],
  });
  const dialToAnswer = new Histogram({
    name: 'handoff_listener_dial_to_answer_seconds',
    help: 'Time from Twilio acknowledging a call this listener placed to the listener seeing it answered (or, for a short call, its end less its duration)',
    buckets: [1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120],
    registers: [registry],
  });
  const deliveries = new Counter({
    name: 'handoff_listener_deliveries_total',
    help: 'Handoffs this listener finished with, by how (completed, rejected, refused, skipped) and outcome',
    labelNames: ['how', 'outcome'] as const,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'handoff_listener_delivery_errors_total',
    help: 'Delivery attempts that failed and will be tried again, by error code',
    labelNames: ['code'] as const,
    registers: [registry],
  });
  // A clock step or a callback that beats the create response can make a span negative; it is
  // counted as zero rather than dragging the sum below what any real span could be.
  const seconds = (ms: number) => Math.max(0, ms) / 1000;
  return {
    registry,
    observeAcceptToDial(ms) {
      acceptToDial.observe(seconds(ms));
    },
    observeDialToAnswer(ms) {
      dialToAnswer.observe(seconds(ms));
    },
    recordDelivery(how, outcome) {
      deliveries.inc({ how, outcome: boundedLabel(outcome) });
    },
    recordError(code) {
      errors.inc({ code: boundedLabel(code) });
    },
  };
}

/** `GET /metrics` in Prometheus text format; every other path is 404. */
export function createMetricsApp(registry: Registry): Hono {
  const app = new Hono();
  app.get('/metrics', async (c) => c.body(await registry.metrics(), 200, { 'content-type': registry.contentType }));
  return app;
}
