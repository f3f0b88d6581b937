/**
 * The HTTP upstream's two clients refuse the same requests the same way: a CR or LF that a
 * hostile Mongrel2 put into a header value would otherwise let a client write a second
 * request into the upstream connection. The direct client (http://) checks the head it
 * builds; undici (here reached through an https:// server, as uploads and upgrades reach it)
 * refuses to write it. Both end in a 400 (M2GW_BAD_REQUEST), before any connection is made.
 * End to end through Mongrel2: test/integration/http-direct-client.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createHttpUpstream } from '../../../src/upstream/http/http-upstream.js';
import { DEFAULTS } from '../../../src/config/schema.js';
import { type HeaderList, type ResponseSink, type UpstreamRequest } from '../../../src/upstream/upstream.js';
import type { M2gwError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';
import { upstreamRequest } from '../../harness/upstream-request.js';

const log = createLogger({ level: 'error', format: 'json', file: null });

function upstreamFor(url: string) {
  return createHttpUpstream({ type: 'http', name: 'app', urls: [url], ...DEFAULTS.http }, log);
}

const request = (headers: HeaderList, method = 'GET'): UpstreamRequest => upstreamRequest('/x', { id: 'req-1', method, headers, preserveHost: false });

interface Outcome {
  status?: number;
  body: string;
  error?: M2gwError;
}

function forward(up: ReturnType<typeof upstreamFor>, req: UpstreamRequest): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Outcome = { body: '' };
    const sink: ResponseSink = {
      onResponseStart: (_c, status) => void (out.status = status),
      onResponseData: (_c, chunk) => void (out.body += chunk.toString('latin1')),
      onResponseEnd: () => resolve(out),
      onResponseError: (err) => resolve({ ...out, error: err }),
    };
    up.forward(req, sink);
  });
}

for (const [client, url] of [
  ['direct client', 'http://127.0.0.1:9'],
  ['undici', 'https://127.0.0.1:9'],
] as const) {
  test(`${client}: a CR/LF in a header value, a header name that is no token, or a bad method is a 400 before connecting`, async () => {
    const up = upstreamFor(url);
    try {
      const cases: HeaderList[] = [[['x-a', 'a\r\nGET /smuggled HTTP/1.1']], [['x-a', 'a\nb']], [['x a', 'b']], [['host', 'a.test'], ['host', 'b.test']], [['transfer-Encoding', 'chunked']]];
      for (const headers of cases) {
        const r = await forward(up, { ...request(headers), preserveHost: true });
        assert.equal(r.error?.code, 'M2GW_BAD_REQUEST', `${JSON.stringify(headers)}: ${r.error?.message}`);
        assert.equal(r.error?.phase, 'route');
      }
      const r = await forward(up, request([], 'GET /x HTTP/1.1\r\nX:'));
      assert.equal(r.error?.code, 'M2GW_BAD_REQUEST', r.error?.message);
    } finally {
      await up.destroy();
    }
  });
}

test('direct client: a plain GET is answered, and its connection is kept and counted idle', async () => {
  const server = http.createServer((req, res) => res.end(`${req.method} ${req.url} ${req.headers['x-request-id']}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const up = upstreamFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const r = await forward(up, request([['accept', '*/*']]));
    assert.equal(r.error, undefined);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'GET /x req-1');
    const h = up.health();
    // Each of the two clients may hold `connections` per server.
    assert.deepEqual(h.connections, { busy: 0, idle: 1, max: 2 * DEFAULTS.http.connections });
    assert.equal(h.inFlight, 0);
  } finally {
    await up.close();
    server.close();
  }
});

/** A raw upstream: `answer` gets each connection's socket and its first bytes. Counts connections. */
async function rawServer(answer: (sock: net.Socket, first: Buffer) => void): Promise<{ url: string; connections: () => number; close(): void }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    connections++;
    sockets.add(sock);
    sock.on('error', () => undefined);
    sock.once('data', (first: Buffer) => answer(sock, first));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test('direct client: an answer that comes while the request body is still being written closes the connection (the rest of the body is no next request)', async () => {
  const server = await rawServer((sock) => {
    // 413 at once, keep-alive, without reading the 16 MiB body; the socket stops reading.
    sock.pause();
    sock.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n');
  });
  const up = upstreamFor(server.url);
  try {
    const big = Buffer.alloc(16 * 1024 * 1024, 0x61);
    const r = await forward(up, { ...request([]), method: 'POST', body: { kind: 'buffer', data: big } });
    assert.equal(r.status, 413);
    const h = up.health();
    assert.equal(h.connections.idle, 0, 'a connection with body bytes still unwritten is not kept');
  } finally {
    await up.destroy();
    server.close();
  }
});

test('direct client: a reset right after a close-delimited body ends the response, not an error', async () => {
  const server = await rawServer((sock) => {
    sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe whole body', () => setTimeout(() => sock.resetAndDestroy(), 20));
  });
  const up = upstreamFor(server.url);
  try {
    const r = await forward(up, request([]));
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'the whole body');
  } finally {
    await up.destroy();
    server.close();
  }
});

test('direct client: a reset while the exchange is paused fails a close-delimited body instead of ending it short', async () => {
  // Node drops the bytes it buffered but had not delivered: an end there would be a silent cut.
  let sendRest = (): void => undefined;
  const server = await rawServer((sock) => {
    sock.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n' + 'a'.repeat(1000));
    sendRest = () => sock.write('b'.repeat(5000), () => setTimeout(() => sock.resetAndDestroy(), 20));
  });
  const up = upstreamFor(server.url);
  try {
    const r = await new Promise<Outcome>((resolve) => {
      const out: Outcome = { body: '' };
      up.forward(request([]), {
        onResponseStart: (_c, status) => void (out.status = status),
        onResponseData: (ctl, chunk) => {
          if (out.body === '') {
            // A slow client: the rest and the reset come while paused (never resumed).
            ctl.pause();
            sendRest();
          }
          out.body += chunk.toString('latin1');
        },
        onResponseEnd: () => resolve(out),
        onResponseError: (err) => resolve({ ...out, error: err }),
      });
    });
    assert.equal(r.status, 200);
    assert.equal(r.error?.code, 'M2GW_UPSTREAM_RESET', `ended with ${r.body.length} of 6000 bytes`);
    assert.equal(r.error.phase, 'headers-sent');
  } finally {
    await up.destroy();
    server.close();
  }
});

test('direct client: destroy() answers the running and the queued requests as a shutdown (503), not as a dead upstream; close() twice resolves', async () => {
  const server = await rawServer(() => undefined); // never answers
  const up = createHttpUpstream({ type: 'http', name: 'app', urls: [server.url], ...DEFAULTS.http, connections: 1 }, log);
  const running = forward(up, request([]));
  const queued = forward(up, request([]));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(up.health().queued, 1);
  await up.destroy();
  for (const r of await Promise.all([running, queued])) assert.equal(r.error?.code, 'M2GW_SHUTTING_DOWN', r.error?.message);
  assert.equal(up.health().healthy, true, 'a shutdown does not take the server out of rotation');
  server.close();

  const idle = upstreamFor('http://127.0.0.1:9');
  await Promise.all([idle.close(), idle.close()]);
});

test('direct client: a sink that throws ends its one request (M2GW_INTERNAL) instead of reaching the socket handler', async () => {
  const server = http.createServer((_req, res) => res.end('fine'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const up = upstreamFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const err = await new Promise<M2gwError>((resolve) => {
      up.forward(request([]), {
        onResponseStart: () => {
          throw new Error('a bug in the sink');
        },
        onResponseData: () => undefined,
        onResponseEnd: () => resolve(new Error('ended') as M2gwError),
        onResponseError: (e) => resolve(e),
      });
    });
    assert.equal(err.code, 'M2GW_INTERNAL');
    // The upstream still serves the next request.
    const r = await forward(up, request([]));
    assert.equal(r.body, 'fine');
    assert.equal(up.health().inFlight, 0);
  } finally {
    await up.close();
    server.close();
  }
});
