/**
 * How the hub client's requests travel (hub-client.ts chooses). Two transports with one shape:
 * - kept-alive connections through undici (`undici-transport.ts`), for a process that talks to the
 *   hub all day (the listener); imported on the client's first request;
 * - one `node:http` connection per request, closed after the reply (below), for a process that
 *   makes a request or two and exits (`handoff start`, spawned while a caller waits): loading
 *   undici and compiling its WebAssembly HTTP parser cost such a process more than the request
 *   itself (bench/README.md has the numbers).
 * Errors come out as the libraries throw them; the client maps them to HandoffError codes.
 */

/** One request, with everything the transport needs to bound it. */
export interface Exchange {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** For undici's own timers (node:http has none to set); `signal` carries the exact deadline. */
  timeoutMs: number;
  signal: AbortSignal;
}

export interface Reply {
  status: number;
  text: string;
}

export interface Transport {
  send(exchange: Exchange): Promise<Reply>;
  /** Lets go of any connection kept open. */
  close(): Promise<void>;
}

const UTF8 = new TextDecoder();

/** One request on a connection of its own; nothing stays open between requests. */
export const connectionPerRequest: Transport = {
  async send(x) {
    const url = new URL(x.url);
    const { request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
    const headers: Record<string, string> = { ...x.headers, connection: 'close' };
    if (x.method === 'POST') headers['content-length'] = String(x.body === undefined ? 0 : Buffer.byteLength(x.body));
    return new Promise<Reply>((resolve, reject) => {
      const req = request(url, { method: x.method, headers, agent: false, signal: x.signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        // A reply cut short ends in 'error' ("aborted"), never in 'end'.
        res.on('error', reject);
        // Decoded as undici's `text()` does (a leading BOM dropped), so both transports read alike.
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: UTF8.decode(Buffer.concat(chunks)) }));
      });
      req.on('error', reject);
      req.end(x.body);
    });
  },
  async close() {},
};
