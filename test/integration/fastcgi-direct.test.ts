/**
 * The FastCGI upstream driven directly (no Mongrel2) against a real, private PHP-FPM running
 * the scripts in test/fixtures/php/.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastcgiUpstreamConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import type { Logger } from '../../src/log.js';
import { createFastcgiUpstream } from '../../src/upstream/fastcgi/fastcgi-upstream.js';
import { RecordDecoder } from '../../src/upstream/fastcgi/record-decoder.js';
import { encodeAbortRequest, encodeRequestHead, ProtocolStatus } from '../../src/upstream/fastcgi/records.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import { startPhpFpm } from '../harness/php-fpm.js';
import type { PhpFpm, PhpFpmOptions } from '../harness/php-fpm.js';
import { repoRoot } from '../unit/fixtures.js';
import { assertError, assertOk, capturingLogger, fastcgiConfig, header, request, run, sleep } from './fastcgi-support.js';

const docroot = path.join(repoRoot, 'test/fixtures/php');
let fpm: PhpFpm;
let tmp = '';

before(async () => {
  fpm = await startPhpFpm({ maxChildren: 4 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-fcgi-int-'));
});

after(async () => {
  await fpm.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

type TestCtx = { after(fn: () => unknown): void };
const cleanups = new WeakMap<TestCtx, Array<() => unknown>>();

/** Runs `fn` when the test ends, last registered first (the upstream closes before its PHP-FPM). */
function defer(t: TestCtx, fn: () => unknown): void {
  let stack = cleanups.get(t);
  if (stack === undefined) {
    const s: Array<() => unknown> = [];
    stack = s;
    cleanups.set(t, s);
    t.after(async () => {
      while (s.length > 0) await s.pop()!();
    });
  }
  stack.push(fn);
}

function upstream(
  t: TestCtx,
  cfg: Partial<FastcgiUpstreamConfig> = {},
  logger: Logger = silentLogger(),
  address = fpm.address,
): Upstream {
  const up = createFastcgiUpstream(fastcgiConfig(address, docroot, cfg), logger);
  defer(t, () => up.destroy());
  return up;
}

async function ownFpm(t: TestCtx, opts: PhpFpmOptions): Promise<PhpFpm> {
  const f = await startPhpFpm(opts);
  defer(t, () => f.stop());
  return f;
}

interface Echo {
  server: Record<string, string>;
  get: Record<string, string>;
  post: Record<string, string>;
  cookie: Record<string, string>;
  input_length: number;
  input_md5: string;
}

const json = (body: Buffer): Echo => JSON.parse(body.toString()) as Echo;

test('PHP sees the CGI variables of a plain script', async (t) => {
  const up = upstream(t, { params: { M2GW_EXTRA: 'from-config' } });
  const r = await run(
    up,
    request('/server.php?a=1&b=two', {
      headers: [
        ['host', 'example.test:8080'],
        ['user-agent', 'm2gw-test'],
        ['cookie', 'c1=v1'],
        ['cookie', 'c2=v2'],
        ['x-multi', 'one'],
        ['x-multi', 'two'],
        ['proxy', 'http://evil.test'],
      ],
      serverPort: 8080,
    }),
  );
  assertOk(r);
  assert.equal(header(r, 'content-type'), 'application/json');
  const e = json(r.body);
  const s = e.server;
  assert.equal(s['SCRIPT_FILENAME'], path.join(docroot, 'server.php'));
  assert.equal(s['SCRIPT_NAME'], '/server.php');
  assert.equal(s['PHP_SELF'], '/server.php');
  assert.equal(s['DOCUMENT_ROOT'], docroot);
  assert.equal(s['REQUEST_URI'], '/server.php?a=1&b=two');
  assert.equal(s['QUERY_STRING'], 'a=1&b=two');
  assert.equal(s['REQUEST_METHOD'], 'GET');
  assert.equal(s['SERVER_NAME'], 'example.test');
  assert.equal(s['SERVER_PORT'], '8080');
  assert.equal(s['SERVER_PROTOCOL'], 'HTTP/1.1');
  assert.match(s['SERVER_SOFTWARE']!, /^m2gw\/\d+\.\d+\.\d+/);
  assert.equal(s['GATEWAY_INTERFACE'], 'CGI/1.1');
  assert.equal(s['REMOTE_ADDR'], '127.0.0.1');
  assert.equal(s['REDIRECT_STATUS'], '200');
  assert.equal(s['HTTP_HOST'], 'example.test:8080');
  assert.equal(s['HTTP_USER_AGENT'], 'm2gw-test');
  assert.equal(s['HTTP_COOKIE'], 'c1=v1; c2=v2');
  assert.equal(s['HTTP_X_MULTI'], 'one, two');
  assert.equal(s['M2GW_EXTRA'], 'from-config');
  for (const absent of ['PATH_INFO', 'PATH_TRANSLATED', 'HTTPS', 'HTTP_PROXY', 'REMOTE_PORT', 'CONTENT_LENGTH']) {
    assert.equal(absent in s, false, `${absent} absent`);
  }
  assert.deepEqual(e.get, { a: '1', b: 'two' });
  assert.deepEqual(e.cookie, { c1: 'v1', c2: 'v2' });
});

test('/server.php/extra/path: PATH_INFO, PATH_TRANSLATED, PHP_SELF', async (t) => {
  const r = await run(upstream(t), request('/server.php/extra/path'));
  assertOk(r);
  const s = json(r.body).server;
  assert.equal(s['SCRIPT_NAME'], '/server.php');
  assert.equal(s['PATH_INFO'], '/extra/path');
  assert.equal(s['PATH_TRANSLATED'], path.join(docroot, 'extra/path'));
  assert.equal(s['PHP_SELF'], '/server.php/extra/path');
  assert.equal(s['SCRIPT_FILENAME'], path.join(docroot, 'server.php'));
});

test('a stripped route prefix comes back in SCRIPT_NAME; REQUEST_URI stays the client’s', async (t) => {
  const r = await run(upstream(t), request('/server.php?q=1', { originalUri: '/app/server.php?q=1', routePrefix: '/app/' }));
  assertOk(r);
  const s = json(r.body).server;
  assert.equal(s['SCRIPT_NAME'], '/app/server.php');
  assert.equal(s['REQUEST_URI'], '/app/server.php?q=1');
  assert.equal(s['SCRIPT_FILENAME'], path.join(docroot, 'server.php'));
});

test('directory index, and the 301 to the slash form', async (t) => {
  const up = upstream(t);
  const r = await run(up, request('/sub/'));
  assertOk(r);
  assert.equal(r.body.toString(), 'sub index /sub/index.php');
  const root = await run(up, request('/'));
  assert.equal(root.body.toString(), 'root index /index.php');
  const redirect = await run(up, request('/sub?x=1'));
  assertOk(redirect, 301);
  assert.equal(header(redirect, 'location'), '/sub/?x=1');
});

test('front controller: any non-file goes to it with REQUEST_URI untouched', async (t) => {
  const up = upstream(t, { frontController: '/front/router.php' });
  const r = await run(up, request('/blog/2024/hello-world?page=2'));
  assertOk(r);
  const body = JSON.parse(r.body.toString()) as Record<string, unknown>;
  assert.deepEqual(body, {
    router: true,
    SCRIPT_NAME: '/front/router.php',
    PATH_INFO: null,
    REQUEST_URI: '/blog/2024/hello-world?page=2',
    QUERY_STRING: 'page=2',
  });
  const direct = await run(up, request('/hello.php'));
  assert.equal(direct.body.toString(), 'Hello, world!', 'existing scripts still run themselves');
});

test('POST urlencoded: $_POST and the raw body', async (t) => {
  const body = Buffer.from('name=m2gw&list%5B%5D=a&list%5B%5D=b&text=caf%C3%A9');
  const r = await run(
    upstream(t),
    request('/server.php', {
      method: 'POST',
      headers: [
        ['host', 'example.test'],
        ['content-type', 'application/x-www-form-urlencoded'],
        ['content-length', String(body.length)],
      ],
      body: { kind: 'buffer', data: body },
    }),
  );
  assertOk(r);
  const e = json(r.body);
  assert.deepEqual(e.post, { name: 'm2gw', list: ['a', 'b'], text: 'café' });
  assert.equal(e.server['CONTENT_TYPE'], 'application/x-www-form-urlencoded');
  assert.equal(e.server['CONTENT_LENGTH'], String(body.length));
  assert.equal('HTTP_CONTENT_TYPE' in e.server, false);
});

test('PUT with a large body from a file (async upload) reaches php://input intact', async (t) => {
  const data = crypto.randomBytes(3 * 1024 * 1024 + 5);
  const file = path.join(tmp, 'upload.bin');
  fs.writeFileSync(file, data);
  const r = await run(
    upstream(t),
    request('/server.php', {
      method: 'PUT',
      headers: [['content-type', 'application/octet-stream']],
      body: { kind: 'file', path: file, length: data.length },
    }),
  );
  assertOk(r);
  const e = json(r.body);
  assert.equal(e.input_length, data.length);
  assert.equal(e.input_md5, crypto.createHash('md5').update(data).digest('hex'));
});

test('header("Location: ...") is a 302 with the Location', async (t) => {
  const r = await run(upstream(t), request('/redirect.php'));
  assertOk(r, 302);
  assert.equal(header(r, 'location'), '/elsewhere?from=redirect');
  assert.equal(r.body.toString(), 'moved');
});

test('two Set-Cookie headers stay two', async (t) => {
  const r = await run(upstream(t), request('/cookies.php'));
  assertOk(r);
  assert.deepEqual(
    r.headers.filter(([n]) => n === 'set-cookie').map(([, v]) => v),
    ['first=one', 'second=two; path=/x; HttpOnly'],
  );
});

test('http_response_code() and custom headers come through', async (t) => {
  const r = await run(upstream(t), request('/status.php?code=418'));
  assertOk(r, 418);
  assert.equal(header(r, 'x-custom'), 'yes');
});

test('PHP fatal error: 500, and the stderr is logged with the request id', async (t) => {
  const { logger, records } = capturingLogger();
  const req = request('/fatal.php');
  const r = await run(upstream(t, {}, logger), req);
  assertOk(r, 500);
  const rec = records.find((x) => x['message'] === 'php stderr');
  assert.ok(rec, 'stderr logged');
  assert.equal(rec['request_id'], req.id);
  assert.match(String(rec['stderr']), /PHP Fatal error: .*this_function_does_not_exist_m2gw/);
});

test('flush(): chunks arrive as PHP sends them, not at the end', async (t) => {
  const r = await run(upstream(t), request('/flush.php?n=4&ms=150'));
  assertOk(r);
  assert.equal(r.body.toString(), 'chunk 0\nchunk 1\nchunk 2\nchunk 3\n');
  assert.ok(r.chunkTimes.length >= 4, `${r.chunkTimes.length} chunks`);
  const first = r.chunkTimes[0]!;
  const last = r.chunkTimes[r.chunkTimes.length - 1]!;
  assert.ok(last - first >= 400, `chunks spread over ${last - first} ms`);
  assert.ok(first < last - 300, 'the first chunk came well before the end');
});

test('a missing script is 404 without asking PHP', async (t) => {
  assertError(await run(upstream(t), request('/no-such-script.php')), 'M2GW_NOT_FOUND', 'route');
});

test('security: non-PHP files are never executed', async (t) => {
  const up = upstream(t, { serveStatic: true });
  for (const p of ['/uploads/x.jpg/y.php', '/UPPER.PHP']) assertError(await run(up, request(p)), 'M2GW_NOT_FOUND');
  const jpg = await run(up, request('/evil.php.jpg'));
  assertOk(jpg);
  assert.equal(jpg.body.toString(), '<?php echo "EXECUTED evil.php.jpg"; ?>\n', 'served as bytes, not run');
  assertError(await run(upstream(t, { deny: ['/private'] }), request('/private/secret.php')), 'M2GW_FORBIDDEN');
});

test('static files with serve_static; HEAD of a script has no body', async (t) => {
  const up = upstream(t, { serveStatic: true });
  const css = await run(up, request('/style.css'));
  assertOk(css);
  assert.equal(header(css, 'content-type'), 'text/css; charset=utf-8');
  assert.equal(css.body.toString(), 'body { color: red }\n');
  const head = await run(up, request('/hello.php', { method: 'HEAD' }));
  assertOk(head);
  assert.equal(head.body.length, 0);
});

test('50 concurrent requests against a 2-child pool (max_connections 2) are all answered', async (t) => {
  const small = await ownFpm(t, { maxChildren: 2 });
  const up = upstream(t, { maxConnections: 2 }, silentLogger(), small.address);
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => run(up, request(`/sleep.php?ms=10&i=${i}`))));
  for (const r of results) {
    assertOk(r);
    assert.equal(r.body.toString(), 'slept');
  }
  assert.equal(up.health().connections.max, 2);
  assert.ok(up.health().connections.idle <= 2);
});

test('pm.max_requests=1: every child exits after one request, keep-alive notices, nothing fails', async (t) => {
  const churn = await ownFpm(t, { maxChildren: 2, maxRequests: 1 });
  const up = upstream(t, { maxConnections: 2 }, silentLogger(), churn.address);
  for (let i = 0; i < 6; i++) {
    const post = i % 2 === 1;
    const r = await run(up, request(`/hello.php?${i}`, post ? { method: 'POST', body: { kind: 'buffer', data: Buffer.from('x=1') } } : {}));
    assertOk(r);
  }
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      run(up, request(`/hello.php?c${i}`, i % 2 ? { method: 'POST', body: { kind: 'buffer', data: Buffer.from('x=1') } } : {})),
    ),
  );
  for (const r of results) assertOk(r);
});

test('pipelining against PHP-FPM: requests written ahead are served in turn', async (t) => {
  const up = upstream(t, { maxConnections: 2, pipeline: 3 });
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => run(up, request(`/server.php?i=${i}`))));
  results.forEach((r, i) => {
    assertOk(r);
    assert.equal(json(r.body).get['i'], String(i), 'each answer belongs to its request');
  });
});

test('a unix socket address works', async (t) => {
  const unix = await ownFpm(t, { maxChildren: 1, listen: 'unix' });
  assert.ok(unix.address.startsWith('unix:'));
  const r = await run(upstream(t, {}, silentLogger(), unix.address), request('/hello.php'));
  assertOk(r);
  assert.equal(r.body.toString(), 'Hello, world!');
});

test('PHP-FPM stopped: 502 M2GW_UPSTREAM_CONNECT in phase connect', async (t) => {
  const doomed = await ownFpm(t, { maxChildren: 1 });
  const up = upstream(t, {}, silentLogger(), doomed.address);
  assertOk(await run(up, request('/hello.php')));
  await doomed.stop();
  const r = await run(up, request('/hello.php'));
  assertError(r, 'M2GW_UPSTREAM_CONNECT', 'connect');
  assert.equal(up.health().healthy, false);
});

test('a script sleeping past response_timeout is 504', async (t) => {
  const up = upstream(t, { responseTimeoutMs: 300 });
  const r = await run(up, request('/sleep.php?ms=1200'));
  assertError(r, 'M2GW_UPSTREAM_TIMEOUT', 'request-sent');
  assert.ok(r.ms >= 280 && r.ms < 1100, `${r.ms} ms`);
});

test('client abort mid-script: the slot is freed and PHP sees the connection closed', async (t) => {
  const one = await ownFpm(t, { maxChildren: 1 });
  const up = upstream(t, { maxConnections: 1 }, silentLogger(), one.address);
  const marker = path.join(tmp, 'abort-marker.json');
  const ac = new AbortController();
  const aborted = run(up, request(`/abort.php?marker=${encodeURIComponent(marker)}`, { signal: ac.signal }), {
    onData: (_ctl, chunk) => {
      if (chunk.toString().includes('started')) setTimeout(() => ac.abort(), 100);
    },
  });
  const r = await aborted;
  assertError(r, 'M2GW_CLIENT_GONE', 'headers-sent');
  const t0 = Date.now();
  const next = await run(up, request('/hello.php'));
  assertOk(next);
  const waited = Date.now() - t0;
  assert.ok(waited < 1500, `the only PHP child was free again after ${waited} ms (the script would run 5 s)`);
  for (let i = 0; i < 100 && !fs.existsSync(marker); i++) await sleep(20);
  const seen = JSON.parse(fs.readFileSync(marker, 'utf8')) as { aborted: number; status: number; seconds: number };
  assert.equal(seen.aborted, 1, 'connection_aborted() in the shutdown function');
  assert.ok(seen.seconds < 2, `script stopped after ${seen.seconds} s`);
});

test('PHP-FPM ignores FCGI_ABORT_REQUEST while a script runs (why an abort closes the connection)', { timeout: 5000 }, async () => {
  const sock = net.connect({ host: fpm.address.split(':')[0]!, port: Number(fpm.address.split(':')[1]) });
  const stdout: Buffer[] = [];
  let end: { protocolStatus: number } | null = null;
  const decoder = new RecordDecoder({
    onStdout: (_id, d) => stdout.push(Buffer.from(d)),
    onStderr: () => {},
    onEndRequest: (_id, _app, protocolStatus) => (end = { protocolStatus }),
  });
  sock.on('data', (c: Buffer) => decoder.push(c));
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  const t0 = Date.now();
  sock.write(
    encodeRequestHead({
      recordId: 1,
      keepConn: true,
      stdin: null,
      params: [
        ['SCRIPT_FILENAME', path.join(docroot, 'sleep.php')],
        ['REQUEST_METHOD', 'GET'],
        ['QUERY_STRING', 'ms=600'],
      ],
    }),
  );
  await sleep(100);
  sock.write(encodeAbortRequest(1));
  await closed;
  const ms = Date.now() - t0;
  assert.ok(end !== null, 'PHP still sent END_REQUEST');
  assert.equal((end as { protocolStatus: number }).protocolStatus, ProtocolStatus.REQUEST_COMPLETE);
  assert.match(Buffer.concat(stdout).toString(), /slept$/, 'the script ran to its end');
  assert.ok(ms >= 550, `the script was not cut short (${ms} ms)`);
});
