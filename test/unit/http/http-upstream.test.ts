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
import type { AddressInfo } from 'node:net';
import { createHttpUpstream } from '../../../src/upstream/http/http-upstream.js';
import { DEFAULTS } from '../../../src/config/schema.js';
import { RequestAbort, type HeaderList, type ResponseSink, type UpstreamRequest } from '../../../src/upstream/upstream.js';
import type { M2gwError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';

const log = createLogger({ level: 'error', format: 'json', file: null });

function upstreamFor(url: string) {
  return createHttpUpstream({ type: 'http', name: 'app', urls: [url], ...DEFAULTS.http }, log);
}

function request(headers: HeaderList, method = 'GET'): UpstreamRequest {
  return {
    id: 'req-1',
    method,
    path: '/x',
    query: '',
    hasQuery: false,
    originalUri: '/x',
    routePrefix: '/',
    httpVersion: 'HTTP/1.1',
    headers,
    host: 'example.test',
    hostHeader: 'example.test',
    remoteAddr: '127.0.0.1',
    scheme: 'http',
    serverPort: 80,
    body: null,
    preserveHost: false,
    signal: new RequestAbort(),
  };
}

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
      for (const headers of [[['x-a', 'a\r\nGET /smuggled HTTP/1.1']], [['x-a', 'a\nb']], [['x a', 'b']]] as HeaderList[]) {
        const r = await forward(up, request(headers));
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
    assert.deepEqual(h.connections, { busy: 0, idle: 1, max: DEFAULTS.http.connections });
    assert.equal(h.inFlight, 0);
  } finally {
    await up.close();
    server.close();
  }
});
