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
  encodePong,
  encodeReady,
  MAX_FRAME_BYTES,
  frameHeader,
  frameHeaderBytes,
  parseCommand,
  writeFrameHeader,
} from '../../../src/zmq/zmtp-codec.js';

interface Frame {
  readonly command: boolean;
  readonly more: boolean;
  readonly body: Buffer;
}

function decodeAll(chunks: Buffer[]): Frame[] {
  const d = new FrameDecoder();
  const out: Frame[] = [];
  for (const c of chunks) d.push(c, (body, command, more) => out.push({ command, more, body: Buffer.from(body) }));
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

  test('greeting judged as it arrives: ZMTP 1.0 after 1 byte, ZMTP 2.0 after 11, a 3.1 peer split anywhere passes', () => {
    // libzmq 2.x (ZMTP 1.0) opens with its identity frame: a length byte, never 0xFF.
    assert.throws(() => checkGreeting(Buffer.from([0x01])), /ZMTP 1\.0/);
    // libzmq 3.x (ZMTP 2.0): signature, revision 1, socket type; then it waits for us.
    const v2 = Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8]);
    for (let n = 0; n <= 10; n++) checkGreeting(v2.subarray(0, n));
    assert.throws(() => checkGreeting(v2.subarray(0, 11)), /ZMTP 2\.0/);
    // libzmq 4.x greets with 3.1 (we answer 3.0 and it downgrades to 3.0).
    const v31 = encodeGreeting();
    v31[11] = 1;
    for (let n = 0; n <= GREETING_BYTES; n++) checkGreeting(v31.subarray(0, n));
    const curve = encodeGreeting();
    curve.write('CURVE', 12, 'latin1');
    for (let n = 0; n < 32; n++) checkGreeting(curve.subarray(0, n));
    assert.throws(() => checkGreeting(curve.subarray(0, 32)), /CURVE/);
    assert.throws(() => checkGreeting(Buffer.from('GET / HTTP/1.1\r\n')), ZmtpError);
  });

  test('PING is answered by a PONG echoing its context', () => {
    const ping = parseCommand(Buffer.from([4, ...Buffer.from('PING'), 0, 10, ...Buffer.from('ctx-123')]));
    const [frame] = decodeAll([encodePong(ping)]);
    assert.equal(frame!.command, true);
    assert.deepEqual(frame!.body, Buffer.from([4, ...Buffer.from('PONG'), ...Buffer.from('ctx-123')]));
    // No context, and an over-long one cut at ZMTP's 16 bytes.
    assert.deepEqual(decodeAll([encodePong(parseCommand(Buffer.from([4, ...Buffer.from('PING'), 0, 0])))])[0]!.body, Buffer.from([4, ...Buffer.from('PONG')]));
    const long = parseCommand(Buffer.from([4, ...Buffer.from('PING'), 0, 0, ...Buffer.alloc(40, 0x61)]));
    assert.equal(decodeAll([encodePong(long)])[0]!.body.length, 5 + 16);
  });

  test('an absurd 8-byte length is refused from its header alone, however the header is split', () => {
    for (const [hi, lo] of [[0, MAX_FRAME_BYTES + 1], [0x1f_ffff, 0xffff_ffff], [0xffff_ffff, 0xffff_ffff]] as const) {
      const size = `${hi}:${lo}`;
      const h = Buffer.alloc(9);
      h[0] = 0x02;
      h.writeUInt32BE(hi, 1);
      h.writeUInt32BE(lo, 5);
      for (let cut = 0; cut <= 9; cut++) {
        const d = new FrameDecoder();
        const prefix = Buffer.concat([frameHeader(3, false), Buffer.from('abc')]);
        const stream = Buffer.concat([prefix, h]);
        const at = prefix.length + cut;
        assert.throws(
          () => {
            d.push(stream.subarray(0, at), () => undefined);
            d.push(stream.subarray(at), () => undefined);
          },
          (e: unknown) => e instanceof ZmtpError && /refused/.test(e.message),
          `size ${size} cut ${cut}`,
        );
        // Nothing of the body was waited for or buffered beyond the header.
        assert.ok(d.pending <= 9 + prefix.length);
      }
    }
  });

  test('every split of a mixed stream into three pieces decodes to the same frames', () => {
    const stream = Buffer.concat([
      encodeReady('PULL'),
      message(Buffer.from('one')),
      message(Buffer.alloc(300, 9), true),
      message(Buffer.alloc(0)),
      Buffer.concat([frameHeader(7, false, true), Buffer.from([4, ...Buffer.from('PING'), 0, 1])]),
      message(Buffer.from('last')),
    ]);
    const whole = decodeAll([stream]).map((f) => [f.command, f.more, f.body.toString('hex')]);
    for (let a = 0; a <= stream.length; a += 3) {
      for (let b = a; b <= stream.length; b += 7) {
        const got = decodeAll([stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]).map((f) => [f.command, f.more, f.body.toString('hex')]);
        assert.deepEqual(got, whole, `cuts ${a}, ${b}`);
      }
    }
  });
});

