/**
 * A tiny stand-in for the Twilio REST API on 127.0.0.1, for the paths Prism cannot produce:
 * errors (429/20429, 21610, 21211, 5xx), hanging requests, and recording exactly what arrived.
 * Replies are scripted as a queue; when it is empty, each request gets the success answer of its
 * route (201 for creates, 200 otherwise).
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TestContext } from 'node:test';

export interface StubReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Never answer (the client's timeout must fire). */
  hang?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** Form fields in arrival order; a repeated key appears once per value. */
  form: Array<[string, string]>;
}

export interface TwilioStub {
  baseUrl: string;
  requests: RecordedRequest[];
  /** Queues replies for the next requests, in order. */
  reply(...replies: StubReply[]): void;
}

/** A Twilio error body as the API sends it. */
export function twilioError(status: number, code: number, message: string): StubReply {
  return { status, body: { code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status } };
}

let sidCounter = 0;
function fakeSid(prefix: string): string {
  sidCounter += 1;
  return `${prefix}${String(sidCounter).padStart(32, '0')}`;
}

function successFor(method: string, path: string, form: Array<[string, string]>): StubReply {
  const field = (name: string): string | undefined => form.find(([k]) => k === name)?.[1];
  if (method === 'POST' && path.endsWith('/Calls.json')) {
    return { status: 201, body: { sid: fakeSid('CA'), status: 'queued', to: field('To'), from: field('From') } };
  }
  if (method === 'POST' && path.endsWith('/Messages.json')) {
    return { status: 201, body: { sid: fakeSid('SM'), status: 'queued' } };
  }
  const callSid = /\/Calls\/(CA[0-9a-zA-Z]{32})\.json$/.exec(path)?.[1];
  if (callSid !== undefined) {
    const status = method === 'POST' ? (field('Status') ?? 'completed') : 'completed';
    return { status: 200, body: { sid: callSid, status, answered_by: 'human', duration: '42' } };
  }
  return { status: 404, body: { code: 20404, message: 'not found', status: 404 } };
}

/** Starts the stub on 127.0.0.1:0 and closes it (and any hanging connection) when `t` ends. */
export async function startTwilioStub(t: TestContext): Promise<TwilioStub> {
  const queue: StubReply[] = [];
  const requests: RecordedRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://stub').pathname;
      const form = [...new URLSearchParams(Buffer.concat(chunks).toString('utf8'))];
      const method = req.method ?? 'GET';
      requests.push({ method, path, form });
      const reply = queue.shift() ?? successFor(method, path, form);
      if (reply.hang === true) return;
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('stub has no port');
  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    requests,
    reply: (...replies) => {
      queue.push(...replies);
    },
  };
}

/** A clock that only moves when something sleeps on it, recording every requested wait. */
export function fakeTime(startMs = 1_700_000_000_000): {
  clock: () => number;
  sleep: (ms: number) => Promise<void>;
  sleeps: number[];
  advance: (ms: number) => void;
} {
  let now = startMs;
  const sleeps: number[] = [];
  return {
    clock: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
    advance: (ms: number) => {
      now += ms;
    },
  };
}
