import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { M2gwError } from '../../../src/errors.js';
import { contentTypeFor, etagFor, etagMatches, parseRange, serveStaticFile } from '../../../src/upstream/fastcgi/static-files.js';
import type { HeaderList, ResponseController, ResponseSink, UpstreamRequest } from '../../../src/upstream/upstream.js';

/** CPU time of this process in ms: a loaded machine's waits do not count against the parser. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

test('contentTypeFor: the built-in table, octet-stream otherwise', () => {
  const table: Array<[string, string]> = [
    ['/a.html', 'text/html; charset=utf-8'],
    ['/a.CSS', 'text/css; charset=utf-8'],
    ['/a.js', 'text/javascript; charset=utf-8'],
    ['/a.mjs', 'text/javascript; charset=utf-8'],
    ['/a.json', 'application/json'],
    ['/a.svg', 'image/svg+xml'],
    ['/a.png', 'image/png'],
    ['/a.jpg', 'image/jpeg'],
    ['/a.gif', 'image/gif'],
    ['/a.webp', 'image/webp'],
    ['/a.ico', 'image/x-icon'],
    ['/a.woff', 'font/woff'],
    ['/a.woff2', 'font/woff2'],
    ['/a.ttf', 'font/ttf'],
    ['/a.txt', 'text/plain; charset=utf-8'],
    ['/a.xml', 'application/xml'],
    ['/a.pdf', 'application/pdf'],
    ['/a.wasm', 'application/wasm'],
    ['/a.js.map', 'application/json'],
    ['/a.unknown', 'application/octet-stream'],
    ['/noext', 'application/octet-stream'],
    ['/.hidden', 'application/octet-stream'],
    ['/dir.d/file', 'application/octet-stream'],
  ];
  for (const [f, t] of table) assert.equal(contentTypeFor(f), t, f);
});

test('parseRange: one byte range, table', () => {
  const size = 1000;
  const table: Array<[string, ReturnType<typeof parseRange>]> = [
    ['bytes=0-99', { kind: 'partial', start: 0, end: 99 }],
    ['bytes=100-', { kind: 'partial', start: 100, end: 999 }],
    ['bytes=-100', { kind: 'partial', start: 900, end: 999 }],
    ['bytes=-5000', { kind: 'partial', start: 0, end: 999 }],
    ['bytes=990-5000', { kind: 'partial', start: 990, end: 999 }],
    ['bytes=999-999', { kind: 'partial', start: 999, end: 999 }],
    ['bytes=1000-', { kind: 'unsatisfiable' }],
    ['bytes=-0', { kind: 'unsatisfiable' }],
    ['bytes=5-1', { kind: 'full' }],
    ['bytes=0-1,5-6', { kind: 'full' }],
    ['items=0-1', { kind: 'full' }],
    ['bytes=-', { kind: 'full' }],
    ['garbage', { kind: 'full' }],
  ];
  for (const [h, want] of table) assert.deepEqual(parseRange(h, size), want, h);
  assert.deepEqual(parseRange('bytes=-1', 0), { kind: 'unsatisfiable' });
  assert.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
});

test('parseRange: optional whitespace, case, and what stays a full response', () => {
  assert.deepEqual(parseRange(' BYTES = 1 - 2 ', 10), { kind: 'partial', start: 1, end: 2 });
  assert.deepEqual(parseRange('bytes=\t1-\t', 10), { kind: 'partial', start: 1, end: 9 });
  for (const h of ['bytes=1-2x', 'bytes1-2', 'bytes=1 2', 'bytes=--1', 'bytes=+1-2', 'bytes=1-2,', 'bytes=\u00a01-2', 'bytesx=1-2']) {
    assert.deepEqual(parseRange(h, 10), { kind: 'full' }, h);
  }
});

// Absolute bounds, kept far from what linear code needs (well under 10 ms each here) so a loaded
// machine (GC, two cores shared by many test runs) cannot trip them, and far below what the old
// superlinear code took, so they still fail on it by an order of magnitude or more.
test('parseRange is linear: 256 KiB of spaces after "bytes=" parses at once (the regex took minutes)', () => {
  // The old regex took 88 s on 256 KiB of spaces.
  for (const h of ['bytes=' + ' '.repeat(256 * 1024), 'bytes=' + ' '.repeat(256 * 1024) + 'x', 'bytes=1' + ' '.repeat(256 * 1024) + '-x', ' '.repeat(256 * 1024) + 'x']) {
    const t0 = cpuMs();
    assert.deepEqual(parseRange(h, 10), { kind: 'full' });
    const ms = cpuMs() - t0;
    assert.ok(ms < 5_000, `${ms.toFixed(1)} ms`);
  }
});

test('etagMatches is linear in If-None-Match', () => {
  const etag = etagFor({ size: 255, mtimeMs: 4096.7 });
  // 1 MiB: a scan that restarts per element or re-slices the rest (quadratic) does ~10^11-10^12
  // steps here, minutes; linear scanning takes milliseconds.
  for (const h of [' '.repeat(1 << 20), ','.repeat(1 << 20), 'W/'.repeat(1 << 19), '"a",'.repeat(1 << 18) + 'W/"ff-1000"']) {
    const t0 = cpuMs();
    etagMatches(h, etag);
    const ms = cpuMs() - t0;
    assert.ok(ms < 5_000, `${ms.toFixed(1)} ms`);
  }
});

test('etag: W/"size-mtime" and weak If-None-Match comparison', () => {
  const etag = etagFor({ size: 255, mtimeMs: 4096.7 });
  assert.equal(etag, 'W/"ff-1000"');
  assert.ok(etagMatches('W/"ff-1000"', etag));
  assert.ok(etagMatches('"ff-1000"', etag));
  assert.ok(etagMatches('"x", W/"ff-1000"', etag));
  assert.ok(etagMatches('*', etag));
  assert.ok(!etagMatches('W/"ff-1001"', etag));
});

// --- serving through a sink -------------------------------------------------------------------

let dir = '';
let file = '';
let big = '';
const content = 'Hello static world\n';

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-static-'));
  file = path.join(dir, 'page.txt');
  fs.writeFileSync(file, content);
  fs.utimesSync(file, new Date('2024-01-02T03:04:05Z'), new Date('2024-01-02T03:04:05Z'));
  big = path.join(dir, 'big.bin');
  const b = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = i & 0xff;
  fs.writeFileSync(big, b);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Result {
  status: number;
  headers: HeaderList;
  body: Buffer;
  error: M2gwError | null;
}

function request(method: string, headers: HeaderList = [], signal = new AbortController().signal): UpstreamRequest {
  return {
    id: 'r',
    method,
    path: '/page.txt',
    query: '',
    hasQuery: false,
    originalUri: '/page.txt',
    routePrefix: '/',
    httpVersion: 'HTTP/1.1',
    headers,
    host: 'h',
    hostHeader: 'h',
    remoteAddr: '127.0.0.1',
    scheme: 'http',
    serverPort: 80,
    body: null,
    preserveHost: true,
    signal,
  };
}

function serve(req: UpstreamRequest, f = file, hooks: { onData?: (ctl: ResponseController, n: number) => void } = {}): Promise<Result> {
  return new Promise((resolve) => {
    const r: Result = { status: 0, headers: [], body: Buffer.alloc(0), error: null };
    const chunks: Buffer[] = [];
    let calls = 0;
    const sink: ResponseSink = {
      onResponseStart(_ctl, status, headers) {
        assert.equal(calls++, 0, 'start comes first, once');
        r.status = status;
        r.headers = headers;
      },
      onResponseData(ctl, chunk) {
        chunks.push(chunk);
        hooks.onData?.(ctl, chunks.length);
      },
      onResponseEnd() {
        r.body = Buffer.concat(chunks);
        resolve(r);
      },
      onResponseError(err) {
        r.error = err;
        r.body = Buffer.concat(chunks);
        resolve(r);
      },
    };
    serveStaticFile(req, f, sink);
  });
}

const h = (r: Result, name: string): string | undefined => r.headers.find(([n]) => n === name)?.[1];

test('static: GET sends the file with type, length, validators', async () => {
  const r = await serve(request('GET'));
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), content);
  assert.equal(h(r, 'content-type'), 'text/plain; charset=utf-8');
  assert.equal(h(r, 'content-length'), String(content.length));
  assert.equal(h(r, 'last-modified'), 'Tue, 02 Jan 2024 03:04:05 GMT');
  assert.equal(h(r, 'etag'), etagFor(fs.statSync(file)));
  assert.equal(h(r, 'accept-ranges'), 'bytes');
});

test('static: HEAD sends the head only', async () => {
  const r = await serve(request('HEAD'));
  assert.equal(r.status, 200);
  assert.equal(h(r, 'content-length'), String(content.length));
  assert.equal(r.body.length, 0);
});

test('static: other methods are 405 with Allow', async () => {
  for (const m of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    const r = await serve(request(m));
    assert.equal(r.status, 405, m);
    assert.equal(h(r, 'allow'), 'GET, HEAD');
  }
});

test('static: If-None-Match and If-Modified-Since give 304; If-None-Match wins', async () => {
  const etag = etagFor(fs.statSync(file));
  assert.equal((await serve(request('GET', [['if-none-match', etag]]))).status, 304);
  assert.equal((await serve(request('GET', [['if-none-match', '"other"']]))).status, 200);
  assert.equal((await serve(request('GET', [['if-modified-since', 'Tue, 02 Jan 2024 03:04:05 GMT']]))).status, 304);
  assert.equal((await serve(request('GET', [['if-modified-since', 'Mon, 01 Jan 2024 00:00:00 GMT']]))).status, 200);
  assert.equal((await serve(request('GET', [['if-modified-since', 'not a date']]))).status, 200);
  const both = await serve(request('GET', [['if-none-match', '"other"'], ['if-modified-since', 'Tue, 02 Jan 2024 03:04:05 GMT']]));
  assert.equal(both.status, 200, 'If-Modified-Since is ignored when If-None-Match is present');
  const nm = await serve(request('GET', [['if-none-match', etag]]));
  assert.equal(nm.body.length, 0);
  assert.equal(h(nm, 'etag'), etag);
});

test('static: a single range is 206 with Content-Range; unsatisfiable is 416', async () => {
  const r = await serve(request('GET', [['range', 'bytes=6-11']]));
  assert.equal(r.status, 206);
  assert.equal(r.body.toString(), 'static');
  assert.equal(h(r, 'content-range'), `bytes 6-11/${content.length}`);
  assert.equal(h(r, 'content-length'), '6');
  const tail = await serve(request('GET', [['range', 'bytes=-6']]));
  assert.equal(tail.body.toString(), 'world\n');
  const bad = await serve(request('GET', [['range', 'bytes=500-']]));
  assert.equal(bad.status, 416);
  assert.equal(h(bad, 'content-range'), `bytes */${content.length}`);
  const ignored = await serve(request('GET', [['range', 'bytes=0-1'], ['if-range', '"stale"']]));
  assert.equal(ignored.status, 200, 'If-Range that does not match: the whole file');
  const headRange = await serve(request('HEAD', [['range', 'bytes=0-1']]));
  assert.equal(headRange.status, 200);
});

test('static: a missing file is a 404 error', async () => {
  const r = await serve(request('GET'), path.join(dir, 'missing.txt'));
  assert.equal(r.error?.code, 'M2GW_NOT_FOUND');
});

test('static: pause() from the sink stops the stream until resume()', async () => {
  let paused = false;
  let dataWhilePaused = 0;
  const r = await serve(request('GET'), big, {
    onData(ctl, n) {
      if (paused) dataWhilePaused++;
      if (n === 1) {
        paused = true;
        ctl.pause();
        setTimeout(() => {
          paused = false;
          ctl.resume();
        }, 100);
      }
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 1024 * 1024);
  assert.equal(r.body[12345], 12345 & 0xff);
  assert.equal(dataWhilePaused, 0, 'no data between pause and resume');
});

test('static: a client abort mid-stream ends with M2GW_CLIENT_GONE', async () => {
  const ac = new AbortController();
  const r = await serve(request('GET', [], ac.signal), big, {
    onData(ctl, n) {
      if (n === 1) {
        ctl.pause();
        ac.abort();
      }
    },
  });
  assert.equal(r.error?.code, 'M2GW_CLIENT_GONE');
  assert.equal(r.error?.phase, 'headers-sent');
});
