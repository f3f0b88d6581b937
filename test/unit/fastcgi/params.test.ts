import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildParams, mountPrefix, utf8ToByteString } from '../../../src/upstream/fastcgi/params.js';
import type { ParamsContext, ScriptTarget } from '../../../src/upstream/fastcgi/params.js';
import type { UpstreamRequest } from '../../../src/upstream/upstream.js';

function request(over: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return {
    id: 'req-1',
    method: 'GET',
    path: '/x.php',
    query: 'a=1',
    hasQuery: true,
    originalUri: '/x.php?a=1',
    routePrefix: '/',
    httpVersion: 'HTTP/1.1',
    headers: [
      ['host', 'example.test:8080'],
      ['user-agent', 'test'],
    ],
    host: 'example.test',
    hostHeader: 'example.test:8080',
    remoteAddr: '192.0.2.7',
    scheme: 'http',
    serverPort: 8080,
    body: null,
    preserveHost: true,
    signal: new AbortController().signal,
    ...over,
  };
}

const script: ScriptTarget = { scriptFilename: '/srv/www/x.php', scriptName: '/x.php', pathInfo: '' };
const ctx: ParamsContext = { documentRoot: '/srv/www', serverSoftware: 'm2gw/1.2.3', extra: [] };

function params(req: UpstreamRequest, s: ScriptTarget = script, c: ParamsContext = ctx): Map<string, string> {
  const list = buildParams(req, s, c);
  const names = list.map(([n]) => n);
  assert.equal(new Set(names).size, names.length, 'no param name twice');
  return new Map(list);
}

test('params: the CGI/1.1 variables for a plain GET', () => {
  const p = params(request());
  const expected: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'm2gw/1.2.3',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'example.test',
    SERVER_PORT: '8080',
    REQUEST_METHOD: 'GET',
    REQUEST_URI: '/x.php?a=1',
    QUERY_STRING: 'a=1',
    DOCUMENT_ROOT: '/srv/www',
    SCRIPT_FILENAME: '/srv/www/x.php',
    SCRIPT_NAME: '/x.php',
    REMOTE_ADDR: '192.0.2.7',
    REDIRECT_STATUS: '200',
    HTTP_HOST: 'example.test:8080',
    HTTP_USER_AGENT: 'test',
  };
  for (const [k, v] of Object.entries(expected)) assert.equal(p.get(k), v, k);
  for (const absent of ['PATH_INFO', 'PATH_TRANSLATED', 'HTTPS', 'CONTENT_TYPE', 'CONTENT_LENGTH', 'REMOTE_PORT']) {
    assert.equal(p.has(absent), false, `${absent} absent`);
  }
});

test('params: PATH_INFO and PATH_TRANSLATED only when there is a path info', () => {
  const p = params(request({ path: '/x.php/a/b', originalUri: '/x.php/a/b' }), { ...script, pathInfo: '/a/b' });
  assert.equal(p.get('PATH_INFO'), '/a/b');
  assert.equal(p.get('PATH_TRANSLATED'), '/srv/www/a/b');
  assert.equal(p.get('SCRIPT_NAME'), '/x.php');
  assert.equal(p.get('REQUEST_URI'), '/x.php/a/b');
});

test('params: HTTPS=on for https', () => {
  assert.equal(params(request({ scheme: 'https' })).get('HTTPS'), 'on');
});

test('params: SERVER_NAME falls back when the client sent no Host', () => {
  assert.equal(params(request({ host: '' })).get('SERVER_NAME'), 'localhost');
});

test('params: request headers become HTTP_*; repeats joined with ", ", cookies with "; "', () => {
  const p = params(
    request({
      headers: [
        ['accept', 'text/html'],
        ['x-multi', 'one'],
        ['cookie', 'a=1'],
        ['x-multi', 'two'],
        ['cookie', 'b=2'],
        ['x-forwarded-for', '10.0.0.1'],
      ],
    }),
  );
  assert.equal(p.get('HTTP_ACCEPT'), 'text/html');
  assert.equal(p.get('HTTP_X_MULTI'), 'one, two');
  assert.equal(p.get('HTTP_COOKIE'), 'a=1; b=2');
  assert.equal(p.get('HTTP_X_FORWARDED_FOR'), '10.0.0.1');
});

test('params: HTTP_X_REQUEST_ID is the request id; client X-Forwarded-Proto/-Host are dropped', () => {
  const p = params(
    request({
      headers: [
        ['x-request-id', 'client-chosen'],
        ['x-forwarded-proto', 'https'],
        ['x-forwarded-host', 'evil.test'],
      ],
    }),
  );
  assert.equal(p.get('HTTP_X_REQUEST_ID'), 'req-1');
  assert.equal(p.has('HTTP_X_FORWARDED_PROTO'), false);
  assert.equal(p.has('HTTP_X_FORWARDED_HOST'), false);
});

test('params: httpoxy — a Proxy request header never becomes HTTP_PROXY', () => {
  const p = params(request({ headers: [['proxy', 'http://evil.test:1234']] }));
  assert.equal(p.has('HTTP_PROXY'), false);
});

test('params: header names with "_" or odd characters are dropped (no HTTP_* spoofing)', () => {
  const p = params(
    request({
      headers: [
        ['x-forwarded-for', 'real'],
        ['x_forwarded_for', 'spoofed'],
        ['x.dot', 'dropped'],
      ],
    }),
  );
  assert.equal(p.get('HTTP_X_FORWARDED_FOR'), 'real');
  assert.deepEqual([...p.keys()].filter((k) => k.startsWith('HTTP_X_') && k !== 'HTTP_X_REQUEST_ID'), ['HTTP_X_FORWARDED_FOR']);
});

test('params: Content-Type and Content-Length become CONTENT_*, never HTTP_CONTENT_*', () => {
  const body = Buffer.from('a=1&b=2');
  const p = params(
    request({
      method: 'POST',
      headers: [
        ['content-type', 'application/x-www-form-urlencoded'],
        ['content-length', '999'],
      ],
      body: { kind: 'buffer', data: body },
    }),
  );
  assert.equal(p.get('CONTENT_TYPE'), 'application/x-www-form-urlencoded');
  assert.equal(p.get('CONTENT_LENGTH'), String(body.length), 'the length of the body we send, not the header');
  assert.equal(p.has('HTTP_CONTENT_TYPE'), false);
  assert.equal(p.has('HTTP_CONTENT_LENGTH'), false);
});

test('params: CONTENT_LENGTH for a file body is its length; an empty body is 0', () => {
  assert.equal(params(request({ body: { kind: 'file', path: '/tmp/upload.X', length: 123456789 } })).get('CONTENT_LENGTH'), '123456789');
  assert.equal(params(request({ body: { kind: 'buffer', data: Buffer.alloc(0) } })).get('CONTENT_LENGTH'), '0');
});

test('params: config params override and add', () => {
  const p = params(request(), script, {
    ...ctx,
    extra: [
      ['SERVER_NAME', 'canonical.test'],
      ['APP_ENV', 'test'],
    ],
  });
  assert.equal(p.get('SERVER_NAME'), 'canonical.test');
  assert.equal(p.get('APP_ENV'), 'test');
});

test('params: SCRIPT_NAME gets the stripped route prefix back', () => {
  const stripped = request({ path: '/x.php', originalUri: '/app/x.php?a=1', routePrefix: '/app/' });
  assert.equal(params(stripped).get('SCRIPT_NAME'), '/app/x.php');
  assert.equal(params(stripped).get('SCRIPT_FILENAME'), '/srv/www/x.php');
  assert.equal(params(stripped).get('REQUEST_URI'), '/app/x.php?a=1', 'REQUEST_URI is what the client sent');
  const notStripped = request({ path: '/app/x.php', originalUri: '/app/x.php', routePrefix: '/app/' });
  assert.equal(params(notStripped, { ...script, scriptName: '/app/x.php' }).get('SCRIPT_NAME'), '/app/x.php');
});

test('mountPrefix: table', () => {
  const table: Array<[string, string, string, string]> = [
    // path, originalUri, routePrefix → prefix
    ['/x.php', '/x.php', '/', ''],
    ['/x.php', '/x.php?q', '/', ''],
    ['/x.php', '/app/x.php', '/app/', '/app'],
    ['/x.php', '/app/x.php?q=/x.php', '/app', '/app'],
    ['/', '/app', '/app', '/app'],
    ['/x.php', '/x.php', '/app/', ''],
  ];
  for (const [p, uri, prefix, want] of table) {
    assert.equal(mountPrefix({ path: p, originalUri: uri, routePrefix: prefix }), want, `${p} ${uri} ${prefix}`);
  }
});

test('utf8ToByteString: UTF-8 bytes as a latin1 string; ASCII unchanged', () => {
  assert.equal(utf8ToByteString('/srv/www'), '/srv/www');
  assert.equal(utf8ToByteString('/srv/caf\u00e9'), '/srv/caf\u00c3\u00a9');
});
