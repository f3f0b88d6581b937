import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRequire } from 'node:module';
import { WebSocketProtocolError } from '../../../src/errors.js';
import {
  CLOSE_CODE,
  FrameDecoder,
  OPCODE,
  acceptKey,
  applyMask,
  encodeClosePayload,
  encodeFrame,
  encodeFrameHead,
  isValidClientKey,
  parseClosePayload,
  type FrameDecoderOptions,
  type FrameHandler,
  type FrameHead,
} from '../../../src/websocket/frame.js';
import { prng } from '../mongrel2/helpers.js';

interface Decoded {
  opcode: number;
  fin: boolean;
  payload: Buffer;
}

/** Decodes `bytes` split at `splits`, returning every frame (data frames re-joined per frame). */
function decode(bytes: Buffer, opts: Partial<FrameDecoderOptions> = {}, splitEvery = 0): Decoded[] {
  const out: Decoded[] = [];
  let parts: Buffer[] = [];
  let head: FrameHead | null = null;
  const handler: FrameHandler = {
    onDataStart(h) {
      assert.equal(head, null, 'data start inside a frame');
      head = h;
      parts = [];
    },
    onDataPayload(chunk) {
      assert.notEqual(head, null);
      parts.push(chunk);
    },
    onDataEnd(h) {
      assert.equal(h, head);
      const payload = Buffer.concat(parts);
      assert.equal(payload.length, h.length);
      out.push({ opcode: h.opcode, fin: h.fin, payload });
      head = null;
    },
    onControl(opcode, payload) {
      out.push({ opcode, fin: true, payload });
    },
  };
  const dec = new FrameDecoder(handler, { masking: 'forbidden', maxMessageBytes: 64 * 1024 * 1024, ...opts });
  if (splitEvery <= 0) dec.push(bytes);
  else for (let i = 0; i < bytes.length; i += splitEvery) dec.push(bytes.subarray(i, i + splitEvery));
  return out;
}

function rejects(bytes: Buffer, closeCode: number, opts: Partial<FrameDecoderOptions> = {}): void {
  assert.throws(
    () => decode(bytes, opts),
    (e: unknown) => e instanceof WebSocketProtocolError && e.closeCode === closeCode,
  );
}

/** ws's own frame parser and writer (not in @types/ws): the reference implementation to agree with. */
interface WsReceiver {
  on(event: 'message', cb: (data: Buffer, binary: boolean) => void): void;
  write(chunk: Buffer): void;
}
interface WsSender {
  send(data: Buffer, opts: { binary: boolean; fin: boolean; mask: boolean; compress: boolean }, cb?: () => void): void;
  close(code: number, reason: string, mask: boolean, cb?: () => void): void;
}
const { Receiver, Sender } = createRequire(import.meta.url)('ws') as {
  Receiver: new (opts: { isServer: boolean }) => WsReceiver;
  Sender: new (socket: { write(b: Buffer, cb?: () => void): void; cork(): void; uncork(): void }) => WsSender;
};

const MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

describe('Sec-WebSocket-Accept', () => {
  it('matches RFC 6455 §1.3 and the Mongrel2 capture', () => {
    assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    // fixtures/websocket-handshake.*: Mongrel2's body is this value.
    assert.equal(acceptKey('ly1TZnliStMikKnGSQFgug=='), 'ziX/nVqK8NHeQveZAxkd5Zr2RAU=');
  });
  it('validates client keys as base64 of 16 bytes', () => {
    assert.ok(isValidClientKey('dGhlIHNhbXBsZSBub25jZQ=='));
    assert.ok(!isValidClientKey('dGhlIHNhbXBsZSBub25jZQ='));
    assert.ok(!isValidClientKey(''));
    assert.ok(!isValidClientKey('dGhlIHNhbXBsZSBub25jZQ==\r\nX: y'));
  });
});

describe('frame encoding', () => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    it(`length ${length}: header size and round trip, masked and not`, () => {
      const payload = Buffer.alloc(length, 0x61);
      const plain = encodeFrame(OPCODE.BINARY, payload);
      const expectedHead = length < 126 ? 2 : length <= 65535 ? 4 : 10;
      assert.equal(plain.length, expectedHead + length);
      assert.equal(plain[1]! & 0x7f, length < 126 ? length : length <= 65535 ? 126 : 127);
      assert.deepEqual(decode(plain), [{ opcode: OPCODE.BINARY, fin: true, payload }]);
      const masked = encodeFrame(OPCODE.BINARY, payload, { maskKey: MASK });
      assert.equal(masked.length, expectedHead + 4 + length);
      assert.equal(masked[1]! & 0x80, 0x80);
      assert.deepEqual(decode(masked, { masking: 'required' }), [{ opcode: OPCODE.BINARY, fin: true, payload }]);
      assert.equal(payload[0] ?? 0x61, 0x61, 'payload not changed by masking');
    });
  }

  it('the RFC 6455 §5.7 examples', () => {
    assert.deepEqual(encodeFrame(OPCODE.TEXT, Buffer.from('Hello')), Buffer.from('810548656c6c6f', 'hex'));
    assert.deepEqual(encodeFrame(OPCODE.TEXT, Buffer.from('Hello'), { maskKey: Buffer.from('37fa213d', 'hex') }), Buffer.from('818537fa213d7f9f4d5158', 'hex'));
    assert.deepEqual(encodeFrame(OPCODE.PING, Buffer.from('Hello')), Buffer.from('890548656c6c6f', 'hex'));
    assert.deepEqual(encodeFrameHead(true, OPCODE.BINARY, 256), Buffer.from('827e0100', 'hex'));
    assert.deepEqual(encodeFrameHead(true, OPCODE.BINARY, 65536), Buffer.from('827f0000000000010000', 'hex'));
  });

  it('matches the Mongrel2 reply capture byte for byte', () => {
    assert.deepEqual(encodeFrame(OPCODE.TEXT, Buffer.from('echo:hello websocket')), Buffer.from('\x81\x14echo:hello websocket', 'latin1'));
  });

  it('refuses fragmented or oversized control frames', () => {
    assert.throws(() => encodeFrame(OPCODE.PING, Buffer.alloc(126)), RangeError);
    assert.throws(() => encodeFrame(OPCODE.CLOSE, Buffer.alloc(2), { fin: false }), RangeError);
    assert.doesNotThrow(() => encodeFrame(OPCODE.PONG, Buffer.alloc(125)));
  });

  it('applyMask at an offset equals masking the whole', () => {
    const data = Buffer.from('0123456789abcdef');
    const whole = applyMask(Buffer.from(data), MASK);
    const a = applyMask(Buffer.from(data.subarray(0, 5)), MASK, 0);
    const b = applyMask(Buffer.from(data.subarray(5)), MASK, 5);
    assert.deepEqual(Buffer.concat([a, b]), whole);
  });

  it('ws (the reference implementation) reads what we write, masked', async () => {
    const got: Array<{ data: Buffer; binary: boolean }> = [];
    const receiver = new Receiver({ isServer: true });
    receiver.on('message', (data: Buffer, binary: boolean) => got.push({ data, binary }));
    const big = Buffer.alloc(70000, 7);
    receiver.write(encodeFrame(OPCODE.TEXT, Buffer.from('héllo'), { maskKey: MASK }));
    receiver.write(encodeFrame(OPCODE.BINARY, big.subarray(0, 100), { fin: false, maskKey: MASK }));
    receiver.write(encodeFrame(OPCODE.CONTINUATION, big.subarray(100), { maskKey: MASK }));
    await new Promise((r) => setImmediate(r));
    assert.equal(got.length, 2);
    assert.equal(got[0]!.data.toString(), 'héllo');
    assert.deepEqual(got[1]!.data, big);
    assert.equal(got[1]!.binary, true);
  });
});

describe('close payload', () => {
  it('round-trips code and UTF-8 reason', () => {
    const p = encodeClosePayload(4001, 'fermé ✓');
    assert.deepEqual(parseClosePayload(p), { code: 4001, reason: 'fermé ✓' });
    assert.deepEqual(parseClosePayload(Buffer.alloc(0)), { code: CLOSE_CODE.NO_STATUS, reason: '' });
    // fixtures/websocket-close-frame.*: body \x03\xe8bye
    assert.deepEqual(parseClosePayload(Buffer.from('\x03\xe8bye', 'latin1')), { code: 1000, reason: 'bye' });
  });
  it('cuts a long reason to 123 bytes without splitting a character', () => {
    const p = encodeClosePayload(1000, 'é'.repeat(100));
    assert.ok(p.length <= 125);
    assert.equal(parseClosePayload(p).reason, 'é'.repeat(61));
  });
  it('gives 1005/1006 as an empty payload; refuses reserved codes', () => {
    assert.equal(encodeClosePayload(1005).length, 0);
    assert.equal(encodeClosePayload(1006, 'x').length, 0);
    assert.throws(() => encodeClosePayload(999), RangeError);
    assert.throws(() => encodeClosePayload(1004), RangeError);
  });
  it('rejects malformed close payloads', () => {
    const bad = (b: Buffer, code: number): void =>
      assert.throws(() => parseClosePayload(b), (e: unknown) => e instanceof WebSocketProtocolError && e.closeCode === code);
    bad(Buffer.from([0x03]), 1002);
    bad(Buffer.from([0x03, 0xed]), 1002); // 1005 may not be sent
    bad(Buffer.from([0x00, 0x00]), 1002);
    bad(Buffer.from([0x13, 0x88]), 1002); // 5000
    bad(Buffer.from([0x03, 0xe8, 0xff, 0xfe]), 1007);
  });
});

describe('FrameDecoder', () => {
  it('reads a stream split at every possible byte', () => {
    const stream = Buffer.concat([
      encodeFrame(OPCODE.TEXT, Buffer.from('abc'), { fin: false }),
      encodeFrame(OPCODE.PING, Buffer.from('p')),
      encodeFrame(OPCODE.CONTINUATION, Buffer.alloc(300, 1), { fin: false }),
      encodeFrame(OPCODE.CONTINUATION, Buffer.alloc(0)),
      encodeFrame(OPCODE.BINARY, Buffer.alloc(70000, 2)),
      encodeFrame(OPCODE.CLOSE, encodeClosePayload(1000, 'bye')),
    ]);
    const whole = decode(stream);
    assert.deepEqual(
      whole.map((f) => [f.opcode, f.fin, f.payload.length]),
      [
        [OPCODE.TEXT, false, 3],
        [OPCODE.PING, true, 1],
        [OPCODE.CONTINUATION, false, 300],
        [OPCODE.CONTINUATION, true, 0],
        [OPCODE.BINARY, true, 70000],
        [OPCODE.CLOSE, true, 5],
      ],
    );
    for (const step of [1, 2, 3, 7, 125, 4096]) assert.deepEqual(decode(stream, {}, step), whole, `split every ${step}`);
  });

  it('reads what ws (the reference implementation) writes', async () => {
    const chunks: Buffer[] = [];
    const sink = {
      write(b: Buffer, cb?: () => void) {
        chunks.push(Buffer.from(b));
        cb?.();
      },
      cork() {},
      uncork() {},
    };
    const sender = new Sender(sink);
    const big = Buffer.alloc(1 << 20, 9);
    await new Promise<void>((r) => sender.send(big, { binary: true, fin: true, mask: false, compress: false }, () => r()));
    sender.send(Buffer.from('hi'), { binary: false, fin: true, mask: false, compress: false });
    await new Promise<void>((r) => sender.close(4321, 'done', false, () => r()));
    const frames = decode(Buffer.concat(chunks), {}, 1000);
    assert.equal(frames.length, 3);
    assert.deepEqual(frames[0]!.payload, big);
    assert.equal(frames[1]!.payload.toString(), 'hi');
    assert.deepEqual(parseClosePayload(frames[2]!.payload), { code: 4321, reason: 'done' });
  });

  it('unmasks client frames split mid-mask', () => {
    const payload = Buffer.from('the quick brown fox');
    const frame = encodeFrame(OPCODE.TEXT, payload, { maskKey: MASK });
    for (const step of [1, 3, 5]) assert.deepEqual(decode(frame, { masking: 'required' }, step)[0]!.payload, payload);
    assert.equal(frame.indexOf(payload), -1, 'the input stays masked');
  });

  it('rejects masking in the wrong direction', () => {
    rejects(encodeFrame(OPCODE.TEXT, Buffer.from('x'), { maskKey: MASK }), 1002, { masking: 'forbidden' });
    rejects(encodeFrame(OPCODE.TEXT, Buffer.from('x')), 1002, { masking: 'required' });
  });

  it('rejects RSV bits, unknown opcodes and broken fragmentation', () => {
    rejects(Buffer.from([0xc1, 0x00]), 1002); // RSV1 (permessage-deflate was not negotiated)
    rejects(Buffer.from([0x83, 0x00]), 1002); // opcode 3
    rejects(Buffer.from([0x8b, 0x00]), 1002); // opcode 0xB
    rejects(Buffer.from([0x80, 0x00]), 1002); // continuation with nothing to continue
    rejects(Buffer.concat([encodeFrame(OPCODE.TEXT, Buffer.from('a'), { fin: false }), encodeFrame(OPCODE.TEXT, Buffer.from('b'))]), 1002);
  });

  it('rejects bad control frames', () => {
    rejects(Buffer.from([0x09, 0x00]), 1002); // fragmented ping
    rejects(Buffer.concat([Buffer.from([0x89, 0x7e, 0x00, 0x7e]), Buffer.alloc(126)]), 1002); // ping of 126
    rejects(Buffer.from([0x88, 0x01, 0x03]), 1002); // close with 1-byte payload
    rejects(Buffer.from([0x88, 0x04, 0x03, 0xe8, 0xc3, 0x28]), 1007); // invalid UTF-8 reason
  });

  it('rejects non-minimal and impossible lengths', () => {
    rejects(Buffer.from([0x82, 0x7e, 0x00, 0x05, 1, 2, 3, 4, 5]), 1002);
    rejects(Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), 1002);
    rejects(Buffer.from([0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0]), 1002);
    rejects(Buffer.from([0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 1009);
  });

  it('enforces the message limit across fragments, at the frame head', () => {
    const limit = { maxMessageBytes: 1000 };
    assert.equal(decode(encodeFrame(OPCODE.BINARY, Buffer.alloc(1000)), limit).length, 1);
    // Only the head of the oversized frame is needed to refuse it.
    rejects(encodeFrameHead(true, OPCODE.BINARY, 1001), 1009, limit);
    rejects(Buffer.concat([encodeFrame(OPCODE.BINARY, Buffer.alloc(600), { fin: false }), encodeFrameHead(true, OPCODE.CONTINUATION, 401)]), 1009, limit);
    // The count restarts with each message.
    const two = Buffer.concat([encodeFrame(OPCODE.BINARY, Buffer.alloc(800)), encodeFrame(OPCODE.BINARY, Buffer.alloc(800))]);
    assert.equal(decode(two, limit).length, 2);
  });

  it('refuses input after an error', () => {
    const dec = new FrameDecoder({ onDataStart() {}, onDataPayload() {}, onDataEnd() {}, onControl() {} }, { masking: 'forbidden', maxMessageBytes: 10 });
    assert.throws(() => dec.push(Buffer.from([0x83, 0x00])), WebSocketProtocolError);
    assert.throws(() => dec.push(encodeFrame(OPCODE.TEXT, Buffer.from('x'))), WebSocketProtocolError);
  });

  it('reports the message boundary', () => {
    const dec = new FrameDecoder({ onDataStart() {}, onDataPayload() {}, onDataEnd() {}, onControl() {} }, { masking: 'forbidden', maxMessageBytes: 1000 });
    assert.ok(dec.atMessageBoundary);
    dec.push(encodeFrame(OPCODE.TEXT, Buffer.from('a'), { fin: false }));
    assert.ok(!dec.atMessageBoundary);
    dec.push(encodeFrame(OPCODE.CONTINUATION, Buffer.from('b')));
    assert.ok(dec.atMessageBoundary);
  });

  it('fuzz: random bytes only ever give frames or WebSocketProtocolError, in linear time', () => {
    const rnd = prng(8);
    for (let n = 0; n < 2000; n++) {
      const len = Math.floor(rnd() * 64);
      const bytes = Buffer.alloc(len);
      for (let i = 0; i < len; i++) bytes[i] = Math.floor(rnd() * 256);
      try {
        decode(bytes, { maxMessageBytes: 1 << 16 }, 1 + Math.floor(rnd() * 5));
      } catch (e) {
        assert.ok(e instanceof WebSocketProtocolError, `input ${bytes.toString('hex')} threw ${String(e)}`);
      }
    }
  });

  it('is linear: 8 MiB fed a byte at a time is not quadratic', () => {
    const frame = encodeFrame(OPCODE.BINARY, Buffer.alloc(1 << 16));
    let count = 0;
    const dec = new FrameDecoder({ onDataStart() {}, onDataPayload() {}, onDataEnd: () => count++, onControl() {} }, { masking: 'forbidden', maxMessageBytes: 1 << 20 });
    const started = performance.now();
    // 1 MiB of 64 KiB frames, one byte per push(): quadratic buffering would take minutes.
    const stream = Buffer.concat(Array.from({ length: 16 }, () => frame));
    for (let i = 0; i < stream.length; i++) dec.push(stream.subarray(i, i + 1));
    assert.equal(count, 16);
    assert.ok(performance.now() - started < 20_000);
  });
});

describe('applyMask', () => {
  it('equals the byte-by-byte definition for every length and offset', () => {
    const rnd = prng(6455);
    const key = Buffer.from([0x9a, 0x01, 0xfe, 0x42]);
    for (let len = 0; len < 40; len++) {
      const data = Buffer.alloc(len);
      for (let i = 0; i < len; i++) data[i] = Math.floor(rnd() * 256);
      for (let offset = 0; offset < 8; offset++) {
        const expected = Buffer.from(data);
        for (let i = 0; i < len; i++) expected[i] = expected[i]! ^ key[(offset + i) % 4]!;
        assert.deepEqual(applyMask(Buffer.from(data), key, offset), expected, `len ${len} offset ${offset}`);
      }
    }
  });
});
