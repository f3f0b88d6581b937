import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, dotDotSegment, upstreamPath } from '../../../src/gateway/router.js';
import type { RouteConfig } from '../../../src/config/schema.js';
import type { Upstream } from '../../../src/upstream/upstream.js';

const up = (name: string): Upstream => ({ name }) as unknown as Upstream;
const route = (prefix: string, upstream: string, extra: Partial<RouteConfig> = {}): RouteConfig => ({
  prefix, host: null, upstream, stripPrefix: false, maxBodyBytes: 1, preserveHost: true, websocket: true, ...extra,
});
const upstreams = new Map([['a', up('a')], ['b', up('b')], ['c', up('c')]]);

test('longest prefix wins regardless of declaration order', () => {
  const r = new Router([route('/', 'a'), route('/app/', 'b'), route('/app/admin/', 'c')], upstreams);
  assert.equal(r.match('', '/app/admin/x')!.upstream.name, 'c');
  assert.equal(r.match('', '/app/x')!.upstream.name, 'b');
  assert.equal(r.match('', '/other')!.upstream.name, 'a');
});

test('a host-bound route beats a host-less one with the same prefix; other hosts fall through', () => {
  const r = new Router([route('/x/', 'a'), route('/x/', 'b', { host: 'Example.com' })], upstreams);
  assert.equal(r.match('example.com', '/x/1')!.upstream.name, 'b');
  assert.equal(r.match('other.org', '/x/1')!.upstream.name, 'a');
});

test('no match → null', () => {
  const r = new Router([route('/app/', 'a')], upstreams);
  assert.equal(r.match('', '/ap'), null);
});

test('unknown upstream is a construction error', () => {
  assert.throws(() => new Router([route('/', 'zzz')], upstreams), /unknown upstream/);
});

test('strip_prefix keeps a leading slash', () => {
  const r = new Router([route('/rails/', 'a', { stripPrefix: true }), route('/api', 'b', { stripPrefix: true })], upstreams);
  assert.equal(upstreamPath(r.match('', '/rails/x/y')!, '/rails/x/y'), '/x/y');
  assert.equal(upstreamPath(r.match('', '/rails/')!, '/rails/'), '/');
  assert.equal(upstreamPath(r.match('', '/api')!, '/api'), '/');
  assert.equal(upstreamPath(r.match('', '/api/v1')!, '/api/v1'), '/v1');
});

test('dot-dot segments are found in every spelling, ordinary dots are not', () => {
  for (const p of ['/public/../admin/secret', '/public/%2e%2e/admin/secret', '/public/%2E%2e/admin', '/public/.%2e/admin', '/public/..', '/public/..;/admin',
    '/public/..;jsessionid=1/admin', '/public/..\\admin', '/public/..%2fadmin', '/public/..%5Cadmin', '/public%2f..%2fadmin', '/..']) {
    assert.equal(dotDotSegment(p), true, p);
  }
  for (const p of ['/', '/public/a..b', '/public/...', '/public/./x', '/public/.well-known/x', '/public/..a', '/public/%2e%2e%2e', '/public/%252e%252e/x', '/x%2', '/x%']) {
    assert.equal(dotDotSegment(p), false, p);
  }
});
