/**
 * The client half's liveness for one proxied WebSocket (websocket-session.ts): keep-alives
 * for Mongrel2, pings for the client, and the limits that end a WebSocket nobody uses.
 *
 * - The client is pinged when it has said nothing for ping_interval; a ping unanswered as
 *   long expires the WebSocket ('no pong'). Our pings carry PING_PREFIX, so their pongs are
 *   recognised and not forwarded to the upstream (they are not its business).
 * - A ping is a frame in the client's byte stream, and Mongrel2 writes our bytes verbatim:
 *   written while a relayed frame is half sent, it would land inside that frame's payload
 *   (the message corrupted, the client then closed for a pong it could not send). So a ping
 *   that falls due mid-frame waits for the frame's end, and the pong clock starts only once
 *   the ping is written: a frame that is slow to arrive is not the client's silence.
 * - No data message either way for idle_timeout expires it ('idle timeout').
 */
import { encodeCtl } from '../mongrel2/reply.js';
import { OPCODE, encodeFrame } from '../websocket/frame.js';
import type { ClientConnection } from './client-connection.js';

/** Payload of our keep-alive pings: recognisable in the client's pong, which is then swallowed. */
const PING_PREFIX = 'm2gw-ping:';

export type Expiry = 'idle timeout' | 'no pong';

export interface KeepAliveLimits {
  readonly pingIntervalMs: number;
  readonly idleTimeoutMs: number;
}

export class ClientKeepAlive {
  private readonly conn: ClientConnection;
  private readonly limits: KeepAliveLimits;
  /** True while a frame toward the client is half written (nothing may be written between its bytes). */
  private readonly midFrame: () => boolean;
  private readonly onExpired: (why: Expiry) => void;
  private timer: NodeJS.Timeout | null = null;
  private lastFromClient = Date.now();
  private lastMessage = Date.now();
  private lastCtl = Date.now();
  private pingOut: { payload: string; at: number } | null = null;
  /** A ping fell due while a frame was half written: it goes out at that frame's end. */
  private pingDue = false;
  private pingSeq = 0;

  constructor(conn: ClientConnection, limits: KeepAliveLimits, midFrame: () => boolean, onExpired: (why: Expiry) => void) {
    this.conn = conn;
    this.limits = limits;
    this.midFrame = midFrame;
    this.onExpired = onExpired;
  }

  /** The WebSocket is open: the checks run until stop(). */
  start(): void {
    if (this.timer) return;
    const tick = Math.max(50, Math.min(this.limits.pingIntervalMs, this.limits.idleTimeoutMs) / 4);
    this.timer = setInterval(() => this.tick(), tick);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.pingDue = false;
  }

  /** Any frame from the client: it is there. */
  fromClient(now: number): void {
    this.lastFromClient = now;
    this.pingDue = false;
  }

  /** A data message, either way: the WebSocket is in use. */
  message(now: number): void {
    this.lastMessage = now;
  }

  /** A pong from the client: true when it answers our ping (then it goes no further). */
  answersOurPing(payload: Buffer): boolean {
    if (this.pingOut === null || payload.toString('latin1') !== this.pingOut.payload) return false;
    this.pingOut = null;
    return true;
  }

  /** A relayed frame toward the client is complete: a ping held back for it can go. */
  frameEnded(): void {
    if (this.pingDue && this.timer) this.ping(Date.now());
  }

  private tick(): void {
    const now = Date.now();
    if (now - this.lastMessage >= this.limits.idleTimeoutMs) return this.onExpired('idle timeout');
    if (now - this.lastCtl >= this.limits.pingIntervalMs) {
      // Mongrel2 does not count WebSocket frames as activity (its state loop, which calls
      // Register_ping, is not re-entered per frame), so with limits.min_ping exceeded and low
      // read/write rates it kills even a chatty WebSocket. `ctl keep-alive` is what resets it.
      // It is a message of its own, never part of the byte stream, so a half-written frame does not matter.
      this.lastCtl = now;
      this.conn.socket.send(encodeCtl(this.conn.replySender, [this.conn.connId], { 'keep-alive': true }));
    }
    if (this.pingOut !== null) {
      if (now - this.pingOut.at >= this.limits.pingIntervalMs) this.onExpired('no pong');
      return;
    }
    if (now - this.lastFromClient >= this.limits.pingIntervalMs) this.ping(now);
  }

  private ping(now: number): void {
    if (this.midFrame()) {
      this.pingDue = true;
      return;
    }
    this.pingDue = false;
    const payload = PING_PREFIX + (++this.pingSeq).toString(36);
    this.pingOut = { payload, at: now };
    this.conn.write(encodeFrame(OPCODE.PING, Buffer.from(payload, 'latin1')), true);
  }
}
