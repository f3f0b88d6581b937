/**
 * The gateway's table of client connections, keyed "handler index:conn id" (conn ids
 * are small per-server integers, so two Mongrel2 servers can use the same id at once),
 * and the per-connection state the other gateway modules share.
 *
 * It owns three things and promises:
 * - lookup and creation: `stateFor` returns the live state for a message's connection,
 *   creating it on first sight and replacing one we already closed (Mongrel2 reuses ids);
 * - credit windows: a connection gets its DOWNLOAD_CREDITS window from its first request,
 *   or inherits the one its handler's other connections showed;
 * - the flush scheduler: connections with output are flushed together, once per turn.
 *
 * Who writes which ConnState field: `queue` only the pipeline (pipeline.ts); `uploadPath`
 * and `uploadCheck` only uploads.ts; `active` only the gateway.
 */
import { promises as fsp } from 'node:fs';
import type { HandlerConfig } from '../config/schema.js';
import type { M2gwError } from '../errors.js';
import { headerFirst, type Mongrel2Request } from '../mongrel2/request.js';
import type { RequestAbort } from '../upstream/upstream.js';
import type { HandlerSocket } from '../zmq/handler-socket.js';
import { ClientConnection, type FlushScheduler, type ReplySocket } from './client-connection.js';
import type { HandlerWatch } from './handler-watch.js';
import type { ResponseWriter } from './response-writer.js';
import type { Route } from './router.js';
import type { StreamedUpload } from './streamed-upload.js';

export interface HandlerRuntime {
  readonly index: number;
  readonly config: HandlerConfig;
  readonly socket: HandlerSocket;
  /** DOWNLOAD_CREDITS seen on this handler (download.flow_control is on), or null. */
  creditWindow: number | null;
  /** What this handler's traffic says about Mongrel2's set-up (flow control, a shared socket). */
  readonly watch: HandlerWatch;
}

/** A completed async upload, opened and checked (upload-file.ts), to stream as the body. */
export interface BodyFile {
  /** The temp file's host path (what is deleted afterwards). */
  readonly path: string;
  /** What the upstream reads: the open descriptor's /proc/self/fd path where there is one. */
  readonly readPath: string;
  readonly length: number;
  /** Close the descriptor. */
  close(): void;
}

/** A request waiting its turn on its connection (or about to start). */
export interface Pending {
  readonly req: Mongrel2Request;
  readonly bodyFile: BodyFile | null;
  /** Answered with this error instead of forwarded. */
  readonly refusal: M2gwError | null;
  /** A streamed upload (upload.stream) still arriving: the body. */
  readonly bodyStream?: StreamedUpload | null;
  /** Close the connection after answering (an upload refused at its start; a queue over its cap). */
  readonly closeAfter?: boolean;
  /**
   * A placeholder holding the place of an async upload between its start and done messages
   * (its temp-file path): requests the client pipelined after the upload wait behind it, and
   * the done message's request takes its place (Pipeline.fill).
   */
  readonly awaitingUpload?: string;
}

/** Done with an upload's file: close it and delete it (it may be gone already). */
export function discardBodyFile(file: BodyFile): void {
  file.close();
  void unlinkQuietly(file.path);
}

/** Delete an upload temp file we are done with; it may be gone already. */
export async function unlinkQuietly(file: string): Promise<void> {
  try {
    await fsp.unlink(file);
  } catch {
    // already gone
  }
}

/** The request a connection is answering now. */
export interface Active {
  readonly id: string;
  readonly writer: ResponseWriter;
  readonly abort: RequestAbort;
  readonly started: number;
  readonly method: string;
  readonly uri: string;
  readonly route: Route | null;
  readonly bodyFile: BodyFile | null;
  readonly bodyStream: StreamedUpload | null;
}

/** Why a connection is given up on its own (ConnectionTable's onLost). */
export type LostCause = { readonly kind: 'flush-error'; readonly err: unknown } | { readonly kind: 'stalled' };

export interface ConnState {
  readonly conn: ClientConnection;
  readonly handler: HandlerRuntime;
  queue: Pending[];
  active: Active | null;
  /** Upload start seen; waiting for the done message. */
  uploadPath: string | null;
  /** Its upload-done is being looked at (async): busy although nothing is active yet. */
  uploadCheck: boolean;
  /** A streamed upload whose later messages are still due (streamed-upload.ts). */
  streamUpload: StreamedUpload | null;
}

export class ConnectionTable implements FlushScheduler {
  private readonly conns = new Map<string, ConnState>();
  private readonly dirty = new Set<ClientConnection>();
  private flushPending = false;
  /** Told when we sent the close message for a connection (GatewayHooks.onConnectionClosed). */
  private readonly hooks: { onConnectionClosed?(handlerIndex: number, connId: string): void };

  /**
   * A connection's flush threw, or its client read nothing for send_timeout: the gateway gives
   * that connection up (logs, aborts its request).
   */
  private readonly onLost: (conn: ClientConnection, cause: LostCause) => void;

  constructor(hooks: { onConnectionClosed?(handlerIndex: number, connId: string): void }, onLost: (conn: ClientConnection, cause: LostCause) => void) {
    this.hooks = hooks;
    this.onLost = onLost;
  }

  get size(): number {
    return this.conns.size;
  }

  get(key: string): ConnState | undefined {
    return this.conns.get(key);
  }

  /** Mongrel2 wrote `bytes` to this connection's client; false if we hold no such connection. */
  credit(key: string, bytes: number): boolean {
    const state = this.conns.get(key);
    state?.conn.credit(bytes);
    return state !== undefined;
  }

  values(): IterableIterator<ConnState> {
    return this.conns.values();
  }

  /** False once the connection was dropped (client gone) or replaced by a new client. */
  isCurrent(state: ConnState): boolean {
    return this.conns.get(state.conn.key) === state;
  }

  /** Forget the connection now (client disconnected); returns what was known of it. */
  remove(key: string): ConnState | undefined {
    const state = this.conns.get(key);
    if (state) {
      this.conns.delete(key);
      state.handler.watch.forget(state.conn.connId);
    }
    return state;
  }

  /** After a request finished: forget a connection whose close went out while it was active. */
  forgetIfClosed(state: ConnState): void {
    if (state.active === null && state.conn.finished && this.conns.get(state.conn.key) === state) {
      this.conns.delete(state.conn.key);
    }
  }

  stateFor(handler: HandlerRuntime, req: Mongrel2Request, key: string): ConnState {
    let state = this.conns.get(key);
    if (state && state.conn.finished) {
      // We closed that connection; Mongrel2 reuses ids, so this is a new client.
      this.conns.delete(key);
      state = undefined;
    }
    if (!state) {
      const sender = handler.config.recvIdent !== '' ? handler.config.recvIdent : req.sender;
      const conn = new ClientConnection(key, req.connId, handler.socket, sender, this);
      conn.keepAliveMs = handler.config.keepAliveMs;
      conn.sendTimeoutMs = handler.config.sendTimeoutMs;
      conn.onStalled = () => this.onLost(conn, { kind: 'stalled' });
      state = { conn, handler, queue: [], active: null, uploadPath: null, uploadCheck: false, streamUpload: null };
      const created = state;
      // A connection first seen here: its first request tells whether flow control is on
      // (one handed over by another worker inherits what its handler showed).
      handler.watch.newConnection(headerFirst(req.headers, 'DOWNLOAD_CREDITS') !== undefined || handler.creditWindow !== null);
      conn.onClosed = () => {
        handler.watch.forget(req.connId);
        if (this.conns.get(key) === created && created.active === null) this.conns.delete(key);
        this.hooks.onConnectionClosed?.(handler.index, req.connId);
      };
      this.conns.set(key, state);
    }
    const credits = headerFirst(req.headers, 'DOWNLOAD_CREDITS');
    if (credits !== undefined && state.conn.window !== null && state.active === null && state.queue.length === 0) {
      // Only a connection's first request carries it: this is a new client behind a reused
      // id whose predecessor's disconnect we missed. Stale unacknowledged bytes would stall it.
      const n = Number(credits);
      if (Number.isFinite(n) && n > 0) state.conn.resetCredits(n);
    }
    if (state.conn.window === null) {
      // Mongrel2 sends DOWNLOAD_CREDITS only with a connection's first request. A connection
      // first seen mid-life (handed over from another worker) inherits what this handler's
      // other connections showed: download.flow_control is a server-wide setting.
      const n = credits === undefined ? NaN : Number(credits);
      if (Number.isFinite(n) && n > 0) {
        state.conn.window = n;
        handler.creditWindow = n;
      } else if (handler.creditWindow !== null) {
        state.conn.window = handler.creditWindow;
      }
    }
    return state;
  }

  /**
   * Keys ("handler:connId") of connections that must stay with this process when a
   * worker hands its connections to a new generation: a request active or queued,
   * output or a close not yet sent, or an upload between its start and done messages.
   */
  busyConnections(): string[] {
    const keys: string[] = [];
    for (const [key, s] of this.conns) {
      if (
        s.active !== null ||
        s.queue.length > 0 ||
        s.uploadPath !== null ||
        s.conn.queuedBytes > 0 ||
        // Handing over a connection Mongrel2 still owes credits for would let the new owner
        // start from a full window and overrun Mongrel2's queue limit.
        (s.conn.window !== null && s.conn.unackedBytes > 0) ||
        (s.conn.closing && !s.conn.finished) ||
        s.uploadCheck ||
        s.streamUpload !== null
      ) {
        keys.push(key);
      }
    }
    return keys;
  }

  /** FlushScheduler: collect connections with output, flush them all once per turn. */
  schedule(conn: ClientConnection): void {
    this.dirty.add(conn);
    if (!this.flushPending) {
      this.flushPending = true;
      setImmediate(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.flushPending = false;
    const conns = [...this.dirty];
    this.dirty.clear();
    const sockets = new Set<ReplySocket>();
    for (const c of conns) {
      try {
        c.flush();
      } catch (err) {
        // One connection's reply that cannot be encoded or sent must never stop the others'
        // (nor, thrown from a setImmediate, the process): that connection alone is given up.
        this.onLost(c, { kind: 'flush-error', err });
      }
      sockets.add(c.socket);
    }
    // The replies leave now, in this turn's one write per handler socket. Left to the
    // socket's own setImmediate they would wait a whole event-loop iteration (a setImmediate
    // queued while immediates run goes to the next one): latency, and one more wake-up for
    // Mongrel2 per batch.
    for (const s of sockets) s.flushNow?.();
  };
}
