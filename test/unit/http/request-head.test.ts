/**
 * The direct client's request head: Host is its first header (RFC 9112 §3.2), whether it is
 * the configured server's or, with preserve_host, the client's own; a second client Host is
 * still seen and refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { directRequestHead, headerPairs } from '../../../src/upstream/http/request-head.js';
import type { HeaderList, UpstreamRequest } from '../../../src/upstream/upstream.js';
import { upstreamRequest } from '../../harness/upstream-request.js';

const server = { basePath: '', hostHeader: 'app.internal:8080' };

function request(headers: HeaderList, preserveHost: boolean, hostHeader = 'example.test'): UpstreamRequest {
  return upstreamRequest('/x', { headers, preserveHost, host: hostHeader, hostHeader });
}

function headLines(req: UpstreamRequest): string[] {
  const r = directRequestHead(req, server, 0);
  assert.ok(r.ok, r.ok ? '' : r.problem);
  return r.head.split('\r\n');
}

test('the configured server is the first header, the client Host is not sent', () => {
  const lines = headLines(request([['accept', '*/*'], ['host', 'example.test'], ['user-agent', 'x']], false));
  assert.equal(lines[0], 'GET /x HTTP/1.1');
  assert.equal(lines[1], 'host: app.internal:8080');
  assert.equal(lines.filter((l) => l.startsWith('host:')).length, 1);
  assert.deepEqual(lines.slice(2, 4), ['accept: */*', 'user-agent: x']);
});

test('with preserve_host the client Host is the first header, once', () => {
  const lines = headLines(request([['accept', '*/*'], ['host', 'example.test'], ['user-agent', 'x']], true));
  assert.equal(lines[1], 'host: example.test');
  assert.equal(lines.filter((l) => l.startsWith('host:')).length, 1);
  assert.deepEqual(lines.slice(2, 4), ['accept: */*', 'user-agent: x']);
});

test('with preserve_host and no client Host, the configured server is sent', () => {
  const lines = headLines(request([['accept', '*/*']], true, ''));
  assert.equal(lines[1], 'host: app.internal:8080');
});

test('with preserve_host a second client Host is refused', () => {
  const r = directRequestHead(request([['host', 'example.test'], ['accept', '*/*'], ['host', 'evil.test']], true), server, 0);
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.problem, /more than one Host/);
});

test('undici gets the same list in the same order', () => {
  const pairs = headerPairs(request([['accept', '*/*'], ['host', 'example.test']], false), server);
  assert.deepEqual(pairs.slice(0, 4), ['host', 'app.internal:8080', 'accept', '*/*']);
});
