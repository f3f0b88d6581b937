/**
 * End to end: real Mongrel2 → m2gw → real node:http upstream, driven by real HTTP clients.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { startChain, type Chain } from './gateway-support.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { rawRequest, request, slowReader } from '../harness/http-client.js';
import { freePort } from '../harness/ports.js';
import { sleep, waitFor } from '../harness/wait.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('HTTP upstream through a real Mongrel2', () => {
  let up: HttpUpstreamInstance;
  let chain: Chain;
  let deadPort: number;

  before(async () => {
    up = await startHttpUpstream();
    deadPort = await freePort();
    chain = await startChain({
      toml: `
[upstream.app]
type = "http"
url = "${up.url}"
response_timeout = "700ms"
idle_timeout = "2s"

[upstream.dead]
type = "http"
url = "http://127.0.0.1:${deadPort}"

[[route]]
prefix = "/"
upstream = "app"
max_body = "50MiB"

[[route]]
prefix = "/stripped/"
upstream = "app"
strip_prefix = true

[[route]]
prefix = "/small/"
upstream = "app"
strip_prefix = true
max_body = "64KiB"

[[route]]
prefix = "/dead/"
upstream = "dead"
`,
    });
  });

  after(async () => {
    await chain.stop();
    await up.close();
  });

  test('GET with an encoded query reaches the upstream byte for byte', async () => {
    const res = await request(`${chain.url}/echo/some%20path?a=1&b=two%20words&c=%C3%A9&d=a%2Fb`);
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body.toString()) as { url: string; headers: Record<string, string> };
    assert.equal(echo.url, '/echo/some%20path?a=1&b=two%20words&c=%C3%A9&d=a%2Fb');
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.match(echo.headers['x-forwarded-host'] ?? '', /^127\.0\.0\.1:\d+$/);
    assert.ok(echo.headers['x-request-id'], 'X-Request-Id added');
    assert.equal(res.headers['x-request-id'], undefined, 'request id is for the upstream, not echoed by us');
  });

  test('access log has one line per request with method, path, status, bytes, duration, upstream, id', async () => {
    const before = chain.logs.filter((l) => l.type === 'access').length;
    await request(`${chain.url}/status/201`);
    await waitFor(() => chain.logs.filter((l) => l.type === 'access').length === before + 1, 2000);
    const line = chain.logs.filter((l) => l.type === 'access').at(-1)!;
    assert.equal(line.method, 'GET');
    assert.equal(line.path, '/status/201');
    assert.equal(line.status, 201);
    assert.equal(line.upstream, 'app');
    assert.equal(typeof line.duration_ms, 'number');
    assert.equal(typeof line.bytes, 'number');
    assert.ok(line.request_id);
  });

  test('strip_prefix forwards the rest of the path', async () => {
    const res = await request(`${chain.url}/stripped/echo?x=1`);
    assert.equal(JSON.parse(res.body.toString()).url, '/echo?x=1');
  });

  test('POST of 5 MiB arrives intact (Mongrel2 async upload path)', async () => {
    const body = randomBytes(5 * 1024 * 1024);
    const res = await request(`${chain.url}/echo`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body.toString()) as { bodySha256: string; bodyLength: number };
    assert.equal(echo.bodyLength, body.length);
    assert.equal(echo.bodySha256, sha(body));
    // The temp file is deleted once forwarded.
    await waitFor(async () => (await import('node:fs')).readdirSync(`${chain.m2.dir}/tmp`).length === 0, 2000);
  });

  test('chunked POST arrives intact with a Content-Length', async () => {
    const parts = [randomBytes(30_000), randomBytes(70_000), randomBytes(5)];
    async function* gen(): AsyncGenerator<Buffer> {
      for (const p of parts) {
        yield p;
        await sleep(20);
      }
    }
    const res = await request(`${chain.url}/echo`, { method: 'POST', body: gen() });
    const echo = JSON.parse(res.body.toString()) as { bodySha256: string; bodyLength: number; headers: Record<string, string> };
    const all = Buffer.concat(parts);
    assert.equal(echo.bodyLength, all.length);
    assert.equal(echo.bodySha256, sha(all));
    assert.equal(echo.headers['content-length'], String(all.length));
    assert.equal(echo.headers['transfer-encoding'], undefined);
  });

  test('a body over max_body gets 413 at upload start, and the connection closes', async () => {
    const res = await request(`${chain.url}/small/echo`, { method: 'POST', body: randomBytes(200_000) });
    assert.equal(res.status, 413);
    assert.equal(res.headers['connection'], 'close');
    const inline = await request(`${chain.url}/small/echo`, { method: 'POST', body: randomBytes(10_000) });
    assert.equal(inline.status, 200, 'under the limit passes');
  });

  test('streamed response: the first chunk reaches the client before the upstream finishes', async () => {
    const t0 = Date.now();
    const firstChunkAt = await new Promise<number>((resolve, reject) => {
      http
        .get(`${chain.url}/stream/4/300`, (res) => {
          assert.equal(res.headers['transfer-encoding'], 'chunked');
          res.once('data', () => resolve(Date.now() - t0));
          res.resume();
        })
        .on('error', reject);
    });
    // The upstream needs 4 × 300 ms; the first chunk must come long before that.
    assert.ok(firstChunkAt < 700, `first chunk after ${firstChunkAt} ms`);
  });

  test('two requests share one keep-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    for (let i = 0; i < 2; i++) {
      const res = await request(`${chain.url}/echo?i=${i}`, { agent });
      assert.equal(res.status, 200);
      ports.add(res.localPort);
    }
    agent.destroy();
    assert.equal(ports.size, 1, 'same client socket reused');
  });

  test('pipelined requests are answered in order', async () => {
    const raw = await rawRequest(
      chain.m2.port,
      Buffer.from('GET /slow/300 HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      { readUntil: 'close', timeoutMs: 5000 },
    );
    const text = raw.toString('latin1');
    const first = text.indexOf('slow');
    const second = text.indexOf('/echo?second');
    assert.ok(first >= 0 && second > first, text);
  });

  test('a request pipelined after a chunked upload is answered after it (the upload holds its place while its file is opened)', async () => {
    // Mongrel2 writes a chunked body to a temp file (an async upload: start, then done) and
    // then passes on the GET that followed it in the same packet. Before, the GET found the
    // connection idle while the done's file was being opened, and its answer went first.
    for (let i = 0; i < 3; i++) {
      const raw = await rawRequest(
        chain.m2.port,
        Buffer.from(
          'POST /echo?first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' +
            'GET /echo?second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
        ),
        { readUntil: 'close', timeoutMs: 5000 },
      );
      const text = raw.toString('latin1');
      const first = text.indexOf('/echo?first');
      const second = text.indexOf('/echo?second');
      assert.ok(first >= 0 && second > first, `round ${i}: the upload's answer first:\n${text}`);
      assert.match(text.slice(0, second), /"bodyLength":5/, 'the upload arrived whole');
    }
  });

  test('HTTP/1.0 client gets the body and a closed connection', async () => {
    const raw = await rawRequest(chain.m2.port, Buffer.from('GET /stream/2/50 HTTP/1.0\r\n\r\n'), { readUntil: 'close', timeoutMs: 5000 });
    const text = raw.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200/);
    assert.doesNotMatch(text, /transfer-encoding/i, 'no chunked framing for HTTP/1.0');
    assert.match(text, /connection: close/i);
  });

  test('HEAD, 204 and 304 carry no body and keep the connection usable', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const head = await request(`${chain.url}/bytes/1000`, { method: 'HEAD', agent });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], '1000');
    const nc = await request(`${chain.url}/status/204`, { agent });
    assert.equal(nc.status, 204);
    const nm = await request(`${chain.url}/status/304`, { agent });
    assert.equal(nm.status, 304);
    const after = await request(`${chain.url}/bytes/10`, { agent });
    assert.equal(after.body.length, 10);
    assert.equal(new Set([head.localPort, nc.localPort, nm.localPort, after.localPort]).size, 1);
    agent.destroy();
  });

  test('two Set-Cookie headers stay separate', async () => {
    const res = await request(`${chain.url}/cookies`);
    const cookies = res.headers['set-cookie'] as string[] | undefined;
    assert.ok(Array.isArray(cookies));
    assert.equal(cookies.length, 2);
  });

  test('repeated request headers all reach the upstream', async () => {
    const raw = await rawRequest(
      chain.m2.port,
      Buffer.from('GET /echo HTTP/1.1\r\nHost: x\r\nX-Dup: a\r\nX-Dup: b\r\nCookie: c1=1\r\nCookie: c2=2\r\nConnection: close\r\n\r\n'),
      { readUntil: 'close', timeoutMs: 5000 },
    );
    const body = raw.toString('latin1').split('\r\n\r\n')[1]!;
    const echo = JSON.parse(body) as { rawHeaders: string[] };
    const values = (name: string): string[] => pairs(echo.rawHeaders, name);
    assert.deepEqual(values('x-dup'), ['a', 'b']);
    assert.deepEqual(values('cookie'), ['c1=1', 'c2=2']);
  });

  test('no route → 404; upstream down → 502', async () => {
    const dead = await request(`${chain.url}/dead/x`);
    assert.equal(dead.status, 502);
    assert.ok(chain.logs.some((l) => l.message === 'request failed' && l.code === 'M2GW_UPSTREAM_CONNECT'));
  });

  test('slow upstream → 504', async () => {
    const res = await request(`${chain.url}/slow/2000`);
    assert.equal(res.status, 504);
  });

  test('client gone mid-stream: the upstream sees its connection closed within a second', async () => {
    const closedBefore = up.connectionsClosed;
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${chain.url}/stream/100/100`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      setTimeout(() => reject(new Error('no data')), 3000);
    });
    const t0 = Date.now();
    await waitFor(() => up.connectionsClosed > closedBefore, 1000);
    assert.ok(Date.now() - t0 <= 1000);
  });

  test('a client reading at 1 MB/s receives a 20 MiB body complete and byte-exact', async () => {
    const size = 20 * 1024 * 1024;
    const res = await slowReader(`${chain.url}/bytes/${size}`, 1_000_000);
    assert.equal(res.body.length, size);
    const expected = await request(`${up.url}/bytes/${size}`);
    assert.equal(sha(res.body), sha(expected.body));
  });
});

function pairs(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}
