/**
 * UpstreamTunnel against a real loopback TCP socket standing in for the upstream app: what the
 * app writes is read as server frames, what the tunnel writes must be masked client frames, and
 * the promises in upstream-tunnel.ts (bounded queue, pause, closing handshake with its grace,
 * onClosed exactly once) hold.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { WebSocketProtocolError } from '../../../src/errors.js';
import { CLOSE_CODE, FrameDecoder, OPCODE, encodeFrame, parseClosePayload, type FrameHandler, type FrameHead } from '../../../src/websocket/frame.js';
import { socketPair } from '../../harness/socket-pair.js';
import { UpstreamTunnel, type TunnelEvents, type TunnelOptions } from '../../../src/websocket/upstream-tunnel.js';


interface Frame {
  opcode: number;
  fin: boolean;
  payload: Buffer;
}

/** Collects whole frames (data frames joined per frame) from a FrameDecoder. */
function collector(): FrameHandler & { frames: Frame[] } {
  const frames: Frame[] = [];
  let parts: Buffer[] = [];
  return {
    frames,
    onDataStart(): void {
      parts = [];
    },
    onDataPayload(chunk: Buffer): void {
      parts.push(Buffer.from(chunk));
    },
    onDataEnd(head: FrameHead): void {
      frames.push({ opcode: head.opcode, fin: head.fin, payload: Buffer.concat(parts) });
    },
    onControl(opcode: number, payload: Buffer): void {
      frames.push({ opcode, fin: true, payload: Buffer.from(payload) });
    },
  };
}

/** The tunnel's events, recorded. */
function recorder(): TunnelEvents & { frames: Frame[]; protocolErrors: WebSocketProtocolError[]; closes: Array<Error | null> } {
  const c = collector();
  const protocolErrors: WebSocketProtocolError[] = [];
  const closes: Array<Error | null> = [];
  return Object.assign(c, {
    protocolErrors,
    closes,
    onProtocolError: (err: WebSocketProtocolError) => protocolErrors.push(err),
    onClosed: (err: Error | null) => closes.push(err),
  });
}

/** Reads what the tunnel wrote as a server reads a client: unmasked frames are an error. */
function appReader(app: net.Socket): { frames: Frame[]; errors: Error[] } {
  const c = collector();
  const errors: Error[] = [];
  const decoder = new FrameDecoder(c, { masking: 'required', maxMessageBytes: 64 * 1024 * 1024 });
  app.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch (err) {
      errors.push(err as Error);
    }
  });
  return { frames: c.frames, errors };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const OPTS: TunnelOptions = { maxMessageBytes: 1024 * 1024, maxQueuedBytes: 256 * 1024 };

/** A tunnel over a fresh pair, with its events recorded. */
async function openTunnel(): Promise<{ app: net.Socket; ev: ReturnType<typeof recorder>; tunnel: UpstreamTunnel }> {
  const { ours, app } = await socketPair();
  const ev = recorder();
  return { app, ev, tunnel: new UpstreamTunnel(ours, OPTS, ev) };
}

/** Cut the tunnel and wait for its one onClosed. */
async function cut(t: { ev: ReturnType<typeof recorder>; tunnel: UpstreamTunnel }): Promise<void> {
  t.tunnel.destroy();
  await until(() => t.ev.closes.length === 1, 'onClosed');
}

describe('UpstreamTunnel', () => {
  it('passes server frames on as they arrive, and writes every message as one masked client frame', async () => {
    const t = await openTunnel();
    const { app, ev, tunnel } = t;
    const seen = appReader(app);
    // A text message, a binary message in two fragments, a ping; written a byte at a time would
    // work too (FrameDecoder's own tests): here, as one write, as an app would.
    app.write(
      Buffer.concat([
        encodeFrame(OPCODE.TEXT, Buffer.from('hello')),
        encodeFrame(OPCODE.BINARY, Buffer.from([1, 2]), { fin: false }),
        encodeFrame(OPCODE.CONTINUATION, Buffer.from([3])),
        encodeFrame(OPCODE.PING, Buffer.from('p')),
      ]),
    );
    await until(() => ev.frames.length === 4, 'four frames from the app');
    assert.deepEqual(
      ev.frames.map((f) => [f.opcode, f.fin, f.payload.toString('hex')]),
      [
        [OPCODE.TEXT, true, Buffer.from('hello').toString('hex')],
        [OPCODE.BINARY, false, '0102'],
        [OPCODE.CONTINUATION, true, '03'],
        [OPCODE.PING, true, Buffer.from('p').toString('hex')],
      ],
    );
    assert.equal(tunnel.sendMessage(OPCODE.TEXT, Buffer.from('to the app')), 'sent');
    tunnel.sendControl(OPCODE.PONG, Buffer.from('p'));
    await until(() => seen.frames.length === 2, 'two frames at the app');
    assert.deepEqual(seen.errors, [], 'every frame the tunnel wrote was masked');
    assert.equal(seen.frames[0]!.payload.toString(), 'to the app');
    assert.equal(seen.frames[1]!.opcode, OPCODE.PONG);
    await cut(t);
  });

  it('a masked frame from the upstream is a protocol error: reading stops, a 1002 close goes out, onClosed exactly once', async () => {
    const t = await openTunnel();
    const { app, ev, tunnel } = t;
    const seen = appReader(app);
    app.write(encodeFrame(OPCODE.TEXT, Buffer.from('masked'), { maskKey: Buffer.from([1, 2, 3, 4]) }));
    // Anything after the bad frame must not be delivered.
    app.write(encodeFrame(OPCODE.TEXT, Buffer.from('after')));
    await until(() => ev.protocolErrors.length === 1, 'the protocol error');
    await until(() => seen.frames.length === 1, 'the close frame at the app');
    assert.equal(seen.frames[0]!.opcode, OPCODE.CLOSE);
    assert.equal(parseClosePayload(seen.frames[0]!.payload).code, CLOSE_CODE.PROTOCOL_ERROR);
    assert.equal(tunnel.sendMessage(OPCODE.TEXT, Buffer.from('x')), 'closed', 'nothing more is sent once closing');
    app.end();
    await until(() => ev.closes.length === 1, 'onClosed');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(ev.closes.length, 1, 'onClosed exactly once');
    assert.equal(ev.frames.length, 0, 'no frame delivered after the bad one');
    app.destroy();
  });

  it('refuses a message over maxMessageBytes, and messages that would pile up past maxQueuedBytes behind an app that does not read', async () => {
    const t = await openTunnel();
    const { app, tunnel } = t;
    app.pause(); // the app stops reading: the kernel buffers fill, then the tunnel's queue
    assert.equal(tunnel.sendMessage(OPCODE.BINARY, Buffer.alloc(OPTS.maxMessageBytes + 1)), 'too-big');
    const piece = Buffer.alloc(64 * 1024, 7);
    let result = 'sent';
    let sent = 0;
    while (result === 'sent' && sent < 4096) {
      result = tunnel.sendMessage(OPCODE.BINARY, piece);
      if (result === 'sent') sent++;
    }
    assert.equal(result, 'queue-full', `refused after ${sent} messages`);
    assert.ok(tunnel.queuedBytes <= OPTS.maxQueuedBytes + piece.length + 14, `queued ${tunnel.queuedBytes} bytes`);
    // Once the app reads again the queue drains and messages are taken again.
    const seen = appReader(app);
    app.resume();
    await until(() => tunnel.queuedBytes === 0, 'the queue to drain');
    assert.equal(tunnel.sendMessage(OPCODE.BINARY, piece), 'sent');
    await until(() => seen.frames.length === sent + 1, 'every message accepted, at the app');
    assert.ok(seen.frames.every((f) => f.payload.equals(piece)));
    await cut(t);
  });

  it('holds pings and pongs to maxQueuedBytes too: a client pinging an app that does not read is refused, not queued without end', async () => {
    const t = await openTunnel();
    const { app, tunnel } = t;
    app.pause();
    const payload = Buffer.alloc(125, 0x70);
    let result = 'sent';
    let sent = 0;
    // The kernel's socket buffers take a few MiB first: far fewer pings than this.
    while (result === 'sent' && sent < 1_000_000) {
      result = tunnel.sendControl(sent % 2 === 0 ? OPCODE.PING : OPCODE.PONG, payload);
      if (result === 'sent') sent++;
    }
    assert.equal(result, 'queue-full', `refused after ${sent} control frames`);
    assert.ok(tunnel.queuedBytes <= OPTS.maxQueuedBytes + 131, `queued ${tunnel.queuedBytes} bytes`);
    const seen = appReader(app);
    app.resume();
    await until(() => tunnel.queuedBytes === 0, 'the queue to drain', 10_000);
    assert.equal(tunnel.sendControl(OPCODE.PING, payload), 'sent');
    await until(() => seen.frames.length === sent + 1, 'every control frame accepted, at the app', 10_000);
    await cut(t);
  });

  it('pause() holds frames back until resume()', async () => {
    const t = await openTunnel();
    const { app, ev, tunnel } = t;
    tunnel.pause();
    app.write(encodeFrame(OPCODE.TEXT, Buffer.from('later')));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(ev.frames.length, 0, 'nothing read while paused');
    tunnel.resume();
    await until(() => ev.frames.length === 1, 'the frame after resume');
    assert.equal(ev.frames[0]!.payload.toString(), 'later');
    await cut(t);
  });

  it('close(): a close frame and our FIN; an app that never answers is cut after the grace, onClosed once', async () => {
    const t = await openTunnel();
    const { app, ev, tunnel } = t;
    const seen = appReader(app);
    let appSawEnd = false;
    app.on('end', () => (appSawEnd = true));
    app.allowHalfOpen = true; // the app keeps its side open and never answers
    const started = Date.now();
    tunnel.close(CLOSE_CODE.GOING_AWAY, 'bye');
    await until(() => seen.frames.length === 1 && appSawEnd, 'the close frame and our FIN');
    assert.deepEqual(parseClosePayload(seen.frames[0]!.payload), { code: CLOSE_CODE.GOING_AWAY, reason: 'bye' });
    await until(() => ev.closes.length === 1, 'the cut after the grace', 4000);
    const waited = Date.now() - started;
    assert.ok(waited >= 900, `cut after ${waited} ms, not before the 1 s grace`);
    tunnel.close(CLOSE_CODE.NORMAL);
    tunnel.destroy();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(ev.closes.length, 1, 'onClosed exactly once');
    app.destroy();
  });
});
