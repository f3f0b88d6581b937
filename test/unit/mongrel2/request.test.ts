/** parseRequest/classify on synthetic and damaged messages. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  classify,
  headerFirst,
  parseRequest,
  peekCredits,
  peekRoutingKey,
  uploadPathMatches,
  type HeaderValue,
  type Mongrel2Request,
} from '../../../src/mongrel2/request.js';
import { encodeTNetstring } from '../../../src/mongrel2/tnetstring.js';
import { fixture, requestFixtureNames } from '../fixtures.js';
import { latin1, onlyFrameErrors, throwsFrame } from './helpers.js';

const SENDER = 'f0e1d2c3-0000-4000-8000-00000000abcd';

function jsonMsg(headersJson: string | Buffer, body: string | Buffer = '', path = '/p', id = '7'): Buffer {
  const h = typeof headersJson === 'string' ? latin1(headersJson) : headersJson;
  const b = typeof body === 'string' ? latin1(body) : body;
  return Buffer.concat([latin1(`${SENDER} ${id} ${path} ${h.length}:`), h, latin1(`,${b.length}:`), b, latin1(',')]);
}

function tnetMsg(headers: Record<string, HeaderValue>, body = '', path = '/p', id = '7'): Buffer {
  return Buffer.concat([latin1(`${SENDER} ${id} ${path} `), encodeTNetstring(headers), latin1(`${body.length}:${body},`)]);
}

function reqWith(headers: Record<string, HeaderValue>, body = '', path = '/p'): Mongrel2Request {
  return parseRequest(tnetMsg(headers, body, path));
}

test('both header encodings parse to the same request', () => {
  const headers = { METHOD: 'GET', 'x-dup': ['a', 'b'], 'x-raw': '\xff\x01"\\' };
  const viaTnet = parseRequest(tnetMsg(headers, 'body'));
  const viaJson = parseRequest(jsonMsg('{"METHOD":"GET","x-dup":["a","b"],"x-raw":"\xff\x01\\"\\\\"}', 'body'));
  assert.equal(viaTnet.protocol, 'tnetstring');
  assert.equal(viaJson.protocol, 'json');
  assert.deepEqual({ ...viaTnet.headers }, headers);
  assert.deepEqual({ ...viaJson.headers }, headers);
  for (const r of [viaTnet, viaJson]) {
    assert.equal(r.sender, SENDER);
    assert.equal(r.connId, '7');
    assert.equal(r.path, '/p');
    assert.equal(r.body.toString(), 'body');
  }
});

test('a raw non-UTF-8 byte in a JSON header name and value survives byte-exact', () => {
  const h = Buffer.concat([latin1('{"x-n'), Buffer.from([0xe9]), latin1('":"v'), Buffer.from([0xff, 0x00, 0x7f]), latin1('"}')]);
  const req = parseRequest(jsonMsg(h));
  assert.deepEqual(Object.keys(req.headers), ['x-n\xe9']);
  assert.deepEqual(Buffer.from(req.headers['x-n\xe9'] as string, 'latin1'), Buffer.from([0x76, 0xff, 0x00, 0x7f]));
});

test('the body may hold any bytes, including commas and braces', () => {
  const body = '},{"a":1},\x00\xff,';
  const req = parseRequest(jsonMsg('{}', body));
  assert.equal(req.body.toString('latin1'), body);
  assert.equal(parseRequest(tnetMsg({}, body)).body.toString('latin1'), body);
});

test('malformed envelopes throw FrameError with a useful message', () => {
  const cases: [Buffer, RegExp][] = [
    [latin1(''), /no space after the sender/],
    [latin1(' 1 /p 2:{},0:,'), /empty sender/],
    [latin1(`${SENDER} x1 /p 2:{},0:,`), /non-digit/],
    [latin1(`${SENDER}  /p 2:{},0:,`), /empty connection id/],
    [latin1(`${SENDER} ${'9'.repeat(20)} /p 2:{},0:,`), /too long/],
    [latin1(`${SENDER} 1 /p`), /no space after the path/],
    [latin1(`${SENDER} 1  2:{},0:,`), /empty path/],
    [latin1(`${SENDER} 1 /p 2:{}x0:,`), /neither ','/],
    [latin1(`${SENDER} 1 /p 9:{},0:,`), /past the end/],
    [latin1(`${SENDER} 1 /p 2:{},5:ab,`), /past the end/],
    [latin1(`${SENDER} 1 /p 2:{},2:abc`), /not terminated/],
    [latin1(`${SENDER} 1 /p 2:{},0:,x`), /trailing/],
    [latin1(`${SENDER} 1 /p 2:[],0:,`), /not an object/],
    [latin1(`${SENDER} 1 /p 7:{"a":1},0:,`), /neither a string nor a list/],
    [latin1(`${SENDER} 1 /p 9:{"a":[1]},0:,`), /neither a string nor a list/],
    [latin1(`${SENDER} 1 /p 8:1:a,1:1#}0:,`), /neither a string nor a list/],
    [latin1(`${SENDER} 1 /p 3:1:a]0:,`), /neither ','/],
    [jsonMsg('{"FLAGS":"zz"}'), /bad FLAGS/],
    [jsonMsg('{"UPLOAD_STREAM":"-1"}'), /bad UPLOAD_STREAM/],
    [jsonMsg('{"DOWNLOAD_CREDITS":"1e3"}'), /bad DOWNLOAD_CREDITS/],
    [jsonMsg('{"a":"1","a":"2"}'), /duplicate key/],
  ];
  for (const [msg, re] of cases) {
    assert.throws(
      () => parseRequest(msg),
      (e: unknown) => e instanceof Error && e.name === 'FrameError' && re.test(e.message),
      `${msg.toString('latin1')} should fail with ${re}`,
    );
  }
});

test('peekRoutingKey validates the same prefix', () => {
  assert.deepEqual(peekRoutingKey(latin1(`${SENDER} 42 anything`)), { sender: SENDER, connId: '42' });
  throwsFrame(() => peekRoutingKey(latin1(`${SENDER} 42`)));
  throwsFrame(() => peekRoutingKey(latin1(`${SENDER} 4a2 /p`)));
  throwsFrame(() => peekRoutingKey(latin1(' 42 /p')));
  throwsFrame(() => peekRoutingKey(latin1('')));
});

test('every truncation of every request fixture throws FrameError', () => {
  for (const name of requestFixtureNames()) {
    const msg = fixture(name);
    for (let i = 0; i < msg.length; i++) {
      const cut = msg.subarray(0, i);
      assert.throws(
        () => parseRequest(cut),
        (e: unknown) => e instanceof Error && e.name === 'FrameError',
        `${name} cut at ${i}`,
      );
      onlyFrameErrors(() => peekRoutingKey(cut), `${name} cut at ${i} (peek)`);
    }
  }
});

test('damaged bytes in every request fixture give a request or a FrameError, nothing else', () => {
  const replacements = [0x00, 0xff, 0x20, 0x22, 0x5c, 0x3a, 0x2c, 0x7d, 0x5d, 0x7b, 0x5b, 0x23, 0x39, 0x30];
  for (const name of requestFixtureNames()) {
    const msg = fixture(name);
    const copy = Buffer.from(msg);
    const limit = Math.min(copy.length, 700); // the rest of the big ones is opaque body
    for (let i = 0; i < limit; i++) {
      const orig = copy[i]!;
      for (const r of replacements) {
        if (r === orig) continue;
        copy[i] = r;
        onlyFrameErrors(() => {
          const req = parseRequest(copy);
          classify(req); // must not throw either
        }, `${name} byte ${i} := 0x${r.toString(16)}`);
      }
      copy[i] = orig;
    }
  }
});

test('classify: upload start/done/mismatch', () => {
  assert.deepEqual(classify(reqWith({ METHOD: 'POST', 'x-mongrel2-upload-start': '/tmp/u.1' })), {
    kind: 'upload-start',
    path: '/tmp/u.1',
  });
  assert.deepEqual(
    classify(reqWith({ METHOD: 'POST', 'x-mongrel2-upload-start': '/tmp/u.1', 'x-mongrel2-upload-done': '/tmp/u.1' })),
    { kind: 'upload-done', path: '/tmp/u.1' },
  );
  assert.deepEqual(
    classify(reqWith({ METHOD: 'POST', 'x-mongrel2-upload-start': '/tmp/u.1', 'x-mongrel2-upload-done': '/tmp/u.2' })),
    { kind: 'upload-mismatch', start: '/tmp/u.1', done: '/tmp/u.2' },
  );
  assert.deepEqual(classify(reqWith({ METHOD: 'POST', 'x-mongrel2-upload-done': '/tmp/u.2' })), {
    kind: 'upload-mismatch',
    start: '',
    done: '/tmp/u.2',
  });
});

test('classify: control messages', () => {
  const ctl = (body: string, extra: Record<string, string> = {}) =>
    classify(reqWith({ METHOD: 'JSON', ...extra }, body, '@*'));
  assert.deepEqual(ctl('{"type":"disconnect"}'), { kind: 'disconnect' });
  assert.deepEqual(ctl('{"type":"credits"}', { DOWNLOAD_CREDITS: '1024' }), { kind: 'credits', credits: 1024 });
  assert.deepEqual(ctl('{"type":"credits","credits":77}'), { kind: 'credits', credits: 77 });
  assert.deepEqual(ctl('{"type":"credits","credits":"78"}'), { kind: 'credits', credits: 78 });
  assert.deepEqual(ctl('{"type":"credits"}'), { kind: 'control-other', type: 'credits' }, 'no count anywhere');
  assert.deepEqual(ctl('{"type":"credits","credits":-5}'), { kind: 'control-other', type: 'credits' });
  assert.deepEqual(ctl('{"type":"whatever"}'), { kind: 'control-other', type: 'whatever' });
  assert.deepEqual(ctl('{"type":7}'), { kind: 'control-other', type: '' });
  assert.deepEqual(ctl('not json'), { kind: 'control-other', type: '' });
  assert.deepEqual(ctl('["disconnect"]'), { kind: 'control-other', type: '' });
  assert.deepEqual(ctl(''), { kind: 'control-other', type: '' });
  // A client's JSON-socket message (any path but @*) cannot pose as a control message.
  assert.deepEqual(classify(reqWith({ METHOD: 'JSON' }, '{"type":"disconnect"}', '@chat')), {
    kind: 'control-other',
    type: 'disconnect',
  });
  assert.deepEqual(classify(reqWith({ METHOD: 'JSON', DOWNLOAD_CREDITS: '5' }, '{"type":"credits"}', '/p')), {
    kind: 'control-other',
    type: 'credits',
  });
});

test('classify never throws, even for a hand-built request with nonsense values', () => {
  const fake = (headers: Record<string, HeaderValue>, body = ''): Mongrel2Request => ({
    sender: SENDER,
    connId: '1',
    path: '/',
    headers,
    body: latin1(body),
    protocol: 'json',
  });
  assert.deepEqual(classify(fake({ METHOD: 'WEBSOCKET' })), { kind: 'websocket', flags: -1 });
  assert.deepEqual(classify(fake({ METHOD: 'WEBSOCKET', FLAGS: '0xZZ' })), { kind: 'websocket', flags: -1 });
  assert.deepEqual(classify(fake({ METHOD: 'WEBSOCKET', FLAGS: '0x8A' })), { kind: 'websocket', flags: 0x8a });
  assert.deepEqual(classify(fake({ UPLOAD_STREAM: 'abc' })), { kind: 'upload-stream', offset: -1, done: false });
  assert.deepEqual(classify({ ...fake({ METHOD: 'JSON', DOWNLOAD_CREDITS: 'x' }, '{"type":"credits"}'), path: '@*' }), {
    kind: 'control-other',
    type: 'credits',
  });
  assert.deepEqual(classify(fake({ METHOD: ['GET', 'JSON'] })), { kind: 'http' });
  assert.deepEqual(classify(fake({})), { kind: 'http' });
});

test('classify: UPLOAD_STREAM wins over METHOD (first stream message)', () => {
  assert.deepEqual(classify(reqWith({ METHOD: 'POST', UPLOAD_STREAM: '0' })), { kind: 'upload-stream', offset: 0, done: false });
  assert.deepEqual(classify(reqWith({ UPLOAD_STREAM: '10', UPLOAD_STREAM_DONE: '1' })), {
    kind: 'upload-stream',
    offset: 10,
    done: true,
  });
});

test('headerFirst: strings, lists, absent keys, inherited names', () => {
  const h: Record<string, HeaderValue> = { a: 'x', b: ['y', 'z'], e: [] };
  assert.equal(headerFirst(h, 'a'), 'x');
  assert.equal(headerFirst(h, 'b'), 'y');
  assert.equal(headerFirst(h, 'e'), undefined);
  assert.equal(headerFirst(h, 'missing'), undefined);
  assert.equal(headerFirst(h, 'toString'), undefined, 'plain objects do not leak prototype members');
  assert.equal(headerFirst(h, 'A'), undefined, 'exact keys');
});

test('uploadPathMatches accepts mkstemp names for the template only', () => {
  const t = '/tmp/upload.XXXXXX';
  for (const name of ['upload-start.json-protocol.bin', 'upload-done.tnet-protocol.bin', 'chunked-post-upload-done.json-protocol.bin']) {
    const kind = classify(parseRequest(fixture(name)));
    assert.ok(kind.kind === 'upload-start' || kind.kind === 'upload-done');
    assert.equal(uploadPathMatches(t, kind.path), true, name);
  }
  // A client can send these headers itself on a small request; the path check is what stops it.
  const forged = classify(reqWith({ METHOD: 'GET', 'x-mongrel2-upload-start': '/etc/passwd', 'x-mongrel2-upload-done': '/etc/passwd' }));
  assert.deepEqual(forged, { kind: 'upload-done', path: '/etc/passwd' });
  assert.equal(uploadPathMatches(t, forged.kind === 'upload-done' ? forged.path : ''), false);
  for (const bad of ['/tmp/upload.abc', '/tmp/upload.abcdefg', '/tmp/upload.ab/def', '/tmp/upload.../../', '/var/upload.abcdef', '']) {
    assert.equal(uploadPathMatches(t, bad), false, bad);
  }
  assert.equal(uploadPathMatches('/tmp/upload.', '/tmp/upload.'), false, 'template without XXXXXX');
});

// ---- the credits fast path (peekCredits) ------------------------------------------------

function credits(value: string, connId = '7', sender = '0b9a6b7e-6c35-4b6c-9a3c-000000000001', hlenDelta = 0): Buffer {
  const h = `{"METHOD":"JSON","DOWNLOAD_CREDITS":"${value}"}`;
  return Buffer.from(`${sender} ${connId} @* ${h.length + hlenDelta}:${h},18:{"type":"credits"},`, 'latin1');
}

test('peekCredits: the captured credits message, and the general path agrees', () => {
  const msg = fixture('download-credits.json-protocol.bin');
  assert.deepEqual(peekCredits(msg), { connId: '1', credits: 58 });
  const req = parseRequest(msg);
  assert.deepEqual(classify(req), { kind: 'credits', credits: 58 });
});

test('peekCredits: counts from 0 to 15 digits, any connection id', () => {
  for (const [value, connId] of [['0', '0'], ['116', '12'], ['102400', '9999999'], ['999999999999999', '1']] as const) {
    const msg = credits(value, connId);
    assert.deepEqual(peekCredits(msg), { connId, credits: Number(value) });
    assert.deepEqual(classify(parseRequest(msg)), { kind: 'credits', credits: Number(value) });
  }
});

test('peekCredits: anything but the exact form is left to the general path (null, never a throw)', () => {
  const base = credits('116').toString('latin1');
  const variants = [
    credits('1234567890123456'), // 16 digits: past DIGITS_RE
    credits(''), // no digits
    credits('1a'),
    credits('116', '7', '0b9a', 1), // netstring length off by one
    credits('116', '7', '0b9a', -1),
    credits('116', '7a'), // bad connection id
    credits('116', '7', ''), // empty sender
    Buffer.from(base.replace('@* ', '/x ')), // not a control path
    Buffer.from(base.replace('"METHOD":"JSON","DOWNLOAD_CREDITS"', '"DOWNLOAD_CREDITS":"1","METHOD"')),
    Buffer.from(base.replace('{"type":"credits"}', '{"type":"disconnect"}')),
    Buffer.from(base + ' '), // trailing byte
    Buffer.from(base.slice(0, -1)), // truncated
    Buffer.from(base.replace(' 42:', ' 042:')),
    fixture('disconnect.json-protocol.bin'),
    fixture('get-query.json-protocol.bin'),
    Buffer.alloc(0),
  ];
  for (const v of variants) assert.equal(peekCredits(v), null, v.toString('latin1'));
});

test('peekCredits: every single-byte change of a credits message is null or what the general path says', () => {
  const msg = credits('116', '42');
  for (let i = 0; i < msg.length; i++) {
    for (const b of [0x00, 0x20, 0x22, 0x2c, 0x30, 0x31, 0x39, 0x3a, 0x40, 0x7b, 0x7d, 0xff]) {
      const m = Buffer.from(msg);
      m[i] = b;
      const fast = peekCredits(m);
      if (fast === null) continue;
      const req = parseRequest(m);
      assert.deepEqual({ connId: req.connId, kind: classify(req) }, { connId: fast.connId, kind: { kind: 'credits', credits: fast.credits } }, m.toString('latin1'));
    }
  }
});
