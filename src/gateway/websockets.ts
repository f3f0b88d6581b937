/**
 * The open WebSockets of this process, keyed like connections ("handler:connId"): starts
 * a session for each handshake, routes client messages and disconnects to it, reports
 * each one that ends (access line, metrics), and closes them all on shutdown.
 *
 * Promises: a handshake is refused with an ordinary HTTP error (then the connection
 * closes) when there is no route (404), the route has `websocket = false` or a FastCGI
 * upstream (400: PHP cannot hold a WebSocket over FastCGI), the path has a `..` segment (400,
 * as for HTTP requests), the key is malformed (400),
 * `gateway.max_websockets` are open or opening (503) or the process is draining (503). Every
 * session here is a busy connection: it must not be handed to another worker while open.
 *
 * A handshake takes its max_websockets slot when it is accepted, not when the upstream's 101
 * arrives: counted at the 101, every handshake of a burst passed the check before the first
 * one opened, and the limit held only for clients polite enough to arrive one at a time. The
 * slot is given back in ended(), which every session reaches exactly once, whichever way it
 * ends (refused by the app, app unreachable, client gone, drain, closed after opening).
 *
 * A handshake starts at once, not through the pipeline: Mongrel2 1.12 forwards one only on a
 * connection with nothing in flight. A handshake a client pipelines behind a request makes it
 * close the connection, answering neither (websocket.test.ts checks that, and that no state
 * is left here).
 */
import type { Config } from '../config/schema.js';
import { DEFAULTS } from '../config/schema.js';
import { M2gwError } from '../errors.js';
import type { Logger } from '../log.js';
import { headerFirst, type Mongrel2Request } from '../mongrel2/request.js';
import { RequestAbort, forwardTo } from '../upstream/upstream.js';
import { isValidClientKey } from '../websocket/frame.js';
import type { ConnState } from './connections.js';
import { controlByteRefusal, dotDotRefusal, readRequestLine, requestIdFor, upstreamRequestFor } from './request-builder.js';
import type { GatewayHooks } from './request-log.js';
import type { Router } from './router.js';
import { upgradeRequest } from './websocket-handshake.js';
import { WebSocketSession, type WebSocketLimits, type WebSocketReport } from './websocket-session.js';

export class WebSockets {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly router: Router;
  private readonly hooks: GatewayHooks;
  private readonly accessLog: boolean;
  private readonly sessions = new Map<string, WebSocketSession>();
  /** Sessions holding a gateway.max_websockets slot: accepted handshakes and open WebSockets. */
  private readonly slots = new Set<WebSocketSession>();
  private draining = false;
  private idleWaiters: Array<() => void> = [];

  constructor(config: Config, log: Logger, router: Router, hooks: GatewayHooks) {
    this.config = config;
    this.log = log;
    this.router = router;
    this.hooks = hooks;
    this.accessLog = config.log.accessLog;
  }

  /** Sessions open or being handshaken. */
  get size(): number {
    return this.sessions.size;
  }

  /** Keys of every connection carrying a WebSocket (busy: it stays with this process). */
  has(key: string): boolean {
    return this.sessions.has(key);
  }

  keys(): string[] {
    return [...this.sessions.keys()];
  }

  handshake(state: ConnState, req: Mongrel2Request): void {
    const key = state.conn.key;
    this.sessions.get(key)?.shutdown();
    const line = readRequestLine(req);
    const requestId = requestIdFor(req.headers);
    // Before routing, as for HTTP requests: `/pub/../admin/ws` must not match `/pub/`.
    const dotDot = dotDotRefusal(line.path);
    const route = dotDot ? null : this.router.match(line.host, line.path);
    const upstreamConfig = route ? this.config.upstreams[route.upstream.name] : undefined;
    const http = upstreamConfig?.type === 'http' ? upstreamConfig : null;
    const d = DEFAULTS.http;
    const limits: WebSocketLimits = {
      pingIntervalMs: http?.websocketPingIntervalMs ?? d.websocketPingIntervalMs,
      maxMessageBytes: http?.websocketMaxMessageBytes ?? d.websocketMaxMessageBytes,
      idleTimeoutMs: http?.websocketIdleTimeoutMs ?? d.websocketIdleTimeoutMs,
    };
    const abort = new RequestAbort();
    const clientKey = headerFirst(req.headers, 'sec-websocket-key') ?? '';
    const session = new WebSocketSession({
      key,
      conn: state.conn,
      requestId,
      uri: line.uri,
      upstreamName: route?.upstream.name ?? '-',
      clientKey,
      limits,
      abort,
      hooks: {
        onOpened: () => this.hooks.onWebSocketOpened?.(),
        onMessage: (direction, bytes) => this.hooks.onWebSocketMessage?.(direction, bytes),
        onEnded: (s, report) => this.ended(s, report),
      },
    });
    this.sessions.set(key, session);

    let refusal: M2gwError | null = null;
    const controlByte = controlByteRefusal(req);
    if (this.draining) refusal = new M2gwError('M2GW_SHUTTING_DOWN', 'gateway is shutting down', 'route');
    else if (controlByte) refusal = controlByte;
    else if (dotDot) refusal = dotDot;
    else if (!route) refusal = new M2gwError('M2GW_NO_ROUTE', `no route for ${line.host || '*'}${line.path}`, 'route');
    else if (!route.websocket) refusal = new M2gwError('M2GW_BAD_REQUEST', `WebSockets are disabled on route ${route.prefix}`, 'route');
    else if (!http) refusal = new M2gwError('M2GW_BAD_REQUEST', `route ${route.prefix} goes to a FastCGI upstream, which cannot carry a WebSocket`, 'route');
    else if (!isValidClientKey(clientKey)) refusal = new M2gwError('M2GW_BAD_REQUEST', 'malformed Sec-WebSocket-Key', 'route');
    else if (this.slots.size >= this.config.gateway.maxWebsockets) {
      refusal = new M2gwError('M2GW_SATURATED', `${this.slots.size} WebSockets open or opening (gateway.max_websockets)`, 'route');
    }
    if (refusal !== null || !route) return session.refuse(refusal ?? new M2gwError('M2GW_INTERNAL', 'no route', 'route'));

    // Before forwarding: an upstream that fails at once ends the session (and frees the slot) inside forwardTo.
    this.slots.add(session);
    forwardTo(route.upstream, upgradeRequest(upstreamRequestFor(requestId, 'GET', route, line, req.headers, null, abort)), session);
  }

  /** A client message (METHOD WEBSOCKET). False when no WebSocket is open on that connection. */
  message(key: string, flags: number, body: Buffer): boolean {
    const session = this.sessions.get(key);
    if (!session) return false;
    session.onClientMessage(flags, body);
    return true;
  }

  /** Mongrel2 reported the client gone. */
  disconnect(key: string): void {
    this.sessions.get(key)?.clientGone();
  }

  /** Stop accepting handshakes; wait up to timeoutMs for open WebSockets to end, then close the rest (1001). */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.closeAll();
  }

  /** Close every WebSocket now with 1001 (and refuse handshakes in progress). */
  closeAll(): void {
    for (const s of [...this.sessions.values()]) s.shutdown();
  }

  private ended(session: WebSocketSession, r: WebSocketReport): void {
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    this.slots.delete(session);
    if (this.accessLog) {
      this.log.info('access', {
        type: 'websocket',
        request_id: r.requestId,
        method: 'GET',
        path: r.uri,
        status: r.status,
        upstream: r.upstream,
        duration_ms: Math.round(r.durationMs * 100) / 100,
        messages_in: r.messagesToUpstream,
        bytes_in: r.bytesToUpstream,
        messages_out: r.messagesToClient,
        bytes_out: r.bytesToClient,
        close_code: r.closeCode,
        closed_by: r.closedBy,
        conn: session.key,
        ...(r.error ? { error: r.error.code, phase: r.error.phase } : {}),
      });
    }
    if (r.error && r.error.code !== 'M2GW_CLIENT_GONE' && (r.status >= 500 || r.status === 101)) {
      this.log.warn('websocket failed', { request_id: r.requestId, upstream: r.upstream, error: r.error.message, code: r.error.code });
    }
    this.hooks.onWebSocketEnded?.(r);
    if (this.sessions.size === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }
}
