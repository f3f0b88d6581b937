/** The WebSocket frame decoder (src/websocket/frame.ts), client side (masked) and upstream side. */
import { WebSocketProtocolError } from '../../src/errors.js';
import { encodeClosePayload, encodeFrame, FrameDecoder, OPCODE } from '../../src/websocket/frame.js';
import { bytePieces, FuzzFailure, randomPieces, type FuzzTarget } from '../core.js';
import { rng } from '../mutate.js';

const MASK = Buffer.from([1, 2, 3, 4]);

/** Everything the decoder reports, as one string, so different splits can be compared. */
export function decodeFrames(pieces: readonly Buffer[], masking: 'required' | 'forbidden'): string {
  const out: string[] = [];
  let payload: Buffer[] = [];
  const d = new FrameDecoder(
    {
      onDataStart: (h) => out.push(`start:${h.opcode}:${h.fin}:${h.length}`),
      onDataPayload: (c) => payload.push(Buffer.from(c)),
      onDataEnd: () => {
        out.push(`data:${Buffer.concat(payload).toString('latin1')}`);
        payload = [];
      },
      onControl: (op, p) => out.push(`ctl:${op}:${p.toString('latin1')}`),
    },
    { masking, maxMessageBytes: 1 << 20 },
  );
  try {
    for (const p of pieces) d.push(p);
  } catch (e) {
    if (!(e instanceof WebSocketProtocolError)) throw e;
    return out.join('\n') + `\nerror:${e.message}`;
  }
  return out.join('\n');
}

const splitRng = rng(11);

/** For the scaling check: the decoder alone, without the bookkeeping decodeFrames does. */
function decodeQuietly(pieces: readonly Buffer[], masking: 'required' | 'forbidden'): void {
  const d = new FrameDecoder({ onDataStart() {}, onDataPayload() {}, onDataEnd() {}, onControl() {} }, { masking, maxMessageBytes: 1 << 30 });
  for (const p of pieces) d.push(p);
}

function seeds(mask: boolean): Buffer[] {
  const m = mask ? { maskKey: MASK } : {};
  return [
    encodeFrame(OPCODE.TEXT, Buffer.from('hello'), m),
    Buffer.concat([encodeFrame(OPCODE.TEXT, Buffer.from('frag'), { ...m, fin: false }), encodeFrame(OPCODE.PING, Buffer.from('p'), m), encodeFrame(OPCODE.CONTINUATION, Buffer.from('ment'), m)]),
    encodeFrame(OPCODE.BINARY, Buffer.alloc(300, 7), m),
    encodeFrame(OPCODE.BINARY, Buffer.alloc(70_000, 9), m),
    encodeFrame(OPCODE.CLOSE, encodeClosePayload(1000, 'bye'), m),
  ];
}

function target(name: string, masking: 'required' | 'forbidden'): FuzzTarget {
  return {
    name,
    seeds: () => seeds(masking === 'required'),
    run(input) {
      const whole = decodeFrames([input], masking);
      if (decodeFrames(randomPieces(input, splitRng, 1 + splitRng.int(5)), masking) !== whole) throw new FuzzFailure('random split decodes differently');
      if (input.length <= 1024 && decodeFrames(bytePieces(input), masking) !== whole) throw new FuzzFailure('1-byte pieces decode differently');
    },
    expected: [],
    maxInputBytes: 128 * 1024,
    budgetMs: 10,
    runShape: (pieces) => decodeQuietly(pieces as Buffer[], masking),
    shapes: [
      { name: 'many tiny frames', make: (n) => [Buffer.concat(Array<Buffer>(Math.floor(n / 8)).fill(encodeFrame(OPCODE.BINARY, Buffer.from('x'), masking === 'required' ? { maskKey: MASK } : {})))] },
      { name: 'one frame in 5-byte pieces', make: (n) => slices(encodeFrame(OPCODE.BINARY, Buffer.alloc(n, 1), masking === 'required' ? { maskKey: MASK } : {}), 5) },
    ],
  };
}

function slices(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

export const websocketClientTarget = target('websocket-frames-client', 'required');
export const websocketUpstreamTarget = target('websocket-frames-upstream', 'forbidden');
