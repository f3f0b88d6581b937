import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CRLF,
  encodeChunk,
  encodeChunkHeader,
  encodeResponseHead,
  LAST_CHUNK,
  reasonPhrase,
  simpleResponse,
} from '../../../src/mongrel2/http-head.js';
import { latin1 } from './helpers.js';

test('status line and headers', () => {
  const head = encodeResponseHead(200, [
    ['Content-Type', 'text/plain'],
    ['Content-Length', '2'],
  ]);
  assert.equal(head.toString('latin1'), 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n');
  assert.equal(encodeResponseHead(404, []).toString(), 'HTTP/1.1 404 Not Found\r\n\r\n');
  assert.equal(encodeResponseHead(502, [], 'Upstream Gone').toString(), 'HTTP/1.1 502 Upstream Gone\r\n\r\n');
  assert.equal(encodeResponseHead(599, []).toString(), 'HTTP/1.1 599 \r\n\r\n', 'no standard reason');
});

test('reason phrases', () => {
  assert.equal(reasonPhrase(200), 'OK');
  assert.equal(reasonPhrase(101), 'Switching Protocols');
  assert.equal(reasonPhrase(204), 'No Content');
  assert.equal(reasonPhrase(413), 'Payload Too Large');
  assert.equal(reasonPhrase(504), 'Gateway Timeout');
  assert.equal(reasonPhrase(799), '');
});

test('repeated headers such as Set-Cookie stay separate lines, in order', () => {
  const head = encodeResponseHead(200, [
    ['Set-Cookie', 'a=1; Path=/'],
    ['Set-Cookie', 'b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT'],
    ['X-Other', ''],
  ]).toString('latin1');
  assert.equal(
    head,
    'HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT\r\nX-Other: \r\n\r\n',
  );
});

test('header values are byte strings written as latin1', () => {
  const head = encodeResponseHead(200, [['X-Raw', 'caf\xe9\xff\t!']]);
  const at = head.indexOf('X-Raw: ') + 7;
  assert.deepEqual(head.subarray(at, at + 7), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0xff, 0x09, 0x21]));
});

test('refuses response splitting and invalid names', () => {
  const badValues = ['a\r\nSet-Cookie: x=1', 'a\nb', 'a\rb', 'a\0b', '\x01', '\x7f', '€'];
  for (const v of badValues) {
    assert.throws(() => encodeResponseHead(200, [['X-Test', v]]), TypeError, JSON.stringify(v));
  }
  const badNames = ['', 'X Test', 'X-Test:', 'X\r\nInjected', 'X\0', 'Ünï', '(x)', 'a/b'];
  for (const n of badNames) {
    assert.throws(() => encodeResponseHead(200, [[n, 'v']]), TypeError, JSON.stringify(n));
  }
  assert.throws(() => encodeResponseHead(200, [], 'OK\r\nX: y'), TypeError);
  assert.throws(() => encodeResponseHead(200, [], 'OK\n'), TypeError);
});

test('status must be a three-digit integer', () => {
  for (const s of [99, 1000, 200.5, NaN, -200]) assert.throws(() => encodeResponseHead(s, []), RangeError, String(s));
});

test('chunk framing', () => {
  assert.equal(encodeChunkHeader(1).toString(), '1\r\n');
  assert.equal(encodeChunkHeader(255).toString(), 'ff\r\n');
  assert.equal(encodeChunkHeader(65536).toString(), '10000\r\n');
  for (const n of [0, -1, 1.5, NaN]) assert.throws(() => encodeChunkHeader(n), RangeError, String(n));
  const data = latin1('alpha-');
  const parts = encodeChunk(data);
  assert.equal(parts.length, 3);
  assert.equal(parts[1], data, 'data passed through, not copied');
  assert.equal(Buffer.concat(parts).toString(), '6\r\nalpha-\r\n');
  assert.deepEqual(encodeChunk(Buffer.alloc(0)), [], 'an empty chunk would end the body');
  assert.equal(CRLF.toString(), '\r\n');
  assert.equal(LAST_CHUNK.toString(), '0\r\n\r\n');
});

test('simpleResponse: Content-Length counts UTF-8 bytes', () => {
  const r = simpleResponse(502, 'Bad Gateway: café\n').toString('utf8');
  assert.equal(
    r,
    'HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 19\r\n\r\nBad Gateway: café\n',
  );
});

test('simpleResponse: extra headers, own Content-Type, Content-Length not overridable', () => {
  const r = simpleResponse(
    503,
    '<p>busy</p>',
    [
      ['Content-Type', 'text/html'],
      ['Retry-After', '5'],
      ['content-length', '999'],
    ],
  ).toString();
  assert.equal(
    r,
    'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\nContent-Type: text/html\r\nRetry-After: 5\r\n\r\n<p>busy</p>',
  );
});

test('simpleResponse: HEAD keeps Content-Length but sends no body; 204/304 have neither', () => {
  assert.equal(
    simpleResponse(404, 'nope', [], { head: true }).toString(),
    'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\n\r\n',
  );
  assert.equal(simpleResponse(204, 'ignored').toString(), 'HTTP/1.1 204 No Content\r\n\r\n');
  assert.equal(simpleResponse(304, 'ignored', [['ETag', '"x"']]).toString(), 'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n');
  assert.throws(() => simpleResponse(200, 'x', [['X-Bad', 'a\r\nb']]), TypeError);
});
