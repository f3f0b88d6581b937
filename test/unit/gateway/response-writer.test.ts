import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection } from '../../../src/gateway/client-connection.js';
import { ResponseWriter, type ResponseOutcome, type ResponseWriterOptions } from '../../../src/gateway/response-writer.js';
import { ClientGoneError, M2gwError } from '../../../src/errors.js';
import { parseReply } from '../../../src/mongrel2/reply.js';
import type { HeaderList, ResponseController } from '../../../src/upstream/upstream.js';
import { limitHitCount } from '../../../src/metrics/limit-hits.js';

interface Run {
  text: () => string;
  closed: () => boolean;
  outcome: () => ResponseOutcome | null;
  writer: ResponseWriter;
  ctl: ResponseController & { paused: boolean };
}

function run(opts: Partial<ResponseWriterOptions> = {}): Run {
  const frames: Buffer[] = [];
  const conn = new ClientConnection('0:1', '1', { send: (f) => frames.push(f) }, 'u', { schedule: () => undefined });
  let outcome: ResponseOutcome | null = null;
  const writer = new ResponseWriter(conn, { method: 'GET', keepAlive: true, http10: false, requestId: 'rid', ...opts }, (o) => (outcome = o));
  const ctl = { paused: false, pause() { this.paused = true; }, resume() { this.paused = false; } };
  const flushAll = (): void => { conn.flushSoon(); conn.flush(); };
  return {
    text: () => { flushAll(); return frames.map((f) => parseReply(f).payload.toString('latin1')).join(''); },
    closed: () => { flushAll(); return frames.some((f) => parseReply(f).payload.length === 0); },
    outcome: () => outcome,
    writer,
    ctl,
  };
}

const H = (...pairs: string[]): HeaderList => {
  const out: HeaderList = [];
  for (let i = 0; i < pairs.length; i += 2) out.push([pairs[i]!, pairs[i + 1]!]);
  return out;
};

test('Content-Length known: body as is, keep-alive, hop-by-hop headers dropped', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', '5', 'Connection', 'keep-alive, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=5', 'X-App', 'y'));
  r.writer.onResponseData(r.ctl, Buffer.from('hello'));
  r.writer.onResponseEnd(r.ctl);
  const t = r.text();
  assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(t, /Content-Length: 5\r\n/);
  assert.match(t, /X-App: y\r\n/);
  assert.doesNotMatch(t, /X-Hop|Keep-Alive|Connection/i);
  assert.ok(t.endsWith('\r\n\r\nhello'));
  assert.equal(r.closed(), false);
  assert.deepEqual(r.outcome(), { status: 200, bytes: 5, error: null, closed: false });
});

test('unknown length on HTTP/1.1: chunked framing with a last chunk', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Transfer-Encoding', 'chunked'));
  r.writer.onResponseData(r.ctl, Buffer.from('abc'));
  r.writer.onResponseData(r.ctl, Buffer.alloc(0));
  r.writer.onResponseData(r.ctl, Buffer.from('0123456789abcdef'));
  r.writer.onResponseEnd(r.ctl);
  const t = r.text();
  assert.match(t, /Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n$/);
  assert.equal((t.match(/Transfer-Encoding/gi) ?? []).length, 1);
});

test('unknown length on HTTP/1.0: read-until-close', () => {
  const r = run({ http10: true, keepAlive: false });
  r.writer.onResponseStart(r.ctl, 200, H());
  r.writer.onResponseData(r.ctl, Buffer.from('x'));
  r.writer.onResponseEnd(r.ctl);
  assert.match(r.text(), /Connection: close\r\n\r\nx$/);
  assert.equal(r.closed(), true);
});

test('HTTP/1.0 keep-alive with a known length stays open and says so', () => {
  const r = run({ http10: true, keepAlive: true });
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', '1'));
  r.writer.onResponseData(r.ctl, Buffer.from('x'));
  r.writer.onResponseEnd(r.ctl);
  assert.match(r.text(), /Connection: keep-alive\r\n/);
  assert.equal(r.closed(), false);
});

for (const [method, status] of [['HEAD', 200], ['GET', 204], ['GET', 304]] as const) {
  test(`${method} ${status}: no body bytes, no chunked framing`, () => {
    const r = run({ method });
    r.writer.onResponseStart(r.ctl, status, H('Content-Length', '10'));
    r.writer.onResponseData(r.ctl, Buffer.from('should not appear'));
    r.writer.onResponseEnd(r.ctl);
    const t = r.text();
    assert.ok(t.endsWith('\r\n\r\n'));
    assert.doesNotMatch(t, /chunked|should not/);
    if (status === 204) assert.doesNotMatch(t, /Content-Length/);
  });
}

test('error before headers: mapped status page, keep-alive kept', () => {
  const r = run();
  r.writer.onResponseError(new M2gwError('M2GW_UPSTREAM_TIMEOUT', 'slow', 'request-sent'));
  assert.match(r.text(), /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  assert.match(r.text(), /X-Request-Id: rid/);
  assert.equal(r.closed(), false);
  assert.equal(r.outcome()!.status, 504);
});

test('error after headers: the connection is closed, nothing else written', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', '100'));
  r.writer.onResponseData(r.ctl, Buffer.from('part'));
  r.writer.onResponseError(new M2gwError('M2GW_UPSTREAM_RESET', 'reset', 'request-sent'));
  assert.equal(r.closed(), true);
  assert.equal(r.outcome()!.error!.phase, 'headers-sent');
  assert.doesNotMatch(r.text(), /502/);
});

test('client gone: nothing written', () => {
  const r = run();
  r.writer.onResponseError(new ClientGoneError('request-sent', 'gone'));
  assert.equal(r.text(), '');
});

test('an upstream header with CR/LF is refused as a bad gateway, not passed through', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('X-Evil', 'a\r\nSet-Cookie: pwned=1'));
  assert.match(r.text(), /^HTTP\/1\.1 502/);
  assert.doesNotMatch(r.text(), /pwned/);
});

test('a refused upload closes after the error page', () => {
  const r = run({ mustClose: true });
  r.writer.onResponseError(new M2gwError('M2GW_BODY_TOO_LARGE', 'big', 'route'));
  assert.match(r.text(), /^HTTP\/1\.1 413 .*\r\n[\s\S]*Connection: close/);
  assert.equal(r.closed(), true);
});

test('backpressure: a full queue pauses the upstream', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', String(2 * 1024 * 1024)));
  r.writer.onResponseData(r.ctl, Buffer.alloc(1024 * 1024));
  assert.equal(r.ctl.paused, true);
});

// Issue 11 item 1: an upstream's Content-Length is held against its body (response smuggling).

test('a body longer than its Content-Length is cut at the length and the connection closed', () => {
  const r = run();
  const smuggled = 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Smuggled: yes\r\n\r\nSPOOFED';
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', '5'));
  r.writer.onResponseData(r.ctl, Buffer.from('HELLO' + smuggled, 'latin1'));
  r.writer.onResponseEnd(r.ctl);
  const t = r.text();
  assert.ok(t.endsWith('\r\n\r\nHELLO'), t);
  assert.doesNotMatch(t, /Smuggled|SPOOFED/);
  assert.equal(r.closed(), true);
  assert.equal(r.outcome()!.error!.code, 'M2GW_UPSTREAM_PROTOCOL');
  assert.equal(r.outcome()!.bytes, 5);
});

test('excess arriving in a later piece is dropped too', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', '5'));
  r.writer.onResponseData(r.ctl, Buffer.from('HEL'));
  r.writer.onResponseData(r.ctl, Buffer.from('LO'));
  r.writer.onResponseData(r.ctl, Buffer.from('X'));
  assert.ok(r.text().endsWith('HELLO'));
  assert.equal(r.closed(), true);
});

test('a body shorter than its Content-Length closes the connection', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', '100'));
  r.writer.onResponseData(r.ctl, Buffer.from('HELLO'));
  r.writer.onResponseEnd(r.ctl);
  assert.equal(r.closed(), true);
  assert.equal(r.outcome()!.closed, true);
  assert.equal(r.outcome()!.error!.phase, 'headers-sent');
});

for (const [label, headers] of [
  ['two different lengths', H('Content-Length', '5', 'Content-Length', '6')],
  ['a list of different lengths', H('Content-Length', '5, 6')],
  ['a negative length', H('Content-Length', '-1')],
  ['a signed length', H('Content-Length', '+5')],
  ['a hex length', H('Content-Length', '0x5')],
  ['an empty length', H('Content-Length', '')],
  ['a length past 2^53', H('Content-Length', '99999999999999999999')],
  ['both Content-Length and Transfer-Encoding', H('Content-Length', '5', 'Transfer-Encoding', 'chunked')],
] as const) {
  test(`${label}: 502, nothing of the upstream's head passed on`, () => {
    const r = run();
    r.writer.onResponseStart(r.ctl, 200, headers as HeaderList);
    r.writer.onResponseData(r.ctl, Buffer.from('HELLO'));
    r.writer.onResponseEnd(r.ctl);
    assert.match(r.text(), /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.doesNotMatch(r.text(), /HELLO/);
    assert.equal(r.outcome()!.status, 502);
  });
}

test('identical duplicate lengths collapse into one header', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Content-Length', '5', 'content-length', '5, 5'));
  r.writer.onResponseData(r.ctl, Buffer.from('HELLO'));
  r.writer.onResponseEnd(r.ctl);
  const t = r.text();
  assert.equal(t.match(/content-length/gi)?.length, 1);
  assert.match(t, /Content-Length: 5\r\n/);
  assert.equal(r.closed(), false);
});

test('Connection naming content-length never removes the framing', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('Connection', 'content-length', 'Content-Length', '5'));
  r.writer.onResponseData(r.ctl, Buffer.from('HELLO'));
  r.writer.onResponseEnd(r.ctl);
  const t = r.text();
  assert.match(t, /Content-Length: 5\r\n/);
  assert.doesNotMatch(t, /Transfer-Encoding/);
  assert.ok(t.endsWith('\r\n\r\nHELLO'));
  assert.equal(r.closed(), false);
});

test('an unsolicited 101 is a 502', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 101, H('Upgrade', 'websocket', 'Connection', 'upgrade'));
  r.writer.onResponseEnd(r.ctl);
  assert.match(r.text(), /^HTTP\/1\.1 502 /);
  assert.doesNotMatch(r.text(), /101/);
});

test('a NUL in a header value is a 502', () => {
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, H('X-A', 'a\0b'));
  assert.match(r.text(), /^HTTP\/1\.1 502 /);
});

test('too many upstream headers, or too many header bytes: 502 and the cap counted', () => {
  const before = limitHitCount('upstream_header_count');
  const many: HeaderList = [];
  for (let i = 0; i < 10_000; i++) many.push([`x-h${i}`, 'v']);
  const r = run();
  r.writer.onResponseStart(r.ctl, 200, many);
  assert.match(r.text(), /^HTTP\/1\.1 502 /);
  assert.equal(limitHitCount('upstream_header_count'), before + 1);
  const bytesBefore = limitHitCount('upstream_header_bytes');
  const r2 = run();
  r2.writer.onResponseStart(r2.ctl, 200, H('X-Big', 'v'.repeat(70_000)));
  assert.match(r2.text(), /^HTTP\/1\.1 502 /);
  assert.equal(limitHitCount('upstream_header_bytes'), bytesBefore + 1);
});
