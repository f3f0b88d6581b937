import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientHeaders, readRequestLine, requestIdFor } from '../../../src/gateway/request-builder.js';
import { parseRequest } from '../../../src/mongrel2/request.js';
import { fixture } from '../fixtures.js';

const load = (name: string) => parseRequest(fixture(name));

test('request line from a real fixture: raw URI kept, query split, keep-alive default for 1.1', () => {
  const line = readRequestLine(load('get-query.json-protocol.bin'));
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/json/get');
  assert.equal(line.uri, '/json/get?a=1&b=two%20words');
  assert.equal(line.query, 'a=1&b=two%20words');
  assert.equal(line.hasQuery, true);
  assert.equal(line.keepAlive, true);
  assert.equal(line.remoteAddr, '127.0.0.1');
  assert.equal(line.host, '127.0.0.1');
  assert.equal(line.port, 6767);
});

test('HTTP/1.0 and Connection: close turn keep-alive off', () => {
  assert.equal(readRequestLine(load('http10-request.json-protocol.bin')).keepAlive, false);
  assert.equal(readRequestLine(load('http10-request.json-protocol.bin')).http10, true);
  assert.equal(readRequestLine(load('connection-close-request.json-protocol.bin')).keepAlive, false);
});

test('client headers: Mongrel2 keys and hop-by-hop removed, lists expanded in order', () => {
  for (const proto of ['json', 'tnet']) {
    const h = clientHeaders(load(`dup-headers.${proto}-protocol.bin`).headers);
    const names = h.map(([n]) => n);
    assert.ok(!names.some((n) => /[A-Z]/.test(n)), 'no Mongrel2 keys');
    assert.ok(!names.includes('x-forwarded-for'));
    assert.deepEqual(h.filter(([n]) => n === 'x-dup').map(([, v]) => v), ['a', 'b']);
    assert.deepEqual(h.filter(([n]) => n === 'cookie').map(([, v]) => v), ['c1=1', 'c2=2']);
  }
});

test('upload and expect headers are never forwarded', () => {
  const h = clientHeaders(load('upload-done.json-protocol.bin').headers);
  assert.ok(!h.some(([n]) => n.startsWith('x-mongrel2-upload')));
  assert.ok(!h.some(([n]) => n === 'content-length'));
  const e = clientHeaders(load('expect-100-continue.json-protocol.bin').headers);
  assert.ok(!e.some(([n]) => n === 'expect'));
});

test('request ids: a sane incoming one is kept, anything else is replaced', () => {
  const mk = (v?: string): Record<string, string> => (v === undefined ? {} : { 'x-request-id': v });
  assert.equal(requestIdFor(mk('abc-123')), 'abc-123');
  const minted = requestIdFor(mk('bad id with spaces'));
  assert.notEqual(minted, 'bad id with spaces');
  assert.notEqual(requestIdFor(mk()), requestIdFor(mk()));
});

test('client claims about proxies and addresses are dropped (Proxy, Forwarded, X-Real-IP, every X-Forwarded-*)', () => {
  const h = clientHeaders({
    METHOD: 'GET',
    proxy: 'http://evil.test',
    forwarded: 'for=10.0.0.1;proto=https',
    'x-real-ip': '10.0.0.1',
    'x-forwarded-for': '10.0.0.1',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'evil.test',
    'x-forwarded-ssl': 'on',
    'x-forwarded-prefix': '/admin',
    'x-forwardedness': 'kept',
    accept: '*/*',
  });
  assert.deepEqual(h, [['x-forwardedness', 'kept'], ['accept', '*/*']]);
});
