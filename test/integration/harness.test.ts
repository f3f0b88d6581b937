/**
 * Smoke test of the test harness against the real Mongrel2 and real sockets:
 * if these fail, integration test failures say nothing about m2gw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { allocHandlerSpecs, renderConf, startMongrel2, type Mongrel2Instance } from '../harness/mongrel2.js';
import { freePorts } from '../harness/ports.js';
import { rawRequest, RawRequestTimeout, request, sha256, slowReader } from '../harness/http-client.js';
import { patternBytes, startHttpUpstream } from '../harness/upstream-http.js';
import { canConnect, sleep, waitFor } from '../harness/wait.js';

function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

test('freePorts returns distinct usable ports', async () => {
  const ports = await freePorts(6);
  assert.equal(new Set(ports).size, 6);
  for (const p of ports) assert.ok(p > 0 && p < 65536);
});

test('waitFor returns the value, and times out naming what it waited for', async () => {
  let n = 0;
  assert.equal(await waitFor(() => (++n >= 3 ? n : 0), 1000, 1), 3);
  await assert.rejects(waitFor(() => false, 50, 10, 'the moon'), /the moon not met within 50 ms/);
});

test('renderConf refuses what m2sh would mangle or drop', () => {
  const base = { uuid: 'u', port: 1, hostName: 'localhost', settings: {} };
  const h = { name: 'a', sendSpec: 'tcp://127.0.0.1:1', recvSpec: 'tcp://127.0.0.1:2', sendIdent: 'i', recvIdent: '', protocol: 'json' as const };
  assert.throws(() => renderConf({ ...base, handlers: [h], routes: [{ path: '/x/', handler: 'nope' }] }), /unknown handler nope/);
  assert.throws(() => renderConf({ ...base, handlers: [h, h], routes: [] }), /duplicate handler/);
  assert.throws(() => renderConf({ ...base, handlers: [], routes: [{ path: '/x"/', proxy: { addr: '127.0.0.1', port: 1 } }] }), /no escapes/);
  const conf = renderConf({ ...base, handlers: [], routes: [{ path: '/s/', dir: { base: 'www' } }] });
  assert.match(conf, /Dir\(base="www\/"/, 'trailing slash added');
});

test('upstream built-in routes and request records', async () => {
  const up = await startHttpUpstream();
  try {
    const body = Buffer.from('hello upstream');
    const res = await request(`${up.url}/echo/a%20b?q=1`, { method: 'POST', body, headers: { 'X-Dup': ['a', 'b'] } });
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body.toString()) as { method: string; url: string; bodyLength: number; bodySha256: string; rawHeaders: string[] };
    assert.equal(echo.method, 'POST');
    assert.equal(echo.url, '/echo/a%20b?q=1');
    assert.equal(echo.bodyLength, body.length);
    assert.equal(echo.bodySha256, sha256(body));
    assert.deepEqual(echo.rawHeaders.filter((_, i, a) => i % 2 === 1 && a[i - 1] === 'X-Dup'), ['a', 'b']);
    const rec = up.requests.at(-1)!;
    assert.equal(rec.bodyComplete, true);
    assert.equal(rec.bodySha256, sha256(body));

    async function* parts(): AsyncGenerator<Buffer> {
      yield Buffer.from('one,');
      await sleep(10);
      yield Buffer.from('two');
    }
    const chunked = await request(`${up.url}/echo`, { method: 'PUT', body: parts() });
    const e2 = JSON.parse(chunked.body.toString()) as { bodyLength: number; headers: Record<string, string> };
    assert.equal(e2.bodyLength, 7);
    assert.equal(e2.headers['transfer-encoding'], 'chunked');

    const bytes = await request(`${up.url}/bytes/100000`);
    assert.equal(bytes.headers['content-length'], '100000');
    assert.ok(bytes.body.equals(patternBytes(100000)));
    assert.equal((await request(`${up.url}/status/204`)).status, 204);
    assert.deepEqual((await request(`${up.url}/cookies`)).headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
    const streamed = await request(`${up.url}/stream/3/20`);
    assert.equal(streamed.body.toString(), 'chunk 0\nchunk 1\nchunk 2\n');
    assert.equal(streamed.headers['transfer-encoding'], 'chunked');

    // /hang: the record notes when the client went away.
    const closedBefore = up.connectionsClosed;
    await assert.rejects(request(`${up.url}/hang`, { timeoutMs: 100 }), /timed out/);
    await waitFor(() => up.connectionsClosed > closedBefore, 1000);
    const hang = up.requests.find((r) => r.url === '/hang')!;
    await waitFor(() => hang.closedAt !== undefined, 1000);
    assert.equal(hang.aborted, true);
  } finally {
    await up.close();
  }
});

test('rawRequest reads until close or idle, and rejects when the server keeps the connection', async () => {
  const up = await startHttpUpstream();
  try {
    const closed = await rawRequest(up.port, 'GET /status/201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { readUntil: 'close', timeoutMs: 2000 });
    assert.match(closed.toString('latin1'), /^HTTP\/1\.1 201 [^]*status 201\n$/);
    const idle = await rawRequest(up.port, 'GET /status/202 HTTP/1.1\r\nHost: x\r\n\r\n', { readUntil: 100, timeoutMs: 2000 });
    assert.match(idle.toString('latin1'), /^HTTP\/1\.1 202 /);
    await assert.rejects(rawRequest(up.port, 'GET /status/200 HTTP/1.1\r\nHost: x\r\n\r\n', { readUntil: 'close', timeoutMs: 200 }), (err) => {
      assert.ok(err instanceof RawRequestTimeout);
      assert.match(err.partial.toString('latin1'), /^HTTP\/1\.1 200 /);
      return true;
    });
  } finally {
    await up.close();
  }
});

test('slowReader really limits the read rate', async () => {
  const up = await startHttpUpstream();
  try {
    const size = 300_000;
    const res = await slowReader(`${up.url}/bytes/${size}`, 600_000);
    assert.ok(res.body.equals(patternBytes(size)));
    // 300 kB at 600 kB/s cannot take less than ~0.5 s.
    assert.ok(res.elapsedMs >= 400, `took ${res.elapsedMs} ms`);
  } finally {
    await up.close();
  }
});

test('real Mongrel2: Proxy route to the upstream, Dir route, handler ports bound; stop cleans up', async () => {
  const up = await startHttpUpstream();
  const [spec] = await allocHandlerSpecs(1);
  const m2 = await startMongrel2({
    handlers: [{ name: 'gw', sendSpec: spec!.sendSpec, recvSpec: spec!.recvSpec }],
    routes: [
      { path: '/echo', proxy: { addr: '127.0.0.1', port: up.port } },
      { path: '/static/', dir: { base: 'www/' } },
      { path: '/h/', handler: 'gw' },
    ],
    files: { 'www/hello.txt': 'hello from dir\n' },
  });
  try {
    assert.ok(fs.existsSync(`${m2.dir}/config.sqlite`));
    const res = await request(`${m2.url}/echo?via=m2`, { headers: { 'X-Probe': 'through-proxy' } });
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body.toString()) as { url: string; headers: Record<string, string> };
    assert.equal(echo.url, '/echo?via=m2');
    // Mongrel2's Proxy passes the client's header block through as is (it adds no x-forwarded-for).
    assert.equal(echo.headers['x-probe'], 'through-proxy');
    assert.equal(up.requests.length, 1, 'the upstream saw exactly the proxied request');

    const file = await request(`${m2.url}/static/hello.txt`);
    assert.equal(file.status, 200);
    assert.equal(file.body.toString(), 'hello from dir\n');
    assert.match(String(file.headers['server']), /Mongrel2/);

    // Both handler endpoints accept connections (Mongrel2 bound them).
    for (const s of [spec!.sendSpec, spec!.recvSpec]) assert.ok(await canConnect('127.0.0.1', Number(s.split(':').at(-1))));
    assert.match(await m2.logs(), /Starting Mongrel2\/1\.12/);
  } finally {
    await m2.stop();
    await up.close();
  }
  assert.ok(processGone(m2.pid), 'process gone');
  assert.equal(await canConnect('127.0.0.1', m2.port), false, 'HTTP port freed');
  assert.equal(fs.existsSync(m2.dir), false, 'temp dir removed');
  await m2.stop(); // idempotent
  assert.match(await m2.logs(), /Shutdown requested/, 'logs survive stop');
});

test('two Mongrel2 instances run side by side', async () => {
  const start = (text: string): Promise<Mongrel2Instance> =>
    startMongrel2({ handlers: [], routes: [{ path: '/', dir: { base: 'www', index: 'index.html' } }], files: { 'www/index.html': text } });
  const [a, b] = await Promise.all([start('A'), start('B')]);
  try {
    assert.notEqual(a.port, b.port);
    assert.notEqual(a.dir, b.dir);
    assert.notEqual(a.uuid, b.uuid);
    const agent = new http.Agent({ keepAlive: false });
    assert.equal((await request(`${a.url}/`, { agent })).body.toString(), 'A');
    assert.equal((await request(`${b.url}/`, { agent })).body.toString(), 'B');
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  assert.ok(processGone(a.pid) && processGone(b.pid));
});
