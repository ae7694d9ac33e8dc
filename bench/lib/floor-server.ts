/**
 * The HTTP floor's server: the hub's own stack (hono on @hono/node-server) answering the four
 * requests of a lifecycle with replies of the hub's sizes, and doing nothing else: no auth, no
 * validation, no spool, no log. Prints its URL, like the hub, and serves until killed.
 *
 * With `--storage DIR` it also makes the durable steps of the hub's spool in its handlers
 * (bench/lib/floor-storage.ts, in DIR), with the audit lines unless `--no-audit`: the HTTP +
 * storage floor. Its client names the id and the target in the query, so that nothing is parsed,
 * and the poll answers with the bytes the start stored, kept in memory per target as the hub's
 * pending index keeps them. `GET /stats` then answers the fsyncs made so far.
 */
import { parseArgs } from 'node:util';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { openFloorStorage } from './floor-storage.js';

const { values } = parseArgs({ options: { storage: { type: 'string' }, 'no-audit': { type: 'boolean', default: false } }, strict: true });
const storage = values.storage === undefined ? undefined : await openFloorStorage(values.storage, { audit: !values['no-audit'] });
/** Per target: the payloads stored and not yet polled, oldest first. */
const pending = new Map<string, string[]>();

const POLL_REPLY = `{"handoffs":[${JSON.stringify({ text: 'x'.repeat(1300) })}]}`;
const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' };

/** The query parameter `name`, which the HTTP + storage floor's client always sends. */
function required(value: string | undefined, name: string): string {
  if (value === undefined) throw new Error(`floor server: no ${name} in the query`);
  return value;
}

const app = new Hono();
app.post('/api/v1/handoffs/start', async (c) => {
  const body = Buffer.from(await c.req.arrayBuffer());
  let id = 'floor';
  if (storage) {
    id = required(c.req.query('id'), 'id');
    const to = required(c.req.query('to'), 'to');
    await storage.put(id, body);
    const queue = pending.get(to) ?? [];
    queue.push(body.toString('utf8'));
    pending.set(to, queue);
  }
  return c.json({ status: 'pending', handoff_id: id, expires_at: '2026-01-01T00:00:00Z' }, 201);
});
app.get('/stats', (c) => c.json({ fsyncs: storage?.fsyncs() ?? 0 }));
app.get('/api/v1/handoffs/poll', (c) => {
  if (!storage) return c.body(POLL_REPLY, 200, JSON_TYPE);
  const payload = pending.get(required(c.req.query('agent'), 'agent'))?.shift();
  if (payload === undefined) return c.body(null, 204);
  storage.delivered();
  return c.body(`{"handoffs":[${payload}]}`, 200, JSON_TYPE);
});
app.post('/api/v1/handoffs/:id/accept', async (c) => {
  await c.req.arrayBuffer();
  if (storage) await storage.claim(c.req.param('id'));
  return c.json({ handoff_id: c.req.param('id'), status: 'claimed', claim_token: 't'.repeat(43), lease_until: '2026-01-01T00:15:00.000Z' });
});
app.post('/api/v1/handoffs/:id/complete', async (c) => {
  await c.req.arrayBuffer();
  if (storage) await storage.complete(c.req.param('id'));
  return c.json({ handoff_id: c.req.param('id'), status: 'archived', outcome: 'connected', completed_at: '2026-01-01T00:00:01.000Z' });
});

serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
  process.stdout.write(`listening on http://127.0.0.1:${info.port}\n`);
});
