/** ZMTP 3 as m2gw speaks it to Mongrel2 (src/zmq/zmtp-codec.ts): frames and commands. */
import { checkGreeting, encodeGreeting, encodeReady, frameHeader, FrameDecoder, GREETING_BYTES, parseCommand, ZmtpError } from '../../src/zmq/zmtp-codec.js';
import { bytePieces, FuzzFailure, randomPieces, type FuzzTarget } from '../core.js';
import { rng } from '../mutate.js';
import { mongrel2Requests } from '../fixtures.js';

function frame(body: Buffer, more = false, command = false): Buffer {
  return Buffer.concat([frameHeader(body.length, more, command), body]);
}

/** Frames (and parsed commands) as one string, so different splits can be compared. */
export function decodeZmtp(pieces: readonly Buffer[]): string {
  const d = new FrameDecoder();
  const out: string[] = [];
  try {
    for (const p of pieces) {
      d.push(p, (body, command, more) => {
        out.push(`${command ? 'c' : 'm'}${more ? '+' : ''}:${body.toString('latin1')}`);
        if (command) {
          try {
            out.push(`cmd:${parseCommand(body).name}`);
          } catch (e) {
            if (!(e instanceof ZmtpError)) throw e;
            out.push('bad-command');
          }
        }
      });
    }
  } catch (e) {
    if (!(e instanceof ZmtpError)) throw e;
    return out.join('\n') + `\nerror:${e.message}`;
  }
  return out.join('\n');
}

const splitRng = rng(13);

export const zmtpTarget: FuzzTarget = {
  name: 'zmtp-frames',
  seeds: () => [
    Buffer.concat([encodeReady('PULL'), ...mongrel2Requests('json').slice(0, 4).map((m) => frame(m))]),
    frame(Buffer.alloc(300, 0x61)),
    Buffer.concat([frame(Buffer.from('a'), true), frame(Buffer.from('b'))]),
  ],
  run(input) {
    const whole = decodeZmtp([input]);
    if (decodeZmtp(randomPieces(input, splitRng, 1 + splitRng.int(5))) !== whole) throw new FuzzFailure('random split decodes differently');
    if (input.length <= 2048 && decodeZmtp(bytePieces(input)) !== whole) throw new FuzzFailure('1-byte pieces decode differently');
  },
  expected: [],
  budgetMs: 10,
  runShape(pieces) {
    const d = new FrameDecoder();
    for (const p of pieces as Buffer[]) d.push(p, () => {});
  },
  shapes: [
    { name: 'many tiny frames', make: (n) => [Buffer.concat(Array<Buffer>(Math.floor(n / 3)).fill(frame(Buffer.from('x'))))] },
    { name: 'one long frame in 7-byte pieces', make: (n) => slices(frame(Buffer.alloc(n, 1)), 7) },
    { name: 'many short frames in 1-byte pieces', make: (n) => slices(Buffer.concat(Array<Buffer>(Math.floor(n / 12)).fill(frame(Buffer.alloc(10, 2)))), 1) },
  ],
};

function slices(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

/**
 * The handshake side: a peer's greeting judged as it arrives (checkGreeting on every prefix:
 * a prefix it accepts must be accepted again with more bytes after it, else a greeting split
 * differently would be judged differently) and its commands (parseCommand, READY properties).
 */
export const zmtpHandshakeTarget: FuzzTarget = {
  name: 'zmtp-handshake',
  seeds: () => {
    const v31 = encodeGreeting();
    v31[11] = 1;
    return [
      Buffer.concat([encodeGreeting(), encodeReady('PUB')]),
      Buffer.concat([v31, encodeReady('PULL')]),
      Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8]),
      Buffer.concat([v31.subarray(0, 12), Buffer.from('CURVE'), Buffer.alloc(47)]),
    ];
  },
  run(input) {
    let judged = -1;
    for (let n = 0; n <= Math.min(input.length, GREETING_BYTES); n++) {
      try {
        checkGreeting(input.subarray(0, n));
      } catch (e) {
        if (!(e instanceof ZmtpError)) throw e;
        judged = n;
        break;
      }
    }
    if (judged >= 0) {
      // Once refused, every longer prefix is refused too.
      for (let n = judged; n <= Math.min(input.length, GREETING_BYTES); n++) {
        let refused = false;
        try {
          checkGreeting(input.subarray(0, n));
        } catch (e) {
          if (!(e instanceof ZmtpError)) throw e;
          refused = true;
        }
        if (!refused) throw new FuzzFailure(`greeting refused at ${judged} bytes but accepted at ${n}`);
      }
    }
    // After the greeting: the same bytes as a command body (READY properties parsed).
    try {
      parseCommand(input.subarray(Math.min(input.length, GREETING_BYTES + 2)));
      parseCommand(input);
    } catch (e) {
      if (!(e instanceof ZmtpError)) throw e;
    }
  },
  expected: [],
  budgetMs: 10,
  runShape(input) {
    try {
      parseCommand(input as Buffer);
    } catch (e) {
      if (!(e instanceof ZmtpError)) throw e;
    }
  },
  shapes: [{ name: 'READY with many properties', make: (n) => readyWithProperties(Math.floor(n / 20)) }],
};

function readyWithProperties(count: number): Buffer {
  const prop = Buffer.concat([Buffer.from([6]), Buffer.from('X-Name'), Buffer.from([0, 0, 0, 9]), Buffer.from('123456789')]);
  return Buffer.concat([Buffer.from([5]), Buffer.from('READY'), ...Array<Buffer>(count).fill(prop)]);
}
