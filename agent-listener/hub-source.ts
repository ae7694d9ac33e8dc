/**
 * Hub mode: long-polls the hub for this agent's handoffs. Payload texts arrive byte for byte as
 * the initiator signed them, so verification sees exactly what was signed.
 */
import { HandoffError } from '../protocol/index.js';
import type { HubClient } from './hub-client.js';
import { handoffIdOf, type WorkItem, type WorkSource } from './listener.js';

export interface HubSourceOptions {
  client: HubClient;
  agent: string;
  /** Long-poll wait in seconds (the hub caps it at 30). */
  waitSec?: number;
}

export class HubSource implements WorkSource {
  readonly kind = 'hub' as const;
  private readonly waitSec: number;

  constructor(private readonly opts: HubSourceOptions) {
    this.waitSec = opts.waitSec ?? 25;
    if (!(this.waitSec >= 0 && this.waitSec <= 30)) throw new HandoffError('CONFIG', 'poll wait must be between 0 and 30 s');
  }

  async next(signal: AbortSignal): Promise<WorkItem[]> {
    const texts = await this.opts.client.poll(this.opts.agent, this.waitSec, { signal });
    const items: WorkItem[] = [];
    for (const text of texts) {
      const id = handoffIdOf(text);
      // The hub validated the structure; a payload without a readable id cannot be acted on.
      if (id !== undefined) items.push({ id, text });
    }
    return items;
  }

  async accept(id: string, token: string): Promise<{ token: string; leaseUntil: string }> {
    const r = await this.opts.client.accept(id, { claim_token: token });
    return { token: r.token, leaseUntil: r.lease_until };
  }

  async renew(id: string, token: string): Promise<{ leaseUntil: string }> {
    const r = await this.opts.client.renew(id, { claim_token: token });
    return { leaseUntil: r.lease_until ?? '' };
  }

  async complete(id: string, token: string, outcome: string, notes?: string): Promise<void> {
    await this.opts.client.complete(id, { outcome, notes, claim_token: token });
  }

  async reject(id: string, reason: string, token?: string): Promise<void> {
    await this.opts.client.reject(id, reason, token === undefined ? {} : { claim_token: token });
  }

  async close(): Promise<void> {
    await this.opts.client.close();
  }
}
