/**
 * The HTTP floor's server: the hub's own stack (hono on @hono/node-server) answering the four
 * requests of a lifecycle with replies of the hub's sizes, and doing nothing else: no auth, no
 * validation, no spool, no log. Prints its URL, like the hub, and serves until killed.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const POLL_REPLY = `{"handoffs":[${JSON.stringify({ text: 'x'.repeat(1300) })}]}`;

const app = new Hono();
app.post('/api/v1/handoffs/start', async (c) => {
  await c.req.arrayBuffer();
  return c.json({ status: 'pending', handoff_id: 'floor', expires_at: '2026-01-01T00:00:00Z' }, 201);
});
app.get('/api/v1/handoffs/poll', (c) => c.body(POLL_REPLY, 200, { 'content-type': 'application/json; charset=utf-8' }));
app.post('/api/v1/handoffs/:id/accept', async (c) => {
  await c.req.arrayBuffer();
  return c.json({ handoff_id: c.req.param('id'), status: 'claimed', claim_token: 't'.repeat(43), lease_until: '2026-01-01T00:15:00.000Z' });
});
app.post('/api/v1/handoffs/:id/complete', async (c) => {
  await c.req.arrayBuffer();
  return c.json({ handoff_id: c.req.param('id'), status: 'archived', outcome: 'connected', completed_at: '2026-01-01T00:00:01.000Z' });
});

serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
  process.stdout.write(`listening on http://127.0.0.1:${info.port}\n`);
});
