/**
 * ZMTP 3.0 framing: frames split at every offset decode the same; bad input is refused
 * with a ZmtpError, never a crash or a wrong frame.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameDecoder,
  GREETING_BYTES,
  ZmtpError,
  checkGreeting,
  encodeGreeting,
  encodeReady,
  frameHeader,
  frameHeaderBytes,
  parseCommand,
  writeFrameHeader,
  type Frame,
} from '../../../src/zmq/zmtp-codec.js';

function decodeAll(chunks: Buffer[]): Frame[] {
  const d = new FrameDecoder();
  const out: Frame[] = [];
  for (const c of chunks) d.push(c, (f) => out.push({ ...f, body: Buffer.from(f.body) }));
  assert.equal(d.pending, 0);
  return out;
}

function message(body: Buffer, more = false): Buffer {
  return Buffer.concat([frameHeader(body.length, more), body]);
}

describe('ZMTP codec', () => {
  test('greeting: 64 bytes, version 3.0, NULL; our own passes the peer check', () => {
    const g = encodeGreeting();
    assert.equal(g.length, GREETING_BYTES);
    assert.equal(g[0], 0xff);
    assert.equal(g[9], 0x7f);
    assert.deepEqual([g[10], g[11]], [3, 0]);
    checkGreeting(g);
  });

  test('greeting check refuses ZMTP 2, other mechanisms, a non-ZMTP peer', () => {
    const v2 = encodeGreeting();
    v2[10] = 1;
    assert.throws(() => checkGreeting(v2), ZmtpError);
    const plain = encodeGreeting();
    plain.write('PLAIN\0\0\0', 12, 'latin1');
    assert.throws(() => checkGreeting(plain), /PLAIN/);
    assert.throws(() => checkGreeting(Buffer.from('HTTP/1.1 400 Bad Request\r\n'.padEnd(64, ' '))), ZmtpError);
  });

  test('READY carries the socket type and parses back', () => {
    const r = encodeReady('PUB');
    const frames = decodeAll([r]);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.command, true);
    const cmd = parseCommand(frames[0]!.body);
    assert.equal(cmd.name, 'READY');
    assert.equal(cmd.properties.get('socket-type'), 'PUB');
  });

  test('short and long frames, split at every offset, decode to the same frames', () => {
    const bodies = [Buffer.from('hello'), Buffer.alloc(0), Buffer.alloc(255, 1), Buffer.alloc(256, 2), Buffer.alloc(70_000, 3)];
    const stream = Buffer.concat([...bodies.map((b) => message(b)), message(Buffer.from('part1'), true), message(Buffer.from('part2'))]);
    const whole = decodeAll([stream]);
    assert.equal(whole.length, bodies.length + 2);
    for (let i = 0; i < bodies.length; i++) assert.deepEqual(whole[i]!.body, bodies[i]);
    assert.equal(whole.at(-2)!.more, true);
    for (let cut = 1; cut < stream.length; cut += cut < 600 ? 1 : 997) {
      const split = decodeAll([stream.subarray(0, cut), stream.subarray(cut)]);
      assert.deepEqual(split.map((f) => f.body), whole.map((f) => f.body), `split at ${cut}`);
    }
    // One byte at a time around the long headers.
    const bytes = [...stream.subarray(0, 700)].map((b) => Buffer.from([b]));
    assert.deepEqual(decodeAll([...bytes, stream.subarray(700)]).map((f) => f.body), whole.map((f) => f.body));
  });

  test('writeFrameHeader matches frameHeader', () => {
    for (const size of [0, 1, 255, 256, 65_536, 2 ** 33]) {
      const out = Buffer.alloc(9);
      const end = writeFrameHeader(out, 0, size);
      assert.equal(end, frameHeaderBytes(size));
      assert.deepEqual(out.subarray(0, end), frameHeader(size, false));
    }
  });

  test('reserved flags and oversized frames are refused', () => {
    assert.throws(() => decodeAll([Buffer.from([0x08, 0])]), /reserved/);
    const huge = Buffer.alloc(9);
    huge[0] = 0x02;
    huge.writeUInt32BE(1, 1);
    assert.throws(() => decodeAll([huge]), /refused/);
    assert.throws(() => parseCommand(Buffer.from([5, 0x52])), ZmtpError);
    assert.throws(() => parseCommand(Buffer.from([5, ...Buffer.from('READY'), 11, ...Buffer.from('Socket-Type'), 0, 0, 0, 9, 0x50])), /truncated/);
  });
});
