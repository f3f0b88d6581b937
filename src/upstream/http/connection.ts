/**
 * One kept-alive HTTP/1.1 connection to an upstream server, carrying one request at a time.
 *
 * Why m2gw has its own client next to undici: for the requests that make up nearly all
 * traffic (no body, or a body already in memory) undici's generality is most of the cost of
 * the upstream hop. Its Request validates and copies every header into a new head string and
 * arms a fresh timer per request; this connection writes one head string built once, and
 * keeps three timers for its life, refreshed instead of re-created. Uploads streamed from a
 * file or from the client, WebSocket upgrades and https:// still go through undici
 * (http-upstream.ts), where its body pumping and TLS are worth having.
 *
 * What the connection promises its pool (pool.ts):
 * - exactly one of `owner.release(conn)` (reusable: the response ended on a keep-alive
 *   connection, with no byte after it) or `owner.dropped(conn)` (closed) after each exchange;
 * - an exchange hears exactly one of onEnd / onFailure, after any onHead / onBody;
 * - bytes from the upstream while the connection is idle, or after the end of a response in
 *   the same read, close the connection: an upstream that sends more than it was asked for
 *   cannot be trusted with the next request (that is how a response gets smuggled in front of
 *   someone else's). Bytes that arrive in a later read once the next request is out cannot be
 *   told apart from its response (undici cannot either);
 * - a response that ends while part of the request body is still unwritten (an early 413)
 *   closes the connection: the rest of the body would otherwise be read as the next request;
 * - reads stop while the exchange is paused (the client is slow) and the body timer with them.
 */
import net from 'node:net';
import { ResponseParser, HttpResponseError, type ResponseEvents, type ResponseHead } from './response-parser.js';

/** Why an exchange failed, as the connection saw it. */
export type FailureKind = 'connect' | 'connect-timeout' | 'head-timeout' | 'body-timeout' | 'protocol' | 'reset' | 'shutdown';

export interface ExchangeFailure {
  readonly kind: FailureKind;
  readonly error: Error;
  /** The connection had carried an earlier request (a keep-alive race is possible). */
  readonly reused: boolean;
  /** Some byte of the response had arrived. */
  readonly answered: boolean;
}

/** One request on one connection. */
export interface Exchange {
  /** The request head, ending in the blank line (latin1). */
  readonly head: string;
  readonly body: Buffer | null;
  /** A HEAD request: the response has no body whatever its head says. */
  readonly headRequest: boolean;
  /** The exchange is on this connection now (it may have waited in the pool's queue). */
  onStart(conn: HttpConnection): void;
  onHead(head: ResponseHead): void;
  onBody(chunk: Buffer): void;
  onEnd(): void;
  onFailure(failure: ExchangeFailure): void;
}

export interface ConnectionOwner {
  release(conn: HttpConnection): void;
  dropped(conn: HttpConnection): void;
}

export interface ConnectionTimeouts {
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

/** The keep-alive time an upstream announces is cut by this much, so we never write as it closes. */
const KEEP_ALIVE_MARGIN_MS = 1000;

export class HttpConnection implements ResponseEvents {
  private readonly socket: net.Socket;
  private readonly parser: ResponseParser;
  private exchange: Exchange | null = null;
  private connected = false;
  private closed = false;
  private paused = false;
  /** The current response's head said the connection may be kept. */
  private keepAlive = false;
  private ended = false;
  private shuttingDown = false;
  /** The body timer should be (re)started once the current read is parsed. */
  private bodyTimerDue = false;
  /** Exchanges completed on this connection. */
  private uses = 0;
  private keepAliveMs: number;
  // One timer of each kind for the connection's life: refresh() is far cheaper than a new
  // setTimeout per request, and a timer that fires while not armed does nothing.
  private requestTimer: NodeJS.Timeout | null = null;
  private requestTimerMs = 0;
  private requestTimerArmed: 'head' | 'body' | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private idleTimerMs = 0;
  private idleTimerArmed = false;

  constructor(
    private readonly owner: ConnectionOwner,
    host: string,
    port: number,
    private readonly timeouts: ConnectionTimeouts,
  ) {
    this.keepAliveMs = timeouts.keepAliveTimeoutMs;
    this.parser = new ResponseParser(this);
    this.socket = net.connect({ host, port });
    this.socket.setNoDelay(true);
    // A kept-alive connection to a host that vanished is found out (as undici does).
    this.socket.setKeepAlive(true, 60_000);
    this.socket.on('connect', () => {
      this.connected = true;
      if (this.exchange !== null) this.armRequestTimer('head', timeouts.responseTimeoutMs);
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('end', () => this.onPeerEnd());
    this.socket.on('error', (err) => this.onSocketError(err));
    this.socket.on('close', () => this.close(new Error('upstream closed the connection')));
    this.armRequestTimer('head', timeouts.connectTimeoutMs);
  }

  /** Carries one request. The connection must be idle (fresh or released). */
  start(exchange: Exchange): void {
    this.exchange = exchange;
    this.keepAlive = false;
    this.ended = false;
    this.paused = false;
    this.idleTimerArmed = false;
    this.parser.start(exchange.headRequest);
    exchange.onStart(this);
    if (this.connected) this.armRequestTimer('head', this.timeouts.responseTimeoutMs);
    if (exchange.body === null || exchange.body.length === 0) {
      this.socket.write(exchange.head, 'latin1');
    } else {
      this.socket.cork();
      this.socket.write(exchange.head, 'latin1');
      this.socket.write(exchange.body);
      this.socket.uncork();
    }
  }

  /** The TCP connection is up (a request given to it may have been written). */
  get isConnected(): boolean {
    return this.connected;
  }

  /** Backpressure from the client side: stop reading the upstream until resume(). */
  pause(): void {
    if (this.paused || this.exchange === null) return;
    this.paused = true;
    this.socket.pause();
    if (this.requestTimerArmed === 'body') this.requestTimerArmed = null;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.exchange !== null && this.requestTimerArmed === null && !this.ended) this.armRequestTimer('body', this.timeouts.idleTimeoutMs);
    this.socket.resume();
  }

  /** The exchange is abandoned (the client left): the response is unread, so the connection goes. */
  abort(): void {
    this.exchange = null;
    this.close(null);
  }

  /** Closes the connection; an exchange on it fails as 'shutdown' (the upstream is being destroyed). */
  destroy(err: Error | null = null): void {
    this.shuttingDown = true;
    this.close(err);
  }

  // ResponseEvents, called from inside parser.feed()
  onHead(head: ResponseHead): void {
    // Only undici's path asks for upgrades: a 101 here was never asked for.
    if (head.status === 101) throw new HttpResponseError('unsolicited 101 Switching Protocols');
    this.keepAlive = head.keepAlive;
    this.keepAliveMs = this.timeouts.keepAliveTimeoutMs;
    if (head.keepAliveTimeoutS >= 0) {
      this.keepAliveMs = Math.min(this.timeouts.keepAliveTimeoutMs, head.keepAliveTimeoutS * 1000 - KEEP_ALIVE_MARGIN_MS);
      if (this.keepAliveMs <= 0) this.keepAlive = false;
    }
    // The body timer is armed after this read if the body did not end in it (most small
    // responses do): re-arming it for a different duration is a new timer each time.
    this.bodyTimerDue = true;
    this.requestTimerArmed = null;
    this.exchange?.onHead(head);
  }

  onBody(chunk: Buffer): void {
    if (this.requestTimerArmed === 'body') this.requestTimer?.refresh();
    else this.bodyTimerDue = true;
    this.exchange?.onBody(chunk);
  }

  onEnd(): void {
    this.ended = true;
  }

  private onData(chunk: Buffer): void {
    const ex = this.exchange;
    if (ex === null) {
      // Nothing was asked: an idle upstream talking is not one to send the next request to.
      this.close(null);
      return;
    }
    let used: number;
    try {
      used = this.parser.feed(chunk);
    } catch (err) {
      // The sink may have given up on the exchange during this feed (an invalid head): then it
      // has had its one answer, and only the connection goes.
      if (this.exchange === ex) this.fail(ex, 'protocol', err as Error);
      else this.close(null);
      return;
    }
    if (this.exchange !== ex) return;
    if (!this.ended) {
      if (this.bodyTimerDue && !this.paused) this.armRequestTimer('body', this.timeouts.idleTimeoutMs);
      this.bodyTimerDue = false;
      return;
    }
    this.bodyTimerDue = false;
    // The response is complete: hand the connection back before the sink hears of it, so a
    // request it sends on at once can have it.
    this.exchange = null;
    this.requestTimerArmed = null;
    this.uses++;
    if (used < chunk.length || !this.keepAlive || this.socket.writableLength > 0) {
      // Bytes after the response (unsolicited), or a request body not yet all written (an early
      // answer): the connection is not reused.
      this.close(null);
    } else {
      if (this.paused) {
        this.paused = false;
        this.socket.resume();
      }
      this.armIdleTimer();
      this.owner.release(this);
    }
    ex.onEnd();
  }

  /**
   * A reset right after a close-delimited body is its end, not an error: servers that close
   * with unread bytes (or SO_LINGER 0) reset instead of a FIN. undici reads it the same way.
   * Not while bytes are held back (the exchange paused): Node drops what it had not delivered,
   * and ending the body there would pass it on cut short as if complete.
   */
  private onSocketError(err: Error): void {
    const heldBack = this.paused || this.socket.readableLength > 0;
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' && this.exchange !== null && this.parser.awaitingClose && !heldBack) {
      this.onPeerEnd();
      return;
    }
    this.close(err);
  }

  private onPeerEnd(): void {
    const ex = this.exchange;
    if (ex === null) {
      this.close(null);
      return;
    }
    try {
      this.parser.finish();
    } catch (err) {
      this.fail(ex, 'reset', err as Error);
      return;
    }
    // A close-delimited body ended.
    this.exchange = null;
    this.uses++;
    this.close(null);
    ex.onEnd();
  }

  private fail(ex: Exchange, kind: FailureKind, error: Error): void {
    this.exchange = null;
    const answered = this.parser.started;
    this.close(null);
    ex.onFailure({ kind, error, reused: this.uses > 0, answered });
  }

  private close(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    this.requestTimerArmed = null;
    this.idleTimerArmed = false;
    if (this.requestTimer !== null) clearTimeout(this.requestTimer);
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.socket.destroy();
    this.owner.dropped(this);
    const ex = this.exchange;
    if (ex !== null) {
      this.exchange = null;
      const kind: FailureKind = this.shuttingDown ? 'shutdown' : this.connected ? 'reset' : 'connect';
      ex.onFailure({ kind, error: err ?? new Error('upstream closed the connection'), reused: this.uses > 0, answered: this.parser.started });
    }
  }

  private armRequestTimer(kind: 'head' | 'body', ms: number): void {
    this.requestTimerArmed = kind;
    if (this.requestTimer !== null && this.requestTimerMs === ms) {
      this.requestTimer.refresh();
      return;
    }
    if (this.requestTimer !== null) clearTimeout(this.requestTimer);
    this.requestTimerMs = ms;
    this.requestTimer = setTimeout(() => this.onRequestTimer(), ms);
    this.requestTimer.unref();
  }

  private onRequestTimer(): void {
    const kind = this.requestTimerArmed;
    const ex = this.exchange;
    if (!this.connected && !this.closed) {
      const err = new Error(`connect timeout after ${this.timeouts.connectTimeoutMs} ms`);
      if (ex === null) this.close(err);
      else this.fail(ex, 'connect-timeout', err);
      return;
    }
    if (kind === null || ex === null) return;
    if (kind === 'head') {
      this.fail(ex, 'head-timeout', new Error(`no response head within ${this.timeouts.responseTimeoutMs} ms`));
    } else {
      this.fail(ex, 'body-timeout', new Error(`body idle for ${this.timeouts.idleTimeoutMs} ms`));
    }
  }

  private armIdleTimer(): void {
    this.idleTimerArmed = true;
    if (this.idleTimer !== null && this.idleTimerMs === this.keepAliveMs) {
      this.idleTimer.refresh();
      return;
    }
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimerMs = this.keepAliveMs;
    this.idleTimer = setTimeout(() => {
      if (this.idleTimerArmed && this.exchange === null) this.close(null);
    }, this.keepAliveMs);
    this.idleTimer.unref();
  }
}

export { HttpResponseError };
