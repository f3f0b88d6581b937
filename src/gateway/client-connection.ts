/**
 * One browser connection as Mongrel2 numbers it (server, conn id): the outbound
 * byte queue toward Mongrel2. (Its pipelined requests wait in pipeline.ts.)
 *
 * Mongrel2 drops a client when too much is queued for it: more than 16 messages
 * without `download.flow_control`, more than its DOWNLOAD_CREDITS (100 KiB) of
 * unacknowledged bytes with it. So outbound bytes are coalesced here and released
 * only as credits allow; when the queue grows past HIGH_WATER the response writer
 * pauses its upstream, and resumes it once a flush brings the queue under LOW_WATER.
 *
 * Without credits nothing tells us what the client has read, so the only safe rule
 * is one that holds for a client that reads nothing at all: a response may never be
 * cut into more than RESPONSE_MESSAGE_BUDGET messages. Message sizes therefore grow
 * with the response (each at least as large as everything it already sent: 256 KiB,
 * 256 KiB, 512 KiB, 1 MiB ... 256 MiB), so 512 MiB fit in the budget, and the last
 * message of the budget waits for the response's end. The price is memory: Mongrel2
 * holds what a slow client has not read (up to the whole response), and we hold the
 * message being filled (up to half of what was sent so far). download.flow_control
 * bounds both; the gateway warns when it is off.
 *
 * A quiet open request (long poll, SSE between events) sends nothing, and Mongrel2's
 * timers kill a connection once `limits.min_ping` passes without a ping *and* its read
 * and write rates are under `min_read_rate`/`min_write_rate` (all three, with the default
 * `kill_limit` 2). `["ctl", {"keep-alive": 1}]` is that ping, so while a request is open
 * we send one whenever nothing went out for keepAliveMs.
 *
 * But a ping is only owed to a quiet *upstream*. With flow control, bytes sent and not yet
 * credited mean the quiet is the client's: it is not reading. Pinging then would keep Mongrel2
 * from ever dropping it, while its response holds a paused upstream connection (a pool slot)
 * forever. So no ping while the client owes credits, and a client that returns none for
 * sendTimeoutMs while its response is open is dropped (a cancel, which also discards what
 * Mongrel2 still holds for it): nginx's send_timeout, for the same reason.
 *
 * Owing credits has a second cause: the client left and Mongrel2 never said so. If its write
 * to a reset client fails first, its deliver task exits, and the connection task then sends no
 * disconnect (connection.c sends one only while that task runs): a race. Mongrel2 answers any
 * message for a connection it no longer has with a disconnect (handler.c), so every keepAliveMs
 * without credits an owing client gets `["ctl", {}]`, a probe that leaves a live one alone.
 */
import { encodeClose, encodeCtl, encodeReplyParts } from '../mongrel2/reply.js';

/** Above this many queued bytes the upstream is paused. */
export const HIGH_WATER = 512 * 1024;
/** Below this the upstream resumes. */
export const LOW_WATER = 128 * 1024;
/** Without flow control, the smallest message sent before the response ends. */
export const MIN_MESSAGE = 256 * 1024;
/** Without flow control, one message carries at most this much (Mongrel2 copies each into one buffer). */
export const MAX_MESSAGE = 256 * 1024 * 1024;
/**
 * Without flow control, the most messages one response may take: Mongrel2 queues 16 per
 * connection; one is left for the close message and one for the previous response's tail
 * (a pipelined request starts before the previous response's last bytes left).
 */
export const RESPONSE_MESSAGE_BUDGET = 14;
/**
 * Without flow control, small pieces wait at most this long for company, but only for a
 * response's first few messages: each such message spends budget a size-based one would not.
 */
const COALESCE_DELAY_MS = 2;
const LATENCY_MESSAGES = 4;
/** Without flow control, how long an answer gets to reach the client before a cancel ends its connection. */
const CANCEL_GRACE_MS = 1_000;
/** Default quiet time after which an open request sends Mongrel2 a keep-alive (its min_ping is 120 s). */
export const DEFAULT_KEEPALIVE_MS = 20_000;
/** Default time a client with an open response may leave sent bytes unread (nginx's send_timeout). */
export const DEFAULT_SEND_TIMEOUT_MS = 60_000;

/** Where replies go (a HandlerSocket; anything with send() in tests). */
export interface ReplySocket {
  send(frame: Buffer): void;
  /** The same as send(Buffer.concat(parts)) without copying the body (HandlerSocket has it). */
  sendParts?(parts: Buffer[]): void;
  /** Write what is queued now instead of at the socket's own end-of-turn flush (HandlerSocket has it). */
  flushNow?(): void;
}

export interface FlushScheduler {
  schedule(conn: ClientConnection): void;
}

export class ClientConnection {
  readonly key: string;
  readonly connId: string;
  readonly socket: ReplySocket;
  /** Token replies start with: recv_ident when set, else the request's sender UUID. */
  replySender: string;
  /** DOWNLOAD_CREDITS window; null while Mongrel2 runs without download.flow_control. */
  window: number | null = null;
  private unacked = 0;
  private out: Buffer[] = [];
  private outBytes = 0;
  private closeQueued = false;
  /** Set once the close message went out (or the client disconnected): nothing more is sent. */
  finished = false;
  private drainWaiters: Array<() => void> = [];
  private coalesceTimer: NodeJS.Timeout | null = null;
  private forceFlush = false;
  private readonly scheduler: FlushScheduler;
  /** Called after the close message is sent: the connection table forgets the connection. */
  onClosed: (() => void) | null = null;
  /** Called once the client was dropped for reading nothing for sendTimeoutMs (the cancel is sent). */
  onStalled: (() => void) | null = null;
  /** Without flow control: messages and bytes the current response has sent. */
  private responseMessages = 0;
  private responseBytes = 0;
  /** Requests being answered on this connection (a keep-alive ping is due only while > 0). */
  private openRequests = 0;
  private lastSendAt = 0;
  /** With flow control: when the client last owed nothing or returned credits, while it owes some (else 0). */
  private owingSince = 0;
  /** Runs while a request is open: keep-alive pings and the send timeout. */
  private tickTimer: NodeJS.Timeout | null = null;
  /** Quiet time before a keep-alive ctl message; 0 disables them. */
  keepAliveMs = DEFAULT_KEEPALIVE_MS;
  /** With flow control, how long an open response's client may return no credits; 0 = forever. */
  sendTimeoutMs = DEFAULT_SEND_TIMEOUT_MS;

  constructor(key: string, connId: string, socket: ReplySocket, replySender: string, scheduler: FlushScheduler) {
    this.key = key;
    this.connId = connId;
    this.socket = socket;
    this.replySender = replySender;
    this.scheduler = scheduler;
  }

  get queuedBytes(): number {
    return this.outBytes;
  }

  /** Bytes sent that Mongrel2 has not yet reported written (0 without flow control). */
  get unackedBytes(): number {
    return this.unacked;
  }

  get closing(): boolean {
    return this.closeQueued;
  }

  /** Queue bytes for the client. `urgent`: flush at the end of this turn even if small. */
  write(chunk: Buffer, urgent = false): void {
    if (this.finished || this.closeQueued || chunk.length === 0) return;
    this.out.push(chunk);
    this.outBytes += chunk.length;
    if (urgent) this.forceFlush = true;
    this.scheduler.schedule(this);
  }

  /** Send what is queued at the end of this turn even if it is small (a response ended). */
  flushSoon(): void {
    if (this.finished) return;
    this.forceFlush = true;
    this.scheduler.schedule(this);
  }

  /**
   * Set while a streamed upload on this connection is incomplete: Mongrel2's upload reader
   * then sleeps until it gets credits, and only `["ctl", {"cancel": 1}]` wakes it to end the
   * connection (the close message alone would leave it asleep, the connection half dead).
   * But cancel drops what is still queued in Mongrel2, so it goes out only once our last
   * bytes were written: acknowledged by credits with flow control, CANCEL_GRACE_MS later without.
   */
  closeByCancel = false;
  private cancelTimer: NodeJS.Timeout | null = null;

  /** Queue the close message: sent after every byte queued before it. */
  close(): void {
    if (this.finished || this.closeQueued) return;
    this.closeQueued = true;
    this.forceFlush = true;
    this.scheduler.schedule(this);
  }

  /** A new client behind a reused conn id (its first request carries DOWNLOAD_CREDITS): start afresh. */
  resetCredits(window: number): void {
    this.window = window;
    this.unacked = 0;
    this.owingSince = 0;
  }

  /** Bytes Mongrel2 reports written to the client. */
  credit(bytes: number): void {
    this.unacked = Math.max(0, this.unacked - bytes);
    this.owingSince = this.unacked > 0 ? performance.now() : 0;
    if (this.outBytes > 0 || this.closeQueued) {
      this.forceFlush = true;
      this.scheduler.schedule(this);
    }
  }

  /**
   * A request on this connection is being answered (its response is the next one written).
   * Starts the per-response message budget and, while it is open, the keep-alive pings.
   */
  beginResponse(): void {
    this.responseMessages = 0;
    this.responseBytes = 0;
    this.openRequests++;
    this.lastSendAt = performance.now();
    this.armTick();
  }

  /** The response begun last has been handed over completely (or failed). */
  endResponse(): void {
    if (this.openRequests > 0) this.openRequests--;
    // A client that owes credits, or soon will (bytes queued), keeps the tick: what it has not
    // read is held until it reads, leaves (the probe), or the send timeout drops it.
    if (this.openRequests === 0 && this.outBytes === 0 && !this.owing()) this.stopTick();
  }

  private owing(): boolean {
    return this.window !== null && this.unacked > 0;
  }

  /**
   * Resolve when the connection wants more bytes: the queue is under LOW_WATER or, without
   * flow control, still short of the next message (pausing then would only stall it).
   */
  whenDrained(cb: () => void): void {
    if (this.wantsMore()) cb();
    else this.drainWaiters.push(cb);
  }

  private wantsMore(): boolean {
    if (this.outBytes <= LOW_WATER) return true;
    return this.window === null && !this.finished && this.outBytes < this.unmeteredTarget();
  }

  /** The client is gone: drop everything. */
  abandon(): void {
    this.finished = true;
    this.out = [];
    this.outBytes = 0;
    this.drainWaiters = [];
    if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
    this.coalesceTimer = null;
    this.openRequests = 0;
    this.stopTick();
    if (this.cancelTimer) clearTimeout(this.cancelTimer);
    this.cancelTimer = null;
  }

  /** Send what flow control allows. Called by the gateway's once-per-turn flusher. */
  flush(): void {
    if (this.finished) return;
    if (this.window === null) this.flushUnmetered();
    else this.flushMetered(this.window);
    if (this.outBytes === 0 && this.closeQueued && !this.cancelTimer) {
      if (this.closeByCancel) {
        if (this.owing()) return; // credit() flushes again
        const send = (): void => {
          this.cancelTimer = null;
          this.finished = true;
          this.stopTick();
          this.socket.send(encodeCtl(this.replySender, [this.connId], { cancel: 1 }));
          this.onClosed?.();
        };
        if (this.window !== null) send();
        else {
          this.cancelTimer = setTimeout(send, CANCEL_GRACE_MS);
          this.cancelTimer.unref();
        }
        return;
      }
      this.finished = true;
      this.stopTick();
      this.socket.send(encodeClose(this.replySender, [this.connId]));
      this.onClosed?.();
    }
    if (this.drainWaiters.length > 0 && this.wantsMore()) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Without flow control: the size the next message must reach before the response ends. */
  private unmeteredTarget(): number {
    // The budget's last message carries the rest of the response, whatever its size.
    if (this.responseMessages >= RESPONSE_MESSAGE_BUDGET - 1) return Infinity;
    return Math.min(MAX_MESSAGE, Math.max(MIN_MESSAGE, this.responseBytes));
  }

  private flushUnmetered(): void {
    if (this.outBytes === 0) return;
    const force = this.forceFlush;
    this.forceFlush = false;
    if (this.coalesceTimer) {
      clearTimeout(this.coalesceTimer);
      this.coalesceTimer = null;
    }
    // A forced flush (response head, end, error page, close) sends everything in one message.
    if (force) {
      this.sendUnmetered(Infinity);
      return;
    }
    let target = this.unmeteredTarget();
    while (this.outBytes >= target) {
      this.sendUnmetered(target);
      target = this.unmeteredTarget();
    }
    if (this.outBytes > 0 && this.responseMessages < LATENCY_MESSAGES) {
      // Small pieces early in a response: give the upstream a moment to add more, then send
      // them anyway so a short trickle is not held back.
      this.coalesceTimer = setTimeout(() => {
        this.coalesceTimer = null;
        this.forceFlush = true;
        this.scheduler.schedule(this);
      }, COALESCE_DELAY_MS);
    }
  }

  private sendUnmetered(limit: number): void {
    const size = this.sendUpTo(limit);
    this.responseMessages++;
    this.responseBytes += size;
  }

  private flushMetered(window: number): void {
    this.forceFlush = false;
    // Mongrel2 returns credits a few KiB at a time (one credits message per socket write).
    // Sending whenever any room appears would turn a large body into thousands of small
    // messages; waiting until half the window is free (or everything queued fits) keeps
    // messages large while the other half is still being written to the client.
    const threshold = Math.min(window / 2, 64 * 1024);
    while (this.outBytes > 0) {
      const room = window - this.unacked;
      if (room <= 0 || (room < threshold && room < this.outBytes)) return;
      if (this.unacked === 0) this.owingSince = performance.now();
      this.unacked += this.sendUpTo(room);
    }
  }

  /** Send one message of at most `limit` bytes from the head of the queue; returns its size. */
  private sendUpTo(limit: number): number {
    const parts: Buffer[] = [];
    let size = 0;
    while (this.out.length > 0 && size < limit) {
      const head = this.out[0]!;
      const take = Math.min(head.length, limit - size);
      if (take === head.length) {
        parts.push(head);
        this.out.shift();
      } else {
        parts.push(head.subarray(0, take));
        this.out[0] = head.subarray(take);
      }
      size += take;
    }
    this.outBytes -= size;
    const frame = encodeReplyParts(this.replySender, [this.connId], parts);
    if (this.socket.sendParts) this.socket.sendParts(frame);
    else this.socket.send(frame.length === 1 ? frame[0]! : Buffer.concat(frame));
    this.lastSendAt = performance.now();
    return size;
  }

  private armTick(): void {
    if (this.tickTimer || this.finished) return;
    const every = Math.min(this.keepAliveMs > 0 ? this.keepAliveMs : Infinity, this.sendTimeoutMs > 0 ? this.sendTimeoutMs : Infinity);
    if (every === Infinity) return;
    // Checked at a fraction of the interval: a ping goes out within keepAliveMs * 1.25 of quiet,
    // a stalled client is dropped within sendTimeoutMs * 1.25.
    const timer = setInterval(() => this.tick(), Math.max(50, every / 4));
    timer.unref();
    this.tickTimer = timer;
  }

  private tick(): void {
    const owing = this.owing();
    if (this.finished || (this.openRequests === 0 && !owing)) {
      this.stopTick();
      return;
    }
    const now = performance.now();
    if (owing && this.sendTimeoutMs > 0 && this.owingSince > 0 && now - this.owingSince >= this.sendTimeoutMs) return this.dropStalled();
    // Owing, the quiet is the client's, not the upstream's: a probe, not a ping (see the top).
    const quietSince = owing ? Math.max(this.owingSince, this.lastSendAt) : this.lastSendAt;
    if (this.keepAliveMs <= 0 || now - quietSince < this.keepAliveMs) return;
    this.lastSendAt = now;
    this.socket.send(encodeCtl(this.replySender, [this.connId], owing ? {} : { 'keep-alive': 1 }));
  }

  /** The client read nothing for sendTimeoutMs: drop it (what we and Mongrel2 hold for it goes too). */
  private dropStalled(): void {
    this.abandon();
    this.socket.send(encodeCtl(this.replySender, [this.connId], { cancel: 1 }));
    this.onStalled?.();
  }

  private stopTick(): void {
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.tickTimer = null;
  }
}
