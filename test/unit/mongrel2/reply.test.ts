import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeClose,
  encodeCtl,
  encodeReply,
  encodeReplyParts,
  MAX_TARGETS,
  parseReply,
} from '../../../src/mongrel2/reply.js';
import { encodeChunk, encodeResponseHead, LAST_CHUNK, reasonPhrase } from '../../../src/mongrel2/http-head.js';
import { parseRequest } from '../../../src/mongrel2/request.js';
import { decodeTNetstring } from '../../../src/mongrel2/tnetstring.js';
import { fixture, fixtureNames } from '../fixtures.js';
import { dict, latin1, throwsFrame } from './helpers.js';

const S1 = '0b9a6b7e-6c35-4b6c-9a3c-000000000001';
const S3 = '0b9a6b7e-6c35-4b6c-9a3c-000000000003';

const textHead = (extra: [string, string][]): Buffer =>
  encodeResponseHead(200, [['Content-Type', 'text/plain'], ...extra]);

test('reply-content-length.bin is reproduced byte for byte', () => {
  const body = latin1('ok json msg 7 path /json/cl\n');
  const payload = Buffer.concat([textHead([['Content-Length', String(body.length)]]), body]);
  assert.deepEqual(encodeReply(S1, ['18'], payload), fixture('reply-content-length.bin'));
  assert.deepEqual(encodeReply(S1, ['18'], payload.toString('latin1')), fixture('reply-content-length.bin'));
});

test('reply-multi-id.bin: one message to three connections', () => {
  const body = latin1('released 34,35,36\n');
  const payload = Buffer.concat([textHead([['Content-Length', String(body.length)]]), body]);
  assert.deepEqual(encodeReply(S1, ['34', '35', '36'], payload), fixture('reply-multi-id.bin'));
});

test('reply-chunked-*.bin: head, three chunks, last chunk', () => {
  const msgs = [
    encodeReply(S1, ['19'], textHead([['Transfer-Encoding', 'chunked']])),
    ...['alpha-', 'beta-', 'gamma'].map((c) => Buffer.concat(encodeReplyParts(S1, ['19'], encodeChunk(latin1(c))))),
    encodeReply(S1, ['19'], LAST_CHUNK),
  ];
  const names = fixtureNames((n) => n.startsWith('reply-chunked-'));
  assert.equal(names.length, 5);
  names.forEach((name, i) => assert.deepEqual(msgs[i], fixture(name), name));
});

test('reply-no-length-body.bin and reply-close.bin', () => {
  const payload = Buffer.concat([textHead([]), latin1('no-length body, ended by close')]);
  assert.deepEqual(encodeReply(S1, ['20'], payload), fixture('reply-no-length-body.bin'));
  assert.deepEqual(encodeClose(S1, ['20']), fixture('reply-close.bin'));
  assert.deepEqual(encodeReply(S1, ['20'], Buffer.alloc(0)), fixture('reply-close.bin'), 'empty payload = close');
});

test('reply-websocket-101.bin answers the captured handshake', () => {
  const hs = parseRequest(fixture('websocket-handshake.json-protocol.bin'));
  const head = encodeResponseHead(101, [
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Accept', hs.body.toString('latin1')],
  ]);
  assert.equal(reasonPhrase(101), 'Switching Protocols');
  assert.deepEqual(encodeReply(hs.sender, [hs.connId], head), fixture('reply-websocket-101.bin'));
  const text = latin1('echo:hello websocket');
  const frame = Buffer.concat([Buffer.from([0x81, text.length]), text]);
  assert.deepEqual(encodeReply(hs.sender, [hs.connId], frame), fixture('reply-websocket-text-frame.bin'));
});

test('reply-x-credits.bin is the ctl credits message', () => {
  assert.deepEqual(encodeCtl(S3, ['1'], { credits: 65536 }), fixture('reply-x-credits.bin'));
});

test('parseReply reads every reply fixture back', () => {
  const expected: Record<string, [string, string[], boolean]> = {
    'reply-content-length.bin': [S1, ['18'], false],
    'reply-multi-id.bin': [S1, ['34', '35', '36'], false],
    'reply-close.bin': [S1, ['20'], false],
    'reply-x-credits.bin': [S3, ['1'], true],
    'reply-websocket-101.bin': [S1, ['39'], false],
  };
  const names = fixtureNames((n) => n.startsWith('reply-'));
  assert.equal(names.length, 12);
  for (const name of names) {
    const msg = fixture(name);
    const r = parseReply(msg);
    const exp = expected[name];
    if (exp !== undefined) assert.deepEqual([r.sender, r.connIds, r.extended], exp, name);
    if (r.extended) {
      assert.deepEqual(decodeTNetstring(r.payload), ['ctl', dict({ credits: 65536 })]);
    } else {
      assert.deepEqual(encodeReply(r.sender, r.connIds, r.payload), msg, `${name} re-encodes identically`);
    }
  }
  assert.equal(parseReply(fixture('reply-close.bin')).payload.length, 0);
});

test('parseReply accepts a trailing space after the ids, as Mongrel2 does', () => {
  const r = parseReply(latin1('abc-1 5:1 22 , x'));
  assert.deepEqual([r.sender, r.connIds, r.payload.toString()], ['abc-1', ['1', '22'], 'x']);
});

function tooManyIds(): string {
  const ids = Array.from({ length: MAX_TARGETS + 1 }, () => '1').join(' ');
  return `abc ${ids.length}:${ids}, x`;
}

test('parseReply rejects what Mongrel2 would drop', () => {
  const bad = [
    '',
    ' 2:18, x',
    'bad_sender 2:18, x',
    'abc 3:18, x',
    'abc 1:18, x',
    'abc 2:18,x',
    'abc 2:18,',
    'abc 2:1a, x',
    'abc 0:, x',
    'abc 3:1  , x',
    'abc 2:X , x',
    'abc x:18, x',
    tooManyIds(),
  ];
  for (const s of bad) throwsFrame(() => parseReply(latin1(s)), s);
  // Every cut before the payload starts is malformed; cuts inside the payload are just shorter replies.
  for (const name of fixtureNames((n) => n.startsWith('reply-'))) {
    const msg = fixture(name);
    const payloadAt = msg.indexOf(', ') + 2;
    for (let i = 0; i < payloadAt; i++) throwsFrame(() => parseReply(msg.subarray(0, i)), `${name} cut at ${i}`);
  }
});

test(`at most ${MAX_TARGETS} ids per message`, () => {
  const ids = Array.from({ length: MAX_TARGETS }, (_, i) => String(i + 1));
  const msg = encodeReply(S1, ids, 'x');
  assert.deepEqual(parseReply(msg).connIds, ids);
  assert.throws(() => encodeReply(S1, [...ids, '999'], 'x'), RangeError);
  assert.throws(() => encodeClose(S1, [...ids, '999']), RangeError);
  assert.throws(() => encodeCtl(S1, [...ids, '999'], { credits: 1 }), RangeError);
  assert.throws(() => encodeReplyParts(S1, [...ids, '999'], []), RangeError);
  assert.throws(() => encodeReply(S1, [], 'x'), RangeError);
});

test('refuses ids Mongrel2 could not parse, and senders Mongrel2 could not have sent', () => {
  for (const id of ['', 'abc', '-1', '1 2', '1.5', ' 1']) assert.throws(() => encodeReply(S1, [id], 'x'), TypeError, id);
  for (const s of ['', 'has space', 'tab\there', 'nul\0', 'del\x7f', '€']) assert.throws(() => encodeReply(s, ['1'], 'x'), TypeError, s);
});

test('a sender outside [A-Za-z0-9-] (send_ident "web_1") goes out as a token Mongrel2 parses', () => {
  // Mongrel2 1.12 drops a reply whose first token is `web_1` ("Failed to parse message from
  // handler") and checks the token against nothing but the recv_ident prefix.
  for (const [sender, token] of [
    ['web_1', 'web-1'],
    ['a.b:c', 'a-b-c'],
    ['ünï', '-n-'],
    [S1, S1],
  ] as const) {
    for (const msg of [encodeReply(sender, ['7'], 'x'), encodeClose(sender, ['7']), encodeCtl(sender, ['7'], { credits: 1 }), Buffer.concat(encodeReplyParts(sender, ['7'], []))]) {
      assert.equal(parseReply(msg).sender, token, sender);
    }
  }
});

test('every sender parseRequest accepts can be answered (the codecs agree)', () => {
  const senders = ['web_1', 'x', S3, '\xff\x80', '~!@#$%^&*()_+{}|:"<>?', 'a'.repeat(300)];
  for (const sender of senders) {
    const h = '{"METHOD":"GET"}';
    const req = parseRequest(latin1(`${sender} 5 /p ${h.length}:${h},0:,`));
    assert.equal(req.sender, sender);
    const reply = parseReply(encodeReply(req.sender, [req.connId], 'ok'));
    assert.deepEqual(reply.connIds, ['5']);
  }
  for (const bad of ['tab\tx', 'nul\0x', 'del\x7f', 'cr\rx']) {
    const h = '{"METHOD":"GET"}';
    throwsFrame(() => parseRequest(latin1(`${bad} 5 /p ${h.length}:${h},0:,`)), JSON.stringify(bad));
  }
});

test('string payloads are byte strings', () => {
  const msg = encodeReply(S1, ['5'], '\xff\x00é');
  assert.deepEqual(msg.subarray(msg.length - 3), Buffer.from([0xff, 0x00, 0xe9]));
  assert.throws(() => encodeReply(S1, ['5'], '€'), TypeError);
});

test('encodeReplyParts: header first, payload buffers passed through untouched', () => {
  const a = latin1('hello ');
  const b = latin1('world');
  const parts = encodeReplyParts(S1, ['1', '2'], [a, b]);
  assert.equal(parts.length, 3);
  assert.equal(parts[0]!.toString(), `${S1} 3:1 2, `);
  assert.equal(parts[1], a);
  assert.equal(parts[2], b);
  assert.deepEqual(Buffer.concat(parts), encodeReply(S1, ['1', '2'], Buffer.concat([a, b])));
});

test('encodeCtl with other args', () => {
  const msg = encodeCtl(S1, ['3', '4'], { 'keep-alive': true });
  const r = parseReply(msg);
  assert.equal(r.extended, true);
  assert.deepEqual(r.connIds, ['3', '4']);
  assert.deepEqual(decodeTNetstring(r.payload), ['ctl', dict({ 'keep-alive': true })]);
  assert.equal(msg.toString('latin1', 0, S1.length + 8), `${S1} 5:X 3 4`);
});
