/**
 * The hub client's kept-alive transport: one undici `Agent` whose connections stay open between
 * requests. Only hub-client.ts imports this module, lazily (hub-transport.ts says why).
 */
import { Agent, request } from 'undici';
import type { Exchange, Reply, Transport } from './hub-transport.js';

export function keptAliveConnections(options: { keepAliveMs: number; connectTimeoutMs: number }): Transport {
  const agent = new Agent({ keepAliveTimeout: options.keepAliveMs, connect: { timeout: options.connectTimeoutMs } });
  return {
    async send(x: Exchange): Promise<Reply> {
      const res = await request(x.url, {
        method: x.method,
        headers: x.headers,
        body: x.body,
        dispatcher: agent,
        headersTimeout: x.timeoutMs,
        bodyTimeout: x.timeoutMs,
        signal: x.signal,
      });
      return { status: res.statusCode, text: await res.body.text() };
    },
    close: () => agent.close(),
  };
}
