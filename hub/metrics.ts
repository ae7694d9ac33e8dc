/**
 * Prometheus metrics of one hub, in a registry of its own (never prom-client's global one, so two
 * hubs in one process, as in tests, do not collide).
 *
 * Label values are bounded: routes are the registered route patterns, states are the four state
 * names, and a reason is kept only when it is one of the reasons this project's own parts give;
 * any other (an agent chooses its reasons freely) is counted as `other`, so reasons can neither
 * blow up the series count nor carry personal data (`caller_15551234000`) into the metrics.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { VERIFY_CODES } from '../protocol/index.js';
import type { TransitionEvent } from '../spool/index.js';

/**
 * The spool's own reasons, a listener's refusals (the verify codes), its call and message ends,
 * and the outcomes of a completion (an archived transition's reason is its outcome).
 */
const KNOWN_REASONS: ReadonlySet<string> = new Set([
  ...['expired', 'lease_expired', 'recovered'],
  ...['connected', 'messaged', 'resolved'],
  ...VERIFY_CODES,
  ...['no_answer', 'busy', 'failed', 'canceled', 'machine', 'no_number', 'opted_out', 'dial_uncertain', 'dial_interrupted'],
  ...['message_failed', 'message_uncertain', 'message_interrupted'],
]);

export interface HubMetrics {
  readonly registry: Registry;
  recordTransition(event: TransitionEvent): void;
  observeRequest(route: string, method: string, status: number, seconds: number): void;
}

/** Creates the hub's metrics; `parked` and `watchers` are read at scrape time. */
export function createHubMetrics(sources: { parkedPolls: () => number; watchers: () => number }, registry = new Registry()): HubMetrics {
  const transitions = new Counter({
    name: 'handoff_hub_transitions_total',
    help: 'Durable handoff state transitions seen by this hub, by new state and reason',
    labelNames: ['state', 'reason'] as const,
    registers: [registry],
  });
  const requests = new Histogram({
    name: 'handoff_hub_request_duration_seconds',
    help: 'HTTP request latency by route, method and status (long-polls include their wait)',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const startToAccept = new Histogram({
    name: 'handoff_hub_start_to_accept_seconds',
    help: 'Time from a handoff reaching the hub to its target accepting it',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60],
    registers: [registry],
  });
  new Gauge({
    name: 'handoff_hub_parked_polls',
    help: 'Long-polls currently parked, waiting for a handoff',
    registers: [registry],
    collect() {
      this.set(sources.parkedPolls());
    },
  });
  new Gauge({
    name: 'handoff_hub_id_watchers',
    help: 'Requests currently waiting for a state change of one handoff',
    registers: [registry],
    collect() {
      this.set(sources.watchers());
    },
  });
  return {
    registry,
    recordTransition(event) {
      const reason = event.reason === undefined ? '' : KNOWN_REASONS.has(event.reason) ? event.reason : 'other';
      transitions.inc({ state: event.to, reason });
      if (event.to === 'claimed' && event.pendingMs !== undefined) startToAccept.observe(event.pendingMs / 1000);
    },
    observeRequest(route, method, status, seconds) {
      requests.observe({ route, method, status: String(status) }, seconds);
    },
  };
}
