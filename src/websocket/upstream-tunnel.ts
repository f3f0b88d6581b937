/**
 * The upstream half of a proxied WebSocket: the socket an HTTP upstream handed over with
 * its 101, read as server frames and written as masked client frames.
 *
 * Promises:
 * - frames read are passed on as they arrive (data payloads in pieces, never a whole
 *   message held here), so memory per tunnel is one socket read plus control frames;
 * - reads stop while paused (the client side is slow) and the kernel's socket buffers
 *   then push back on the upstream app;
 * - bytes queued toward the upstream are bounded: `sendMessage` refuses what would exceed
 *   `maxQueuedBytes` (the caller closes with 1008) and messages over `maxMessageBytes` (1009);
 *   `sendControl` holds pings and pongs to the same bound (each is small, but a client can
 *   send them as fast as it likes, and an upstream that does not read takes none of them);
 * - `onClosed` is called exactly once, whatever ended the socket.
 */
import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { WebSocketProtocolError } from '../errors.js';
import { CLOSE_CODE, FrameDecoder, OPCODE, encodeClosePayload, encodeFrame, type FrameHandler } from './frame.js';

export interface TunnelEvents extends FrameHandler {
  /** The upstream broke the protocol; the tunnel has already stopped reading. */
  onProtocolError(err: WebSocketProtocolError): void;
  /** The socket is gone (closed by either end, reset, or destroyed here). */
  onClosed(error: Error | null): void;
}

export interface TunnelOptions {
  readonly maxMessageBytes: number;
  readonly maxQueuedBytes: number;
}

export type SendResult = 'sent' | 'too-big' | 'queue-full' | 'closed';

/** After our close frame, how long the upstream gets to answer before the socket is cut. */
const CLOSE_GRACE_MS = 1000;

export class UpstreamTunnel {
  private readonly socket: Duplex;
  private readonly opts: TunnelOptions;
  private readonly events: TunnelEvents;
  private readonly decoder: FrameDecoder;
  private closed = false;
  private closeSent = false;
  private closeTimer: NodeJS.Timeout | null = null;
  private paused = false;

  constructor(socket: Duplex, opts: TunnelOptions, events: TunnelEvents) {
    this.socket = socket;
    this.opts = opts;
    this.events = events;
    this.decoder = new FrameDecoder(events, { masking: 'forbidden', maxMessageBytes: opts.maxMessageBytes });
    (socket as Partial<Socket>).setNoDelay?.(true);
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    // The peer's FIN: answer with ours (a half-open tunnel is of no use to anyone).
    socket.on('end', () => socket.end());
    if (socket.destroyed) queueMicrotask(() => this.onClose());
  }

  /** Bytes written to the socket that the kernel has not taken yet. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** One whole client message as a single masked frame. */
  sendMessage(opcode: number, payload: Buffer): SendResult {
    if (this.closed || this.closeSent) return 'closed';
    if (payload.length > this.opts.maxMessageBytes) return 'too-big';
    // A message is always accepted into an empty queue, however large (it passed the size
    // limit): the bound is on what piles up behind an upstream that does not read.
    const queued = this.socket.writableLength;
    if (queued > 0 && queued + payload.length > this.opts.maxQueuedBytes) return 'queue-full';
    this.socket.write(encodeFrame(opcode, payload, { maskKey: maskKey() }));
    return 'sent';
  }

  /** A ping or pong (payload ≤ 125 bytes). */
  sendControl(opcode: number, payload: Buffer): SendResult {
    if (this.closed || this.closeSent) return 'closed';
    const queued = this.socket.writableLength;
    if (queued > 0 && queued + payload.length > this.opts.maxQueuedBytes) return 'queue-full';
    this.socket.write(encodeFrame(opcode, payload, { maskKey: maskKey() }));
    return 'sent';
  }

  /**
   * Start the closing handshake: send a close frame (with `payload` as given, already a
   * valid close payload, or built from code and reason), end our side, and cut the socket
   * if the upstream has not closed within a second.
   */
  close(code: number, reason = '', payload?: Buffer): void {
    if (this.closed) return;
    if (!this.closeSent) {
      this.closeSent = true;
      const body = payload ?? encodeClosePayload(code, reason);
      this.socket.write(encodeFrame(OPCODE.CLOSE, body, { maskKey: maskKey() }));
      this.socket.end();
    }
    this.resume();
    this.closeTimer ??= setTimeout(() => this.destroy(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  /** Cut the socket now (client gone, shutdown). */
  destroy(): void {
    if (this.closed) return;
    this.socket.destroy();
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.socket.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof WebSocketProtocolError)) throw err;
      this.socket.off('data', this.onData);
      this.events.onProtocolError(err);
      this.close(err.closeCode === CLOSE_CODE.MESSAGE_TOO_BIG ? CLOSE_CODE.MESSAGE_TOO_BIG : err.closeCode, err.message);
    }
  };

  private error: Error | null = null;

  private readonly onError = (err: Error): void => {
    this.error ??= err;
  };

  private readonly onClose = (): void => {
    if (this.closed) return;
    this.closed = true;
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    this.events.onClosed(this.error);
  };
}

/** Mask keys come from a pooled buffer of random bytes: one syscall per 1024 frames. */
const keyPool = Buffer.alloc(4096);
let keyPos = keyPool.length;

function maskKey(): Buffer {
  if (keyPos >= keyPool.length) {
    randomFillSync(keyPool);
    keyPos = 0;
  }
  const key = keyPool.subarray(keyPos, keyPos + 4);
  keyPos += 4;
  return key;
}
