/** parseRequest/classify/peekRoutingKey against every captured Mongrel2 request message. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classify,
  headerFirst,
  parseRequest,
  peekRoutingKey,
  type HeaderValue,
  type MessageKind,
  type Mongrel2Request,
} from '../../../src/mongrel2/request.js';
import { fixture, requestFixtureNames } from '../fixtures.js';
import { assertInheritsNothing } from './helpers.js';

const JSON_SENDER = '0b9a6b7e-6c35-4b6c-9a3c-000000000001';
const TNET_SENDER = '0b9a6b7e-6c35-4b6c-9a3c-000000000002';
const STREAM_SENDER = '0b9a6b7e-6c35-4b6c-9a3c-000000000003';

function load(name: string): { msg: Buffer; req: Mongrel2Request; kind: MessageKind } {
  const msg = fixture(name);
  const req = parseRequest(msg);
  return { msg, req, kind: classify(req) };
}

const h1 = (req: Mongrel2Request, name: string): string | undefined => headerFirst(req.headers, name);

test('every request fixture parses; generic invariants hold', () => {
  const names = requestFixtureNames();
  assert.ok(names.length >= 44, `expected the full fixture set, found ${names.length}`);
  for (const name of names) {
    const { msg, req } = load(name);
    assert.equal(req.protocol, name.endsWith('.json-protocol.bin') ? 'json' : 'tnetstring', name);
    assert.match(req.sender, /^0b9a6b7e-6c35-4b6c-9a3c-00000000000[123]$/, name);
    assert.match(req.connId, /^\d+$/, name);
    assertInheritsNothing(req.headers, `${name}: headers`);
    // Prefix tokens are the first bytes of the message, exactly.
    assert.ok(msg.toString('latin1').startsWith(`${req.sender} ${req.connId} ${req.path} `), name);
    // The body is the tail of the message, just before the final comma.
    assert.equal(msg[msg.length - 1], 0x2c, name);
    assert.deepEqual(req.body, msg.subarray(msg.length - 1 - req.body.length, msg.length - 1), name);
    assert.equal(req.body.buffer, msg.buffer, `${name}: body is a view, not a copy`);
    // Mongrel2 repeats the path as the PATH header whenever it sends the full header set.
    const pathHeader = h1(req, 'PATH');
    if (pathHeader !== undefined) assert.equal(pathHeader, req.path, name);
    for (const [k, v] of Object.entries(req.headers)) {
      assert.ok(typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')), `${name} ${k}`);
    }
  }
});

test('peekRoutingKey agrees with parseRequest on every fixture', () => {
  for (const name of requestFixtureNames()) {
    const { msg, req } = load(name);
    assert.deepEqual(peekRoutingKey(msg), { sender: req.sender, connId: req.connId }, name);
  }
});

test('get-query: method, URI, QUERY, PATTERN, no body (both protocols)', () => {
  for (const [p, sender, id] of [
    ['json', JSON_SENDER, '1'],
    ['tnet', TNET_SENDER, '2'],
  ] as const) {
    const { req, kind } = load(`get-query.${p}-protocol.bin`);
    assert.equal(req.sender, sender);
    assert.equal(req.connId, id);
    assert.equal(req.path, `/${p}/get`);
    assert.equal(h1(req, 'METHOD'), 'GET');
    assert.equal(h1(req, 'VERSION'), 'HTTP/1.1');
    assert.equal(h1(req, 'URI'), `/${p}/get?a=1&b=two%20words`);
    assert.equal(h1(req, 'QUERY'), 'a=1&b=two%20words');
    assert.equal(h1(req, 'PATTERN'), `/${p}/`);
    assert.equal(h1(req, 'URL_SCHEME'), 'http');
    assert.equal(h1(req, 'REMOTE_ADDR'), '127.0.0.1');
    assert.equal(h1(req, 'host'), '127.0.0.1:6767');
    assert.equal(h1(req, 'user-agent'), 'curl/7.88.1');
    assert.equal(h1(req, 'FRAGMENT'), undefined, 'curl drops #frag');
    assert.equal(req.body.length, 0);
    assert.deepEqual(kind, { kind: 'http' });
  }
});

test('post-form: inline body with quotes, content-length (both protocols)', () => {
  for (const p of ['json', 'tnet']) {
    const { req, kind } = load(`post-form.${p}-protocol.bin`);
    assert.equal(h1(req, 'METHOD'), 'POST');
    assert.equal(h1(req, 'content-length'), '27');
    assert.equal(h1(req, 'content-type'), 'application/x-www-form-urlencoded');
    assert.equal(h1(req, 'QUERY'), undefined, 'no ? → no QUERY');
    assert.equal(req.body.toString('latin1'), 'name=John+Doe&msg=a%26b+"q"');
    assert.deepEqual(kind, { kind: 'http' });
  }
});

test('dup-headers: repeated headers become lists; names lower-cased; escapes decoded', () => {
  for (const p of ['json', 'tnet']) {
    const { req } = load(`dup-headers.${p}-protocol.bin`);
    assert.deepEqual(req.headers['x-dup'], ['a', 'b']);
    assert.deepEqual(req.headers['cookie'], ['c1=1', 'c2=2']);
    assert.equal(headerFirst(req.headers, 'cookie'), 'c1=1');
    assert.equal(req.headers['x-mixed-case'], 'Value With CAPS');
    assert.equal(req.headers['X-Mixed-CASE'], undefined);
    assert.equal(req.headers['x-quote'], 'say "hi" \\ back');
  }
});

test('dup-headers-over-limit: only the first 5 values survive', () => {
  for (const p of ['json', 'tnet']) {
    const { req } = load(`dup-headers-over-limit.${p}-protocol.bin`);
    assert.deepEqual(req.headers['x-six'], ['1', '2', '3', '4', '5']);
  }
});

test('fragment-and-client-xff: FRAGMENT key, client x-forwarded-for overwritten', () => {
  const { req, kind } = load('fragment-and-client-xff.json-protocol.bin');
  assert.equal(req.connId, '28');
  assert.equal(req.headers['x-forwarded-for'], '127.0.0.1', 'client sent 10.9.9.9');
  assert.equal(h1(req, 'FRAGMENT'), 'sec-2');
  assert.equal(h1(req, 'URI'), '/json/frag?x=1');
  assert.equal(h1(req, 'QUERY'), 'x=1');
  assert.equal(h1(req, 'connection'), 'close');
  assert.deepEqual(kind, { kind: 'http' });
});

test('http10, connection-close, expect-100, unknown-host, hold, noreply requests', () => {
  assert.equal(h1(load('http10-request.json-protocol.bin').req, 'VERSION'), 'HTTP/1.0');
  const cc = load('connection-close-request.json-protocol.bin').req;
  assert.equal(cc.connId, '27');
  assert.equal(h1(cc, 'connection'), 'close');
  const ex = load('expect-100-continue.json-protocol.bin').req;
  assert.equal(h1(ex, 'expect'), '100-continue');
  assert.equal(ex.body.toString(), 'hello');
  assert.equal(h1(load('unknown-host.json-protocol.bin').req, 'host'), 'example.invalid');
  assert.equal(load('hold-request-a.json-protocol.bin').req.connId, '34');
  assert.equal(load('noreply-request.json-protocol.bin').req.path, '/json/noreply');
  assert.equal(load('noreply-request.tnet-protocol.bin').req.connId, '17');
});

test('pipelined requests share a connection id', () => {
  const a = load('pipelined-1.json-protocol.bin').req;
  const b = load('pipelined-2.json-protocol.bin').req;
  assert.equal(a.connId, '29');
  assert.equal(b.connId, a.connId);
  assert.deepEqual([a.path, b.path], ['/json/p1', '/json/p2']);
});

test('async upload: start then done with the same temp path', () => {
  for (const [p, path] of [
    ['json', '/tmp/upload.GCZXat'],
    ['tnet', '/tmp/upload.HoY6Li'],
  ] as const) {
    const start = load(`upload-start.${p}-protocol.bin`);
    const done = load(`upload-done.${p}-protocol.bin`);
    assert.deepEqual(start.kind, { kind: 'upload-start', path });
    assert.deepEqual(done.kind, { kind: 'upload-done', path });
    assert.equal(start.req.connId, done.req.connId);
    assert.equal(h1(start.req, 'content-length'), '4337');
    assert.match(h1(start.req, 'content-type')!, /^multipart\/form-data; boundary=-+[0-9a-f]+$/);
    assert.equal(start.req.body.length, 0);
    assert.equal(done.req.body.length, 0);
  }
});

test('chunked upload: transfer-encoding kept, no content-length', () => {
  for (const [p, path] of [
    ['json', '/tmp/upload.EWL7U2'],
    ['tnet', '/tmp/upload.kQ0yak'],
  ] as const) {
    const start = load(`chunked-post-upload-start.${p}-protocol.bin`);
    const done = load(`chunked-post-upload-done.${p}-protocol.bin`);
    assert.deepEqual(start.kind, { kind: 'upload-start', path });
    assert.deepEqual(done.kind, { kind: 'upload-done', path });
    for (const r of [start.req, done.req]) {
      assert.equal(h1(r, 'transfer-encoding'), 'chunked');
      assert.equal(h1(r, 'content-length'), undefined);
    }
  }
});

test('websocket handshake: body is the Sec-WebSocket-Accept value', () => {
  for (const [p, accept] of [
    ['json', 'ziX/nVqK8NHeQveZAxkd5Zr2RAU='],
    ['tnet', 'b8eETxsUWSa9ZmoAs+XUMZKN6wo='],
  ] as const) {
    const { req, kind } = load(`websocket-handshake.${p}-protocol.bin`);
    assert.deepEqual(kind, { kind: 'websocket-handshake' });
    assert.equal(h1(req, 'METHOD'), 'WEBSOCKET_HANDSHAKE');
    assert.equal(h1(req, 'upgrade'), 'websocket');
    assert.equal(req.body.toString('latin1'), accept);
  }
});

test('websocket frames: FLAGS and payloads', () => {
  const frames: [string, number, Buffer][] = [
    ['text', 0x81, Buffer.from('hello websocket')],
    ['ping', 0x89, Buffer.from('p1')],
    ['close', 0x88, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65])],
  ];
  for (const p of ['json', 'tnet']) {
    for (const [what, flags, body] of frames) {
      const { req, kind } = load(`websocket-${what}-frame.${p}-protocol.bin`);
      assert.deepEqual(kind, { kind: 'websocket', flags }, `${what} ${p}`);
      assert.equal(h1(req, 'METHOD'), 'WEBSOCKET');
      assert.deepEqual(req.body, body);
      assert.equal(h1(req, 'sec-websocket-version'), '13', 'handshake headers are repeated');
    }
  }
});

test('disconnects in both protocols', () => {
  const cases: [string, string, string][] = [
    ['disconnect.json-protocol.bin', JSON_SENDER, '1'],
    ['disconnect.tnet-protocol.bin', TNET_SENDER, '2'],
    ['client-timeout-disconnect.json-protocol.bin', JSON_SENDER, '16'],
    ['client-timeout-disconnect.tnet-protocol.bin', TNET_SENDER, '17'],
    ['websocket-client-gone-disconnect.tnet-protocol.bin', TNET_SENDER, '40'],
    ['disconnect-after-stream.json-protocol.bin', STREAM_SENDER, '1'],
  ];
  for (const [name, sender, id] of cases) {
    const { req, kind } = load(name);
    assert.deepEqual(kind, { kind: 'disconnect' }, name);
    assert.equal(req.sender, sender);
    assert.equal(req.connId, id);
    assert.equal(req.path, '@*');
    assert.deepEqual(Object.keys(req.headers), ['METHOD']);
    assert.equal(req.body.toString(), '{"type":"disconnect"}');
  }
});

test('download credits: 58 bytes acknowledged', () => {
  const { req, kind } = load('download-credits.json-protocol.bin');
  assert.deepEqual(kind, { kind: 'credits', credits: 58 });
  assert.equal(req.path, '@*');
});

test('streamed upload: offsets chain up to content-length, done on the last', () => {
  const first = load('upload-stream-first.json-protocol.bin');
  const next = load('upload-stream-next.json-protocol.bin');
  const last = load('upload-stream-done.json-protocol.bin');
  assert.deepEqual(first.kind, { kind: 'upload-stream', offset: 0, done: false });
  assert.deepEqual(next.kind, { kind: 'upload-stream', offset: 3947, done: false });
  assert.deepEqual(last.kind, { kind: 'upload-stream', offset: 4971, done: true });
  assert.equal(first.req.body.length, 3947);
  assert.equal(next.req.body.length, 1024);
  assert.equal(last.req.body.length, 29);
  assert.equal(0 + first.req.body.length, 3947);
  assert.equal(3947 + next.req.body.length, 4971);
  assert.equal(String(4971 + last.req.body.length), h1(first.req, 'content-length'));
  assert.equal(h1(first.req, 'METHOD'), 'POST');
  assert.equal(h1(first.req, 'DOWNLOAD_CREDITS'), '102400');
  assert.equal(h1(next.req, 'METHOD'), undefined, 'follow-ups carry only UPLOAD_STREAM');
  assert.equal(next.req.path, '/s/upload');
  assert.deepEqual(Object.keys(last.req.headers).sort(), ['UPLOAD_STREAM', 'UPLOAD_STREAM_DONE']);
});

/** Values that differ between the json and tnet captures only by route or by randomness. */
function normalise(name: string, h: Readonly<Record<string, HeaderValue>>): Record<string, HeaderValue> {
  const out: Record<string, HeaderValue> = {};
  const fix = (k: string, v: string): string => {
    if (k === 'x-mongrel2-upload-start' || k === 'x-mongrel2-upload-done') {
      assert.match(v, /^\/tmp\/upload\.[A-Za-z0-9]{6}$/, name);
      return '<upload path>';
    }
    if (k === 'sec-websocket-key') {
      assert.match(v, /^[A-Za-z0-9+/]{22}==$/, name);
      return '<key>';
    }
    return v.replace(/^\/(json|tnet)\//, '/P/').replace(/boundary=-+[0-9a-f]{16}$/, 'boundary=<b>');
  };
  for (const [k, v] of Object.entries(h)) out[k] = typeof v === 'string' ? fix(k, v) : v.map((x) => fix(k, x));
  return out;
}

test('json and tnet captures of the same request give equal header maps', () => {
  const tnet = requestFixtureNames().filter((n) => n.endsWith('.tnet-protocol.bin'));
  let pairs = 0;
  for (const t of tnet) {
    const j = t.replace('.tnet-protocol.bin', '.json-protocol.bin');
    if (!requestFixtureNames().includes(j)) continue;
    pairs++;
    const a = load(j);
    const b = load(t);
    assert.deepEqual(normalise(j, a.req.headers), normalise(t, b.req.headers), t);
    assert.deepEqual(a.kind.kind, b.kind.kind, t);
  }
  assert.ok(pairs >= 15, `compared ${pairs} pairs`);
});
