/**
 * End to end: real Mongrel2 → m2gw → real PHP-FPM (2 children), with real HTTP clients.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startChain, type Chain, type LogRecord } from './gateway-support.js';
import { startPhpFpm, type PhpFpm } from '../harness/php-fpm.js';
import { rawRequest, request } from '../harness/http-client.js';
import { waitFor } from '../harness/wait.js';
import { repoRoot } from '../unit/fixtures.js';

const DOCROOT = path.join(repoRoot, 'test/fixtures/php');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const json = (b: Buffer): Record<string, unknown> => JSON.parse(b.toString()) as Record<string, unknown>;
type ServerVars = Record<string, string>;

describe('PHP-FPM through a real Mongrel2', () => {
  let fpm: PhpFpm;
  // A pool of its own for the front-controller upstream: every kept-alive FastCGI connection
  // pins a PHP-FPM child, so two upstreams sharing the 2-child pool would starve each other.
  let frontFpm: PhpFpm;
  let chain: Chain;

  before(async () => {
    fpm = await startPhpFpm({
      maxChildren: 2,
      phpAdminValues: { post_max_size: '64M', upload_max_filesize: '64M', output_buffering: '0' },
    });
    frontFpm = await startPhpFpm({ maxChildren: 1 });
    chain = await startChain({
      toml: `
[upstream.php]
type = "fastcgi"
address = "${fpm.address}"
document_root = "${DOCROOT}"
serve_static = true
deny = ["/private/"]
max_connections = 2
queue_timeout = "20s"
response_timeout = "1500ms"
params = { M2GW_EXTRA = "from-config" }

[upstream.front]
type = "fastcgi"
address = "${frontFpm.address}"
document_root = "${DOCROOT}"
front_controller = "front/router.php"
max_connections = 1

[[route]]
prefix = "/php/"
upstream = "php"
strip_prefix = true

[[route]]
prefix = "/app/"
upstream = "front"
strip_prefix = true
`,
    });
  });

  after(async () => {
    await chain.stop();
    await fpm.stop();
    await frontFpm.stop();
  });

  test('$_SERVER for a plain script, with $_GET and extra params', async () => {
    const res = await request(`${chain.url}/php/server.php?a=1&b=two%20words`, { headers: { 'X-Multi': 'v', Proxy: 'http://evil' } });
    assert.equal(res.status, 200);
    const body = json(res.body) as { server: ServerVars; get: Record<string, string> };
    const s = body.server;
    assert.equal(s.SCRIPT_FILENAME, path.join(DOCROOT, 'server.php'));
    assert.equal(s.SCRIPT_NAME, '/php/server.php');
    assert.equal(s.REQUEST_URI, '/php/server.php?a=1&b=two%20words');
    assert.equal(s.QUERY_STRING, 'a=1&b=two%20words');
    assert.equal(s.REQUEST_METHOD, 'GET');
    assert.equal(s.DOCUMENT_ROOT, DOCROOT);
    assert.equal(s.SERVER_PROTOCOL, 'HTTP/1.1');
    assert.equal(s.GATEWAY_INTERFACE, 'CGI/1.1');
    assert.equal(s.REMOTE_ADDR, '127.0.0.1');
    assert.equal(s.SERVER_PORT, String(chain.m2.port));
    assert.equal(s.REDIRECT_STATUS, '200');
    assert.equal(s.HTTP_X_MULTI, 'v');
    assert.equal(s.HTTP_PROXY, undefined, 'httpoxy: Proxy header never becomes HTTP_PROXY');
    assert.equal(s.M2GW_EXTRA, 'from-config');
    assert.deepEqual(body.get, { a: '1', b: 'two words' });
  });

  test('PATH_INFO: /x.php/extra/path', async () => {
    const s = (json((await request(`${chain.url}/php/server.php/extra/path?q=1`)).body) as { server: ServerVars }).server;
    assert.equal(s.SCRIPT_NAME, '/php/server.php');
    assert.equal(s.PATH_INFO, '/extra/path');
    assert.equal(s.PATH_TRANSLATED, path.join(DOCROOT, 'extra/path'));
    assert.equal(s.REQUEST_URI, '/php/server.php/extra/path?q=1');
  });

  test('directory index, and the front controller for what is not a file', async () => {
    const dir = await request(`${chain.url}/php/sub/`);
    assert.equal(dir.status, 200);
    assert.match(dir.body.toString(), /sub/);
    const front = json((await request(`${chain.url}/app/blog/2024/hello?page=2`)).body);
    assert.equal(front.router, true);
    assert.equal(front.REQUEST_URI, '/app/blog/2024/hello?page=2');
    assert.equal(front.QUERY_STRING, 'page=2');
  });

  test('urlencoded POST fills $_POST', async () => {
    const res = await request(`${chain.url}/php/server.php`, {
      method: 'POST',
      body: 'name=John+Doe&msg=a%26b',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const body = json(res.body) as { post: Record<string, string>; server: ServerVars };
    assert.deepEqual(body.post, { name: 'John Doe', msg: 'a&b' });
    assert.equal(body.server.CONTENT_LENGTH, '23');
    assert.equal(body.server.CONTENT_TYPE, 'application/x-www-form-urlencoded');
  });

  test('multipart POST with a 20 MiB file (Mongrel2 async upload) reaches $_FILES intact', async () => {
    const file = randomBytes(20 * 1024 * 1024);
    const boundary = '----m2gw' + randomBytes(8).toString('hex');
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="upload"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      file,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await request(`${chain.url}/php/files.php`, {
      method: 'POST',
      body,
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      timeoutMs: 30_000,
    });
    assert.equal(res.status, 200, res.body.toString().slice(0, 300));
    const out = json(res.body) as { post: Record<string, string>; files: Record<string, { size: number; sha256: string; error: number }> };
    assert.deepEqual(out.post, { field: 'value' });
    assert.equal(out.files.upload!.error, 0);
    assert.equal(out.files.upload!.size, file.length);
    assert.equal(out.files.upload!.sha256, sha(file));
  });

  test('cookies and a session across two requests', async () => {
    const first = await request(`${chain.url}/php/session.php`);
    const cookie = (first.headers['set-cookie'] ?? [])[0]!.split(';')[0]!;
    assert.match(first.body.toString(), /^n=1 /);
    const second = await request(`${chain.url}/php/session.php`, { headers: { cookie } });
    assert.match(second.body.toString(), /^n=2 /);
    const two = await request(`${chain.url}/php/cookies.php`);
    assert.equal((two.headers['set-cookie'] ?? []).length, 2, 'two Set-Cookie kept separate');
  });

  test("header('Location: ...') becomes a 302", async () => {
    const res = await request(`${chain.url}/php/redirect.php`);
    assert.equal(res.status, 302);
    assert.equal(res.headers.location, '/elsewhere?from=redirect');
  });

  test('a missing script is 404 without reaching PHP; static files are served, denied ones are not', async () => {
    const logBefore = readFileSync(fpm.errorLog, 'utf8').length;
    const missing = await request(`${chain.url}/php/nope.php`);
    assert.equal(missing.status, 404);
    assert.equal(readFileSync(fpm.errorLog, 'utf8').length, logBefore, 'PHP-FPM never saw it');
    const css = await request(`${chain.url}/php/style.css`);
    assert.equal(css.status, 200);
    assert.match(String(css.headers['content-type']), /^text\/css/);
    assert.ok(css.headers.etag);
    const again = await request(`${chain.url}/php/style.css`, { headers: { 'if-none-match': String(css.headers.etag) } });
    assert.equal(again.status, 304);
    const denied = await request(`${chain.url}/php/private/secret.php`);
    assert.ok(denied.status === 403 || denied.status === 404, `denied: ${denied.status}`);
    const source = await request(`${chain.url}/php/evil.php.jpg`);
    assert.doesNotMatch(source.body.toString(), /<\?php[\s\S]*system|phpinfo/, 'never executed, never leaks source as script output');
  });

  test('traversal attempts never escape the document root', async () => {
    for (const p of ['/php/../../../../etc/passwd', '/php/%2e%2e/%2e%2e/etc/passwd', '/php/sub/..%2f..%2fserver.php', '/php/server.php%00.txt', '/php/..%5c..%5cetc/passwd']) {
      const raw = await rawRequest(chain.m2.port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { readUntil: 'close', timeoutMs: 5000 });
      const text = raw.toString('latin1');
      assert.match(text, /^HTTP\/1\.1 (400|403|404)/, `${p}: ${text.slice(0, 40)}`);
      assert.doesNotMatch(text, /root:x:0:0/);
    }
  });

  test('200 MiB streamed output arrives complete', async () => {
    const res = await new Promise<{ bytes: number; status: number }>((resolve, reject) => {
      http.get(`${chain.url}/php/big.php?kib=${200 * 1024}`, (r) => {
        let bytes = 0;
        r.on('data', (c: Buffer) => (bytes += c.length));
        r.on('end', () => resolve({ bytes, status: r.statusCode ?? 0 }));
        r.on('error', reject);
      });
    });
    assert.equal(res.status, 200);
    assert.equal(res.bytes, 200 * 1024 * 1024);
  });

  test('flush() chunks arrive over time, not all at the end', async () => {
    await request(`${chain.url}/php/hello.php`); // a warm child and connection: time only the stream
    const arrivals: number[] = [];
    const t0 = Date.now();
    await new Promise<void>((resolve, reject) => {
      http.get(`${chain.url}/php/flush.php?n=3&ms=300`, (r) => {
        r.on('data', () => arrivals.push(Date.now() - t0));
        r.on('end', resolve);
        r.on('error', reject);
      });
    });
    assert.ok(arrivals.length >= 3, `chunks: ${arrivals.length}`);
    assert.ok(arrivals[0]! < 300, `first chunk at ${arrivals[0]} ms (the script takes 600 ms)`);
    assert.ok(arrivals.at(-1)! - arrivals[0]! >= 450, `spread ${arrivals.at(-1)! - arrivals[0]!} ms`);
  });

  test('a PHP fatal error is a 500 and stderr is logged with the request id', async () => {
    const res = await request(`${chain.url}/php/fatal.php`);
    assert.equal(res.status, 500);
    const err = await request(`${chain.url}/php/stderr.php`);
    assert.equal(err.status, 200);
    const stderrLine = (): LogRecord | undefined => chain.logs.find((l) => l.message === 'php stderr' && JSON.stringify(l).includes('m2gw-stderr-marker'));
    await waitFor(() => stderrLine() !== undefined, 2000);
    const id = stderrLine()!['request_id'];
    assert.equal(typeof id, 'string');
    // One key for the request id in every line: a search by it finds the access line too.
    await waitFor(() => chain.logs.some((l) => l['type'] === 'access' && l['request_id'] === id), 2000);
  });

  test('50 concurrent clients against a 2-child pool are all answered, none 502', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => request(`${chain.url}/php/sleep.php?ms=20&i=${i}`, { timeoutMs: 30_000 })));
    const statuses = results.map((r) => r.status);
    assert.deepEqual([...new Set(statuses)], [200]);
  });

  test('a client that disconnects ends the PHP request and frees the pool slot', async () => {
    const marker = path.join(os.tmpdir(), `m2gw-abort-${process.pid}-${Date.now()}.json`);
    rmSync(marker, { force: true });
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${chain.url}/php/abort.php?marker=${encodeURIComponent(marker)}`, (r) => {
        r.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      setTimeout(() => reject(new Error('no first chunk')), 3000);
    });
    await waitFor(() => existsSync(marker), 3000);
    const seen = JSON.parse(readFileSync(marker, 'utf8')) as { aborted: number; seconds: number };
    assert.equal(seen.aborted, 1);
    assert.ok(seen.seconds < 3, `PHP ran ${seen.seconds} s`);
    // Both slots free again: two parallel requests are served at once.
    const [a, b] = await Promise.all([request(`${chain.url}/php/hello.php`), request(`${chain.url}/php/hello.php`)]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    rmSync(marker, { force: true });
  });

  // Last but one: the PHP child keeps sleeping after the 504 (PHP only notices a closed
  // connection when it writes), so it would hold one of the two children for the next test.
  test('a script sleeping past response_timeout gets 504', async () => {
    const res = await request(`${chain.url}/php/sleep.php?ms=2000`);
    assert.equal(res.status, 504);
  });

  test('PHP-FPM stopped → 502', async () => {
    await fpm.stop();
    const res = await request(`${chain.url}/php/hello.php`);
    assert.equal(res.status, 502);
  });
});
