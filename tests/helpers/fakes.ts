import { HandoffError } from '../../protocol/index.js';
import type { CallInfo, DialRequest, DialResult, Dialer, MessageRequest, MessageResult } from '../../agent-listener/dialer.js';
import type { ListenerEvent, Logger, WorkItem, WorkSource } from '../../agent-listener/listener.js';

/** An in-memory work source that records every transition. */
export class FakeSource implements WorkSource {
  readonly kind = 'hub' as const;
  pending = new Map<string, string>();
  claimed = new Map<string, string>();
  settled = new Map<string, { how: 'complete' | 'reject'; outcome: string; token?: string }>();
  renewals = 0;
  accepts = 0;
  closed = false;

  add(id: string, text: string): void {
    this.pending.set(id, text);
  }

  async next(signal: AbortSignal): Promise<WorkItem[]> {
    const items = [...this.pending].map(([id, text]) => ({ id, text }));
    if (items.length === 0) await new Promise((r) => setTimeout(r, 5));
    return signal.aborted ? [] : items;
  }

  async accept(id: string, token: string): Promise<{ token: string; leaseUntil: string }> {
    if (this.claimed.get(id) === token) return { token, leaseUntil: '2099-01-01T00:00:00Z' };
    if (!this.pending.has(id)) throw new HandoffError(this.claimed.has(id) ? 'ALREADY_CLAIMED' : 'NOT_FOUND', 'not pending');
    this.accepts++;
    this.pending.delete(id);
    this.claimed.set(id, token);
    return { token, leaseUntil: '2099-01-01T00:00:00Z' };
  }

  async renew(): Promise<{ leaseUntil: string }> {
    this.renewals++;
    return { leaseUntil: '2099-01-01T00:00:00Z' };
  }

  async complete(id: string, token: string, outcome: string): Promise<void> {
    if (this.settled.has(id)) throw new HandoffError('INVALID_STATE', 'already settled');
    if (this.claimed.get(id) !== token) throw new HandoffError('FENCED', 'wrong token');
    this.claimed.delete(id);
    this.settled.set(id, { how: 'complete', outcome, token });
  }

  async reject(id: string, reason: string, token?: string): Promise<void> {
    if (this.settled.has(id)) throw new HandoffError('INVALID_STATE', 'already settled');
    if (token === undefined) {
      if (!this.pending.delete(id)) throw new HandoffError('NOT_FOUND', 'not pending');
    } else if (this.claimed.get(id) !== token) throw new HandoffError('FENCED', 'wrong token');
    this.claimed.delete(id);
    this.settled.set(id, { how: 'reject', outcome: reason, token });
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A dialer that records requests and answers with scripted call outcomes. */
export class FakeDialer implements Dialer {
  dials: DialRequest[] = [];
  messages: MessageRequest[] = [];
  outcome: Omit<CallInfo, 'sid'> = { status: 'completed', answeredBy: 'human' };
  dialError: HandoffError | undefined;
  messageError: HandoffError | undefined;

  async dial(req: DialRequest): Promise<DialResult> {
    this.dials.push(req);
    if (this.dialError) throw this.dialError;
    return { sid: `CA${String(this.dials.length).padStart(32, '0')}`, status: 'queued' };
  }

  async sendMessage(req: MessageRequest): Promise<MessageResult> {
    this.messages.push(req);
    if (this.messageError) throw this.messageError;
    return { sid: `SM${String(this.messages.length).padStart(32, '0')}` };
  }

  async getCall(sid: string): Promise<CallInfo> {
    return { sid, ...this.outcome };
  }

  async endCall(sid: string): Promise<CallInfo> {
    return { sid, status: 'canceled' };
  }
}

/** A logger that keeps every line (as JSON) for assertions and leak scans. */
export function captureLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (level: string) => (obj: Record<string, unknown>, msg?: string) => lines.push(JSON.stringify({ level, ...obj, msg }));
  return { lines, info: log('info'), warn: log('warn'), error: log('error') };
}

/** Collects listener events. */
export function eventLog(): { events: ListenerEvent[]; onEvent: (e: ListenerEvent) => void } {
  const events: ListenerEvent[] = [];
  return { events, onEvent: (e) => events.push(e) };
}
