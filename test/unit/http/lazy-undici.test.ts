/**
 * undici is loaded only when a request needs it (a streamed or file upload, a WebSocket
 * handshake, an https:// server): a worker that only forwards ordinary requests to http://
 * servers, and the pre-forked spare, are spared its 19 MiB. Its own process: nothing else here
 * may load undici first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createHttpUpstream } from '../../../src/upstream/http/http-upstream.js';
import { DEFAULTS } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/log.js';
import { RequestAbort, type BodyStream, type RequestBody, type UpstreamRequest } from '../../../src/upstream/upstream.js';

const requireCjs = createRequire(import.meta.url);
const undiciLoaded = (): boolean => Object.keys(requireCjs.cache).some((k) => k.includes('/node_modules/undici/'));

function request(method: string, body: RequestBody | null): UpstreamRequest {
  return {
    id: 'r',
    method,
    path: '/',
    query: '',
    hasQuery: false,
    originalUri: '/',
    routePrefix: '/',
    httpVersion: 'HTTP/1.1',
    headers: [],
    host: '',
    hostHeader: '',
    remoteAddr: '',
    scheme: 'http',
    serverPort: 80,
    body,
    preserveHost: false,
    signal: new RequestAbort(),
  };
}

function status(up: ReturnType<typeof createHttpUpstream>, req: UpstreamRequest): Promise<number> {
  return new Promise((resolve, reject) =>
    up.forward(req, {
      onResponseStart: (_c, s) => resolve(s),
      onResponseData: () => undefined,
      onResponseEnd: () => undefined,
      onResponseError: (e) => reject(e),
    }),
  );
}

test('undici stays unloaded for requests without a body or with one in memory, and loads for a streamed upload', async () => {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const log = createLogger({ level: 'error', format: 'json', file: null });
  const up = createHttpUpstream({ type: 'http', name: 'app', urls: [`http://127.0.0.1:${(server.address() as AddressInfo).port}`], ...DEFAULTS.http }, log);
  try {
    assert.equal(await status(up, request('GET', null)), 200);
    assert.equal(await status(up, request('POST', { kind: 'buffer', data: Buffer.from('small body') })), 200);
    up.health();
    assert.equal(undiciLoaded(), false, 'undici was loaded for requests the direct client carries');

    let sent = false;
    const stream: BodyStream = {
      length: 5,
      started: false,
      read: () => {
        if (sent) return Promise.resolve(null);
        sent = true;
        return Promise.resolve(Buffer.from('hello'));
      },
      cancel: () => undefined,
    };
    assert.equal(await status(up, request('POST', { kind: 'stream', stream })), 200);
    assert.equal(undiciLoaded(), true, 'a streamed upload goes through undici');
  } finally {
    await up.close();
    server.close();
  }
});
