/**
 * The orchestrator: Mongrel2 messages in, forwarded upstream, replies out. Per request:
 * parse → classify (onMessage) → route (Router.match) → upstream.forward(req,
 * ResponseWriter) → finish. It also starts the handler sockets, drains and closes.
 *
 * The parts it orchestrates each have one owner: the connection table, credit windows
 * and flush scheduling (connections.ts), the pipelined queue (pipeline.ts), the
 * async-upload protocol (uploads.ts), access log and metrics hooks (request-log.ts).
 */
import type { Config } from '../config/schema.js';
import { ClientGoneError, FrameError, M2gwError } from '../errors.js';
import type { Logger } from '../log.js';
import { WarningThrottle } from '../log-throttle.js';
import { recordLimitHit } from '../metrics/limit-hits.js';
import { simpleResponse } from '../mongrel2/http-head.js';
import { encodeClose, encodeReply } from '../mongrel2/reply.js';
import { classify, parseRequest, peekCredits, type Mongrel2Request } from '../mongrel2/request.js';
import { RequestAbort, bodyLength, forwardTo, type RequestBody, type Upstream } from '../upstream/upstream.js';
import { HandlerSocket } from '../zmq/handler-socket.js';
import type { ClientConnection } from './client-connection.js';
import { ConnectionTable, discardBodyFile, type Active, type ConnState, type HandlerRuntime, type LostCause, type Pending } from './connections.js';
import { MAX_CONNECTION_STATES } from './limits.js';
import { Pipeline } from './pipeline.js';
import { controlByteRefusal, dotDotRefusal, readRequestLine, requestIdFor, upstreamRequestFor } from './request-builder.js';
import { RequestLog, type GatewayHooks } from './request-log.js';
import { RequestReplyOptions, ResponseWriter, type ResponseOutcome } from './response-writer.js';
import { Router } from './router.js';
import { HandlerWatch } from './handler-watch.js';
import { StreamedUploads } from './streamed-upload.js';
import { Uploads } from './uploads.js';
import { WebSockets } from './websockets.js';

export type { GatewayHooks, RequestDoneInfo } from './request-log.js';

export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly hooks?: GatewayHooks;
  /** Worker mode: messages arrive through handleMessage() from the supervisor (ConnectionOwners); no PULL sockets. */
  readonly publishOnly?: boolean;
  /**
   * Per handler, the DOWNLOAD_CREDITS window already known (a worker of a new generation
   * is handed kept-alive connections whose first request, the only one carrying it, it
   * never saw). null: not known.
   */
  readonly creditWindows?: ReadonlyArray<number | null>;
  /**
   * Per handler (config order), the id messages name it by: a supervisor's ids survive
   * reloads that add or remove handlers (process/live-handlers.ts). Default: the position.
   */
  readonly handlerIds?: readonly number[];
}

export class Gateway {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly router: Router;
  private readonly upstreams: ReadonlyMap<string, Upstream>;
  private readonly hooks: GatewayHooks;
  private readonly handlers: HandlerRuntime[];
  private readonly handlerById = new Map<number, HandlerRuntime>();
  private readonly conns: ConnectionTable;
  private readonly pipeline: Pipeline;
  private readonly uploads: Uploads;
  private readonly streamedUploads: StreamedUploads;
  private readonly requestLog: RequestLog;
  private readonly websockets: WebSockets;
  private inFlightCount = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  /** Warnings a client or a broken peer can cause at will: one line per kind per second, counted exactly. */
  private readonly warnings: WarningThrottle;

  constructor(opts: GatewayOptions) {
    this.config = opts.config;
    this.log = opts.logger;
    this.upstreams = opts.upstreams;
    this.hooks = opts.hooks ?? {};
    this.router = new Router(opts.config.routes, opts.upstreams);
    this.warnings = new WarningThrottle(this.log);
    this.conns = new ConnectionTable(this.hooks, (conn, cause) => this.onConnectionLost(conn, cause));
    const uploadDropped = (state: ConnState, uploadPath: string): void => this.uploads.uploadDropped(state, uploadPath);
    this.pipeline = new Pipeline((state, pending) => this.startRequest(state, pending), () => this.inFlightCount, opts.config.gateway.maxInFlight, uploadDropped);
    this.uploads = new Uploads(this.warnings, this.router, this.conns, this.pipeline);
    this.streamedUploads = new StreamedUploads(this.log, this.router, this.conns, this.pipeline.enqueue);
    this.requestLog = new RequestLog(this.log, opts.config.log.accessLog, this.hooks);
    this.websockets = new WebSockets(opts.config, this.log, this.router, this.hooks);
    this.handlers = opts.config.handlers.map((config, position) => ({
      index: opts.handlerIds?.[position] ?? position,
      config,
      creditWindow: opts.creditWindows?.[position] ?? null,
      // A worker's supervisor watches the handler for the whole process group (and logs).
      watch: new HandlerWatch(config.sendSpec, opts.publishOnly === true ? null : this.log),
      socket: new HandlerSocket({
        sendSpec: config.sendSpec,
        recvSpec: config.recvSpec,
        recvIdent: config.recvIdent,
        publishOnly: opts.publishOnly === true,
      }),
    }));
    for (const h of this.handlers) this.handlerById.set(h.index, h);
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** See ConnectionTable.busyConnections: connections a worker must not hand over yet. */
  busyConnections(): string[] {
    const busy = this.conns.busyConnections();
    if (this.websockets.size === 0) return busy;
    return [...new Set([...busy, ...this.websockets.keys()])];
  }

  /** WebSockets open or handshaking in this process. */
  get websocketCount(): number {
    return this.websockets.size;
  }

  /** Close every open WebSocket with 1001 (a retiring worker's drain_timeout passed). */
  closeWebSockets(): void {
    this.websockets.closeAll();
  }

  /** Per handler: download.flow_control as its requests show it (null: no request yet). */
  flowControl(): Array<boolean | null> {
    return this.handlers.map((h) => h.watch.flowControl);
  }

  /** This process still serves the connection (a request, a WebSocket, or kept alive; not closed). */
  holds(key: string): boolean {
    return this.conns.get(key)?.conn.finished === false || this.websockets.has(key);
  }

  /** A handler's socket by id (a worker reads the supervisor's lent PULL through it). */
  socketOf(handlerId: number): HandlerSocket | undefined {
    return this.handlerById.get(handlerId)?.socket;
  }

  /** True when every handler socket has Mongrel2's subscription (replies can flow). */
  get connected(): boolean {
    return this.handlers.every((h) => h.socket.isSubscribed);
  }

  async start(): Promise<void> {
    await Promise.all(
      this.handlers.map((h) =>
        h.socket.connect(
          (msg) => this.handleMessage(h.index, msg),
          (err) => this.log.error('handler socket failed', { handler: h.config.sendSpec, error: String(err) }),
          (waited) => this.log.warn('waiting for Mongrel2 to subscribe (is it running?)', { recv_spec: h.config.recvSpec, waited_ms: waited }),
        ),
      ),
    );
    this.log.info('connected to Mongrel2', { handlers: this.handlers.map((h) => h.config.sendSpec) });
  }

  /** Entry point for one raw Mongrel2 message (from our PULL or from the supervisor). */
  handleMessage(handlerIndex: number, msg: Buffer): void {
    const handler = this.handlerById.get(handlerIndex);
    if (!handler) {
      this.log.warn('message for unknown handler index', { handlerIndex });
      return;
    }
    const credits = peekCredits(msg); // most of what Mongrel2 sends with flow control on: no parse
    if (credits !== null) return this.credit(handler, credits.connId, credits.credits);
    let req: Mongrel2Request;
    try {
      req = parseRequest(msg);
    } catch (err) {
      this.hooks.onBadFrame?.();
      this.warnings.warn('malformed Mongrel2 message dropped', {
        handler: handler.config.sendSpec,
        error: err instanceof FrameError ? err.message : String(err),
        bytes: msg.length,
        head: msg.subarray(0, 80).toString('latin1'),
      });
      return;
    }
    try {
      this.onMessage(handler, req);
    } catch (err) {
      // A bug must cost one request, never the process.
      this.log.error('internal error handling message', { conn: req.connId, error: String(err), stack: (err as Error).stack });
    }
  }

  /** Classify a parsed message and hand it to its owner; routing proper happens in startRequest. */
  private onMessage(handler: HandlerRuntime, req: Mongrel2Request): void {
    const kind = classify(req);
    const key = `${handler.index}:${req.connId}`;
    if (this.conns.size >= MAX_CONNECTION_STATES && kind.kind !== 'disconnect' && kind.kind !== 'credits' && this.conns.get(key) === undefined) {
      // Only a peer inventing conn ids gets here (Mongrel2 bounds its connections): keep no state.
      recordLimitHit('connection_states');
      this.replyAndClose(handler, req, 503);
      return;
    }
    switch (kind.kind) {
      case 'disconnect':
        this.websockets.disconnect(key);
        if (!this.onDisconnect(key)) handler.watch.orphanControl('disconnect', req.connId);
        return;
      case 'credits':
        return this.credit(handler, req.connId, kind.credits);
      case 'http':
        this.pipeline.enqueue(this.conns.stateFor(handler, req, key), { req, bodyFile: null, refusal: null });
        return;
      case 'upload-start':
      case 'upload-done':
      case 'upload-mismatch':
        // Which of Mongrel2's messages this is, or whether a client forged it, only the
        // upload state can tell (a client's done header may ride on a genuine start).
        this.uploads.onMessage(handler, req, key);
        return;
      case 'upload-stream':
        if (!this.streamedUploads.onMessage(handler, req, key, kind.offset, kind.done)) handler.watch.orphanControl('upload', req.connId);
        return;
      case 'websocket-handshake':
        this.websockets.handshake(this.conns.stateFor(handler, req, key), req);
        return;
      case 'websocket':
        if (!this.websockets.message(key, kind.flags, req.body)) {
          this.log.debug('WebSocket message for a connection without an open WebSocket dropped', { conn: req.connId });
        }
        return;
      case 'control-other':
        this.log.debug('ignored Mongrel2 control message', { conn: req.connId, type: kind.type });
        return;
    }
  }

  private credit(handler: HandlerRuntime, connId: string, bytes: number): void {
    if (!this.conns.credit(`${handler.index}:${connId}`, bytes)) handler.watch.orphanControl('credits', connId);
  }

  /** Route one request and forward it upstream (or answer it here); called by the pipeline when it is its turn. */
  private startRequest(state: ConnState, pending: Pending): void {
    const { req } = pending;
    const line = readRequestLine(req);
    const id = requestIdFor(req.headers);
    const route = pending.refusal ? null : this.router.match(line.host, line.path);
    const abort = new RequestAbort();
    const started = performance.now();
    // eslint-disable-next-line prefer-const
    let active: Active;
    const tooLarge = pending.closeAfter === true || pending.refusal?.code === 'M2GW_BODY_TOO_LARGE';
    const conn = state.conn;
    const writer = new ResponseWriter(
      conn,
      new RequestReplyOptions(line.method, line.keepAlive, line.http10, id, tooLarge, conn, abort),
      (outcome) => this.finish(state, active, outcome),
    );
    active = { id, writer, abort, started, method: line.method, uri: line.uri, route, bodyFile: pending.bodyFile, bodyStream: pending.bodyStream ?? null };
    state.active = active;
    this.inFlightCount++;

    if (pending.refusal) return writer.onResponseError(pending.refusal);
    if (this.draining) return writer.onResponseError(new M2gwError('M2GW_SHUTTING_DOWN', 'gateway is shutting down', 'route'), true);
    const controlByte = controlByteRefusal(req);
    if (controlByte) return writer.onResponseError(controlByte);
    const dotDot = dotDotRefusal(line.path);
    if (dotDot) return writer.onResponseError(dotDot);
    if (!route) return writer.onResponseError(new M2gwError('M2GW_NO_ROUTE', `no route for ${line.host || '*'}${line.path}`, 'route'));
    if (this.inFlightCount > this.config.gateway.maxInFlight) {
      return writer.onResponseError(new M2gwError('M2GW_SATURATED', `more than ${this.config.gateway.maxInFlight} requests in flight`, 'route'));
    }
    let body: RequestBody | null = null;
    const stream = pending.bodyStream ?? null;
    if (stream) {
      if (stream.failure) return writer.onResponseError(stream.failure, true);
      // The body fails as it arrives (over max_body, client gone): answer if still possible, stop the upstream.
      stream.onFailure = (err) => {
        if (state.active !== active) return;
        // Answer first: aborting makes the upstream report the request as the client's doing.
        active.writer.onResponseError(err, true);
        active.abort.abort(err);
      };
      body = { kind: 'stream', stream };
    } else if (pending.bodyFile) body = { kind: 'file', path: pending.bodyFile.readPath, length: pending.bodyFile.length };
    else if (req.body.length > 0) body = { kind: 'buffer', data: req.body };
    const length = body === null ? 0 : (bodyLength(body) ?? 0);
    if (length > route.maxBodyBytes) {
      return writer.onResponseError(new M2gwError('M2GW_BODY_TOO_LARGE', `request body of ${length} bytes exceeds max_body ${route.maxBodyBytes}`, 'route'));
    }
    forwardTo(route.upstream, upstreamRequestFor(id, line.method, route, line, req.headers, body, abort), writer);
  }

  private finish(state: ConnState, active: Active, outcome: ResponseOutcome): void {
    if (state.active !== active) return;
    state.active = null;
    this.inFlightCount--;
    const durationMs = performance.now() - active.started;
    if (active.bodyFile) discardBodyFile(active.bodyFile);
    // Answered before its streamed body ended: grant no more (the connection is ending by cancel).
    if (active.bodyStream && !active.bodyStream.complete) active.bodyStream.cancel();
    this.requestLog.finished(active, state.conn.key, outcome, durationMs);
    this.pipeline.advance(state, outcome.closed);
    this.conns.forgetIfClosed(state);
    if (this.inFlightCount === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** False when the connection was unknown here. */
  private onDisconnect(key: string, why = 'client disconnected'): boolean {
    const state = this.conns.remove(key);
    if (!state) return false;
    state.conn.abandon();
    this.pipeline.drop(state);
    const active = state.active;
    if (active) {
      this.hooks.onDisconnectAbort?.();
      const err = new ClientGoneError(active.writer.headersSent ? 'headers-sent' : 'request-sent', why);
      active.abort.abort(err);
      active.writer.onResponseError(err);
    }
    state.streamUpload?.fail(new M2gwError('M2GW_CLIENT_GONE', 'client disconnected during a streamed upload', 'request-sent'));
    state.streamUpload = null;
    return true;
  }

  /**
   * Give one connection up, only it: its flush threw (its reply cannot be encoded or sent), or
   * its client read nothing for send_timeout (the cancel is sent; its upstream is let go).
   */
  private onConnectionLost(conn: ClientConnection, cause: LostCause): void {
    if (cause.kind === 'stalled') {
      recordLimitHit('send_timeout');
      this.warnings.warn('client read nothing for send_timeout: connection dropped', { conn: conn.key, send_timeout_ms: conn.sendTimeoutMs });
    } else {
      this.warnings.warn('reply to a connection failed: connection dropped', { conn: conn.key, error: String(cause.err) });
    }
    conn.abandon();
    const state = this.conns.get(conn.key);
    if (state?.conn === conn) {
      this.onDisconnect(conn.key, cause.kind === 'stalled' ? 'client read nothing for send_timeout' : 'client disconnected');
      // As if closed: a dispatcher may forget who owns the id (Mongrel2 will reuse it).
      this.hooks.onConnectionClosed?.(state.handler.index, conn.connId);
    }
  }

  /** An answer for a connection we keep no state for (over the connection cap). */
  private replyAndClose(handler: HandlerRuntime, req: Mongrel2Request, status: number): void {
    const sender = handler.config.recvIdent !== '' ? handler.config.recvIdent : req.sender;
    try {
      handler.socket.send(encodeReply(sender, [req.connId], simpleResponse(status, 'Service Unavailable\n', [['Connection', 'close']])));
      handler.socket.send(encodeClose(sender, [req.connId]));
    } catch (err) {
      this.warnings.warn('reply to a connection failed: connection dropped', { conn: req.connId, error: String(err) });
    }
  }

  /**
   * Drain: refuse new requests (503, connection closed), wait for
   * in-flight requests up to timeoutMs, then close upstreams and sockets.
   * Returns the number of requests still in flight when the deadline hit.
   */
  async drain(timeoutMs: number): Promise<number> {
    // Keep reading: disconnects and credits for in-flight requests still arrive, and a
    // closed PULL would lose messages already queued in it. New requests get 503 + close.
    this.draining = true;
    const websockets = this.websockets.drain(timeoutMs);
    if (this.inFlightCount > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await websockets;
    const left = this.inFlightCount;
    // Let the last replies leave before the sockets close.
    await new Promise((r) => setImmediate(r));
    await this.close();
    return left;
  }

  /** Close everything now (after drain, or on a forced stop). */
  async close(): Promise<void> {
    this.websockets.closeAll();
    for (const state of this.conns.values()) {
      state.active?.abort.abort(new M2gwError('M2GW_SHUTTING_DOWN', 'gateway stopped', 'request-sent'));
    }
    await Promise.all([...this.upstreams.values()].map((u) => u.close().catch(() => undefined)));
    await Promise.all(this.handlers.map((h) => h.socket.close()));
  }
}
