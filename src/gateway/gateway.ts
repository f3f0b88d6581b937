/**
 * The orchestrator: Mongrel2 messages in, upstream dispatch, replies out.
 * It is the only module that knows more than one neighbour: parse → route →
 * upstream.dispatch(req, ResponseWriter) → ClientConnection → HandlerSocket.
 *
 * Connections are keyed by (handler index, conn id): conn ids are small per-server
 * integers, so two Mongrel2 servers can use the same id at once.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Config, HandlerConfig } from '../config/schema.js';
import { FrameError, M2gwError, asM2gwError } from '../errors.js';
import type { Logger } from '../log.js';
import { simpleResponse } from '../mongrel2/http-head.js';
import { classify, headerFirst, parseRequest, uploadPathMatches, type Mongrel2Request } from '../mongrel2/request.js';
import { RequestAbort, type RequestBody, type Upstream, type UpstreamRequest } from '../upstream/upstream.js';
import { HandlerSocket } from '../zmq/handler-socket.js';
import { ClientConnection, type FlushScheduler } from './client-connection.js';
import { clientHeaders, readRequestLine, requestIdFor } from './request-builder.js';
import { ResponseWriter, type ResponseOutcome } from './response-writer.js';
import { Router, upstreamPath, type Route } from './router.js';

/** What the gateway reports about finished requests (metrics plug in here). */
export interface GatewayHooks {
  onRequestDone?(info: RequestDoneInfo): void;
  onDisconnectAbort?(): void;
  onBadFrame?(): void;
  /** We sent the close message for this connection (a dispatcher may forget its owner: Mongrel2 reuses ids). */
  onConnectionClosed?(handlerIndex: number, connId: string): void;
}

export interface RequestDoneInfo {
  readonly route: string;
  readonly upstream: string;
  readonly method: string;
  readonly status: number;
  readonly durationMs: number;
  readonly bytes: number;
  readonly errorCode: string | null;
}

interface Pending {
  readonly req: Mongrel2Request;
  /** Host path of a completed async upload to stream as the body. */
  readonly bodyFile: { path: string; length: number } | null;
  /** Refused before reading the body (upload start): answer, then close. */
  readonly refusal: M2gwError | null;
}

interface Active {
  readonly id: string;
  readonly writer: ResponseWriter;
  readonly abort: RequestAbort;
  readonly started: number;
  readonly method: string;
  readonly uri: string;
  readonly route: Route | null;
  readonly bodyFile: string | null;
}

interface ConnState {
  readonly conn: ClientConnection;
  readonly handler: HandlerRuntime;
  queue: Pending[];
  active: Active | null;
  /** Upload start seen; waiting for the done message. */
  uploadPath: string | null;
  /** Uploads we refused at start: their done message (if it comes) only means deleting the file. */
  refusedUploads: Set<string> | null;
}

interface HandlerRuntime {
  readonly index: number;
  readonly config: HandlerConfig;
  readonly socket: HandlerSocket;
  /** DOWNLOAD_CREDITS seen on this handler (download.flow_control is on), or null. */
  creditWindow: number | null;
}

export interface GatewayOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly upstreams: ReadonlyMap<string, Upstream>;
  readonly hooks?: GatewayHooks;
  /** Worker mode: messages arrive through handleMessage() from a dispatcher; no PULL sockets. */
  readonly publishOnly?: boolean;
  /**
   * Per handler, the DOWNLOAD_CREDITS window already known (a worker of a new generation
   * is handed kept-alive connections whose first request, the only one carrying it, it
   * never saw). null: not known.
   */
  readonly creditWindows?: ReadonlyArray<number | null>;
}

export class Gateway implements FlushScheduler {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly router: Router;
  private readonly upstreams: ReadonlyMap<string, Upstream>;
  private readonly hooks: GatewayHooks;
  private readonly handlers: HandlerRuntime[];
  private readonly conns = new Map<string, ConnState>();
  private readonly dirty = new Set<ClientConnection>();
  private flushPending = false;
  private inFlightCount = 0;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  private readonly accessLog: boolean;
  /** Connections whose upload-done is being looked at (async): busy although nothing is active yet. */
  private readonly uploadChecks = new Set<ConnState>();

  constructor(opts: GatewayOptions) {
    this.config = opts.config;
    this.log = opts.logger;
    this.upstreams = opts.upstreams;
    this.hooks = opts.hooks ?? {};
    this.router = new Router(opts.config.routes, opts.upstreams);
    this.accessLog = opts.config.log.accessLog;
    this.handlers = opts.config.handlers.map((config, index) => ({
      index,
      config,
      creditWindow: opts.creditWindows?.[index] ?? null,
      socket: new HandlerSocket({
        sendSpec: config.sendSpec,
        recvSpec: config.recvSpec,
        recvIdent: config.recvIdent,
        publishOnly: opts.publishOnly === true,
      }),
    }));
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  get connectionCount(): number {
    return this.conns.size;
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
        (s.refusedUploads !== null && s.refusedUploads.size > 0) ||
        s.conn.queuedBytes > 0 ||
        // Handing over a connection Mongrel2 still owes credits for would let the new owner
        // start from a full window and overrun Mongrel2's queue limit.
        (s.conn.window !== null && s.conn.unackedBytes > 0) ||
        (s.conn.closing && !s.conn.finished) ||
        this.uploadChecks.has(s)
      ) {
        keys.push(key);
      }
    }
    return keys;
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

  /** Entry point for one raw Mongrel2 message (from our PULL or from a dispatcher). */
  handleMessage(handlerIndex: number, msg: Buffer): void {
    const handler = this.handlers[handlerIndex];
    if (!handler) {
      this.log.warn('message for unknown handler index', { handlerIndex });
      return;
    }
    let req: Mongrel2Request;
    try {
      req = parseRequest(msg);
    } catch (err) {
      this.hooks.onBadFrame?.();
      this.log.warn('malformed Mongrel2 message dropped', {
        handler: handler.config.sendSpec,
        error: err instanceof FrameError ? err.message : String(err),
        bytes: msg.length,
        head: msg.subarray(0, 80).toString('latin1'),
      });
      return;
    }
    try {
      this.route(handler, req);
    } catch (err) {
      // A bug must cost one request, never the process.
      this.log.error('internal error handling message', { conn: req.connId, error: String(err), stack: (err as Error).stack });
    }
  }

  private route(handler: HandlerRuntime, req: Mongrel2Request): void {
    const kind = classify(req);
    const key = `${handler.index}:${req.connId}`;
    switch (kind.kind) {
      case 'disconnect':
        this.onDisconnect(key);
        return;
      case 'credits': {
        const state = this.conns.get(key);
        state?.conn.credit(kind.credits);
        return;
      }
      case 'http':
        this.enqueue(this.stateFor(handler, req, key), { req, bodyFile: null, refusal: null });
        return;
      case 'upload-start':
        this.onUploadStart(this.stateFor(handler, req, key), req, kind.path);
        return;
      case 'upload-done':
        void this.onUploadDone(this.stateFor(handler, req, key), req, kind.path);
        return;
      case 'upload-mismatch':
        this.log.warn('upload done path differs from start path', { conn: req.connId, start: kind.start, done: kind.done });
        this.enqueue(this.stateFor(handler, req, key), {
          req,
          bodyFile: null,
          refusal: new M2gwError('M2GW_BAD_REQUEST', 'upload start and done paths differ'),
        });
        return;
      case 'websocket-handshake':
      case 'websocket':
      case 'upload-stream':
        // Not something an HTTP/FastCGI app behind m2gw can take: refuse clearly and close.
        this.enqueue(this.stateFor(handler, req, key), {
          req,
          bodyFile: null,
          refusal: new M2gwError('M2GW_BAD_REQUEST', `${kind.kind} messages are not supported (disable upload.stream / route WebSockets elsewhere)`),
        });
        return;
      case 'control-other':
        this.log.debug('ignored Mongrel2 control message', { conn: req.connId, type: kind.type });
        return;
    }
  }

  private stateFor(handler: HandlerRuntime, req: Mongrel2Request, key: string): ConnState {
    let state = this.conns.get(key);
    if (state && state.conn.finished) {
      // We closed that connection; Mongrel2 reuses ids, so this is a new client.
      this.conns.delete(key);
      state = undefined;
    }
    if (!state) {
      const sender = handler.config.recvIdent !== '' ? handler.config.recvIdent : req.sender;
      const conn = new ClientConnection(key, req.connId, handler.socket, sender, this);
      state = { conn, handler, queue: [], active: null, uploadPath: null, refusedUploads: null };
      const created = state;
      conn.onClosed = () => {
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

  private onUploadStart(state: ConnState, req: Mongrel2Request, uploadPath: string): void {
    if (!this.isGenuineUploadStart(state.handler, req, uploadPath)) {
      // A client-made x-mongrel2-upload-start header on an ordinary request: serve it as one
      // (the header itself is never forwarded).
      this.enqueue(state, { req, bodyFile: null, refusal: null });
      return;
    }
    const line = readRequestLine(req);
    const route = this.router.match(line.host, line.path);
    const declared = Number(headerFirst(req.headers, 'content-length') ?? NaN);
    if (route && Number.isFinite(declared) && declared > route.maxBodyBytes) {
      // Answer now so the client stops sending; Mongrel2 aborts the upload (or, if it
      // already has the whole body, still sends a done message we must clean up after).
      (state.refusedUploads ??= new Set()).add(uploadPath);
      this.enqueue(state, {
        req,
        bodyFile: null,
        refusal: new M2gwError('M2GW_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds max_body ${route.maxBodyBytes}`),
      });
      return;
    }
    state.uploadPath = uploadPath;
  }

  private async onUploadDone(state: ConnState, req: Mongrel2Request, uploadPath: string): Promise<void> {
    const file = this.uploadFile(state.handler, uploadPath);
    if (state.refusedUploads?.has(uploadPath) && uploadPathMatches(state.handler.config.uploadTempStore, uploadPath)) {
      state.refusedUploads.delete(uploadPath);
      if (file) await unlinkQuietly(file);
      return;
    }
    if (state.uploadPath !== uploadPath || !uploadPathMatches(state.handler.config.uploadTempStore, uploadPath)) {
      // No matching start on this connection: either a client forging the headers (which
      // must never make us read or delete a file) or an upload whose start we never saw.
      this.log.warn('upload done without a matching upload start refused', { conn: req.connId, path: uploadPath });
      this.enqueue(state, { req, bodyFile: null, refusal: new M2gwError('M2GW_BAD_REQUEST', 'upload done without matching start') });
      return;
    }
    state.uploadPath = null;
    if (!file) {
      this.log.warn('upload path outside the Mongrel2 chroot refused', { conn: req.connId, path: uploadPath });
      this.enqueue(state, { req, bodyFile: null, refusal: new M2gwError('M2GW_BAD_REQUEST', 'upload path outside chroot') });
      return;
    }
    let length: number;
    this.uploadChecks.add(state);
    try {
      const st = await fsp.stat(file);
      if (!st.isFile()) throw new Error('not a regular file');
      length = st.size;
    } catch (err) {
      this.log.error('cannot read Mongrel2 upload file', { conn: req.connId, file, error: String(err) });
      this.enqueue(state, { req, bodyFile: null, refusal: new M2gwError('M2GW_INTERNAL', 'upload file unreadable') });
      return;
    } finally {
      this.uploadChecks.delete(state);
    }
    if (this.conns.get(state.conn.key) !== state) {
      // The client disconnected while we looked at the file.
      await unlinkQuietly(file);
      return;
    }
    this.enqueue(state, { req, bodyFile: { path: file, length }, refusal: null });
  }

  /**
   * Mongrel2 replaces x-mongrel2-upload-* only on real uploads, so a start header is believed
   * only where Mongrel2 itself would have sent one: an empty inline body for a request that
   * declared one (Content-Length > 0 or chunked), on a path its temp_store template could make.
   */
  private isGenuineUploadStart(handler: HandlerRuntime, req: Mongrel2Request, uploadPath: string): boolean {
    if (req.body.length !== 0) return false;
    if (!uploadPathMatches(handler.config.uploadTempStore, uploadPath)) return false;
    const declared = Number(headerFirst(req.headers, 'content-length') ?? '0');
    const chunked = (headerFirst(req.headers, 'transfer-encoding') ?? '').toLowerCase().includes('chunked');
    return chunked || (Number.isFinite(declared) && declared > 0);
  }

  /** Resolve a chroot-relative upload path; null if it would leave the chroot. */
  private uploadFile(handler: HandlerRuntime, uploadPath: string): string | null {
    if (uploadPath.includes('\0')) return null;
    const root = path.resolve(handler.config.chroot);
    const full = path.resolve(root, '.' + path.posix.normalize('/' + uploadPath));
    const rel = path.relative(root, full);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return null;
    return full;
  }

  private enqueue(state: ConnState, pending: Pending): void {
    if (state.conn.closing || state.conn.finished) {
      // Pipelined behind a response that closes the connection: the client will never read it.
      if (pending.bodyFile) void unlinkQuietly(pending.bodyFile.path);
      return;
    }
    if (state.active) {
      state.queue.push(pending);
      return;
    }
    this.startRequest(state, pending);
  }

  private startRequest(state: ConnState, pending: Pending): void {
    const { req } = pending;
    const line = readRequestLine(req);
    const id = requestIdFor(req.headers);
    const route = pending.refusal ? null : this.router.match(line.host, line.path);
    const abort = new RequestAbort();
    const started = performance.now();
    // eslint-disable-next-line prefer-const
    let active: Active;
    const writer = new ResponseWriter(
      state.conn,
      { method: line.method, keepAlive: line.keepAlive, http10: line.http10, requestId: id, mustClose: pending.refusal?.code === 'M2GW_BODY_TOO_LARGE' },
      (outcome) => this.finish(state, active, outcome),
    );
    active = { id, writer, abort, started, method: line.method, uri: line.uri, route, bodyFile: pending.bodyFile?.path ?? null };
    state.active = active;
    this.inFlightCount++;

    if (pending.refusal) return writer.onResponseError(pending.refusal);
    if (this.draining) return writer.onResponseError(new M2gwError('M2GW_SHUTTING_DOWN', 'gateway is shutting down'), true);
    if (!route) return writer.onResponseError(new M2gwError('M2GW_NO_ROUTE', `no route for ${line.host || '*'}${line.path}`));
    if (this.inFlightCount > this.config.gateway.maxInFlight) {
      return writer.onResponseError(new M2gwError('M2GW_SATURATED', `more than ${this.config.gateway.maxInFlight} requests in flight`));
    }
    let body: RequestBody | null = null;
    if (pending.bodyFile) body = { kind: 'file', path: pending.bodyFile.path, length: pending.bodyFile.length };
    else if (req.body.length > 0) body = { kind: 'buffer', data: req.body };
    const bodyLength = body === null ? 0 : body.kind === 'file' ? body.length : body.data.length;
    if (bodyLength > route.maxBodyBytes) {
      return writer.onResponseError(new M2gwError('M2GW_BODY_TOO_LARGE', `request body of ${bodyLength} bytes exceeds max_body ${route.maxBodyBytes}`));
    }
    const upstreamReq: UpstreamRequest = {
      id,
      method: line.method,
      path: upstreamPath(route, line.path),
      query: line.query,
      hasQuery: line.hasQuery,
      originalUri: line.uri,
      routePrefix: route.prefix,
      httpVersion: line.version,
      headers: clientHeaders(req.headers),
      host: line.host,
      hostHeader: line.hostHeader,
      remoteAddr: line.remoteAddr,
      scheme: line.scheme,
      serverPort: line.port ?? (line.scheme === 'https' ? 443 : 80),
      body,
      preserveHost: route.preserveHost,
      signal: abort,
    };
    try {
      route.upstream.dispatch(upstreamReq, writer);
    } catch (err) {
      writer.onResponseError(asM2gwError(err, 'connect'));
    }
  }

  private finish(state: ConnState, active: Active, outcome: ResponseOutcome): void {
    if (state.active !== active) return;
    state.active = null;
    this.inFlightCount--;
    const durationMs = performance.now() - active.started;
    if (active.bodyFile) void unlinkQuietly(active.bodyFile);
    const upstream = active.route?.upstream.name ?? '-';
    if (this.accessLog) {
      this.log.info('access', {
        type: 'access',
        request_id: active.id,
        method: active.method,
        path: active.uri,
        status: outcome.status,
        bytes: outcome.bytes,
        duration_ms: Math.round(durationMs * 100) / 100,
        upstream,
        conn: state.conn.key,
        ...(outcome.error ? { error: outcome.error.code, phase: outcome.error.phase } : {}),
      });
    }
    if (outcome.error && outcome.error.code !== 'M2GW_CLIENT_GONE' && outcome.status >= 500) {
      this.log.warn('request failed', { request_id: active.id, upstream, error: outcome.error.message, code: outcome.error.code, phase: outcome.error.phase });
    }
    this.hooks.onRequestDone?.({
      route: active.route?.prefix ?? '-',
      upstream,
      method: active.method,
      status: outcome.status,
      durationMs,
      bytes: outcome.bytes,
      errorCode: outcome.error?.code ?? null,
    });
    if (outcome.closed) {
      for (const p of state.queue) if (p.bodyFile) void unlinkQuietly(p.bodyFile.path);
      state.queue = [];
    } else {
      const next = state.queue.shift();
      if (next) this.startRequest(state, next);
    }
    if (state.active === null && state.conn.finished && this.conns.get(state.conn.key) === state) {
      this.conns.delete(state.conn.key);
    }
    if (this.inFlightCount === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private onDisconnect(key: string): void {
    const state = this.conns.get(key);
    if (!state) return;
    this.conns.delete(key);
    state.conn.abandon();
    for (const p of state.queue) if (p.bodyFile) void unlinkQuietly(p.bodyFile.path);
    state.queue = [];
    const active = state.active;
    if (active) {
      this.hooks.onDisconnectAbort?.();
      const err = new M2gwError('M2GW_CLIENT_GONE', 'client disconnected', active.writer.headersSent ? 'headers-sent' : 'request-sent');
      active.abort.abort(err);
      active.writer.onResponseError(err);
    }
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
    for (const c of conns) c.flush();
  };

  /** Answer an error page on a connection directly (used by a dispatcher that cannot route a message). */
  replyError(handlerIndex: number, sender: string, connId: string, status: number): void {
    const h = this.handlers[handlerIndex];
    if (!h) return;
    const conn = new ClientConnection(`${handlerIndex}:${connId}`, connId, h.socket, h.config.recvIdent || sender, this);
    conn.write(simpleResponse(status, 'Service Unavailable\n', [['Connection', 'close']]), true);
    conn.close();
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
    if (this.inFlightCount > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const left = this.inFlightCount;
    // Let the last replies leave before the sockets close.
    await new Promise((r) => setImmediate(r));
    await this.close();
    return left;
  }

  /** Close everything now (after drain, or on a forced stop). */
  async close(): Promise<void> {
    for (const state of this.conns.values()) {
      state.active?.abort.abort(new M2gwError('M2GW_SHUTTING_DOWN', 'gateway stopped'));
    }
    await Promise.all([...this.upstreams.values()].map((u) => u.close().catch(() => undefined)));
    await Promise.all(this.handlers.map((h) => h.socket.close()));
  }
}

async function unlinkQuietly(file: string): Promise<void> {
  try {
    await fsp.unlink(file);
  } catch {
    // already gone
  }
}
