/**
 * One browser connection as Mongrel2 numbers it (server, conn id): the outbound
 * byte queue toward Mongrel2. (Its pipelined requests wait in pipeline.ts.)
 *
 * Mongrel2 drops a client when too much is queued for it: more than 16 messages
 * without `download.flow_control`, more than its DOWNLOAD_CREDITS (100 KiB) of
 * unacknowledged bytes with it. So outbound bytes are coalesced here and released
 * only as credits allow; when the queue grows past HIGH_WATER the response writer
 * pauses its upstream, and resumes it once a flush brings the queue under LOW_WATER.
 */
import { encodeClose, encodeReplyParts } from '../mongrel2/reply.js';

/** Above this many queued bytes the upstream is paused. */
export const HIGH_WATER = 512 * 1024;
/** Below this the upstream resumes. */
export const LOW_WATER = 128 * 1024;
/** Without flow control, coalesce to at least this much before sending (unless the response ended). */
const MIN_MESSAGE = 128 * 1024;
/** Without flow control, one message carries at most this much. */
const MAX_MESSAGE = 2 * 1024 * 1024;
/** Without flow control, small pieces wait at most this long for company. */
const COALESCE_DELAY_MS = 2;

/** Where replies go (a HandlerSocket; anything with send() in tests). */
export interface ReplySocket {
  send(frame: Buffer): void;
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
  }

  /** Bytes Mongrel2 reports written to the client. */
  credit(bytes: number): void {
    this.unacked = Math.max(0, this.unacked - bytes);
    if (this.outBytes > 0 || this.closeQueued) {
      this.forceFlush = true;
      this.scheduler.schedule(this);
    }
  }

  /** Resolve when the queue is under LOW_WATER (immediately if already). */
  whenDrained(cb: () => void): void {
    if (this.outBytes <= LOW_WATER) cb();
    else this.drainWaiters.push(cb);
  }

  /** The client is gone: drop everything. */
  abandon(): void {
    this.finished = true;
    this.out = [];
    this.outBytes = 0;
    this.drainWaiters = [];
    if (this.coalesceTimer) clearTimeout(this.coalesceTimer);
    this.coalesceTimer = null;
  }

  /** Send what flow control allows. Called by the gateway's once-per-turn flusher. */
  flush(): void {
    if (this.finished) return;
    if (this.window === null) this.flushUnmetered();
    else this.flushMetered(this.window);
    if (this.outBytes === 0 && this.closeQueued) {
      this.finished = true;
      this.socket.send(encodeClose(this.replySender, [this.connId]));
      this.onClosed?.();
    }
    if (this.outBytes <= LOW_WATER && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  private flushUnmetered(): void {
    if (this.outBytes === 0) return;
    if (this.outBytes < MIN_MESSAGE && !this.forceFlush) {
      // Small pieces: give the upstream a moment to add more, so a streamed body
      // does not become dozens of tiny messages (Mongrel2 drops at 16 queued).
      if (!this.coalesceTimer) {
        this.coalesceTimer = setTimeout(() => {
          this.coalesceTimer = null;
          this.forceFlush = true;
          this.scheduler.schedule(this);
        }, COALESCE_DELAY_MS);
      }
      return;
    }
    if (this.coalesceTimer) {
      clearTimeout(this.coalesceTimer);
      this.coalesceTimer = null;
    }
    this.forceFlush = false;
    while (this.outBytes > 0) this.sendUpTo(MAX_MESSAGE);
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
    this.socket.send(frame.length === 1 ? frame[0]! : Buffer.concat(frame));
    return size;
  }
}
