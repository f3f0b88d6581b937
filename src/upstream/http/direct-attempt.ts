/**
 * One request's journey over the direct client (pool.ts, connection.ts): the requests with no
 * body or a body in memory, to an http:// server. The undici path (http-upstream.ts) takes the
 * rest. Both end in the same sink calls and the same errors, and both follow lifecycle.ts's
 * retry rule; this one can apply all of it, because it sees its connections:
 * - a connect failure is retried on another server (the failed one leaves the rotation);
 * - a reset before any response byte on a reused connection (the server closed it as we
 *   wrote: the keep-alive race) is retried for idempotent methods, on a new connection to the
 *   same server;
 * - nothing else.
 */
import { asM2gwError, ClientGoneError, M2gwError, UpstreamError } from '../../errors.js';
import { mayRetry } from '../lifecycle.js';
import type { ResponseController, ResponseSink, UpstreamRequest } from '../upstream.js';
import type { Exchange, ExchangeFailure, HttpConnection } from './connection.js';
import type { HttpPool } from './pool.js';
import { directRequestHead, type ServerAddress } from './request-head.js';
import type { ResponseHead } from './response-parser.js';

/** What a direct attempt needs of its upstream (HttpUpstream implements it). */
export interface DirectHost {
  readonly name: string;
  readonly retries: number;
  readonly serverCount: number;
  readonly closed: boolean;
  markUp(server: DirectServer): void;
  markDown(server: DirectServer, err: Error): void;
  /** Another server than `exclude` when one is in rotation; `exclude` itself otherwise. */
  pick(exclude: DirectServer): DirectServer;
  /** Sends the request on through undici (a server the direct client cannot reach, e.g. https). */
  viaUndici(req: UpstreamRequest, sink: ResponseSink, server: DirectServer, attempts: number): void;
  /** Logs an exception a sink threw (a bug: the request it was answering is ended). */
  sinkError(err: unknown): void;
  done(): void;
}

export interface DirectServer extends ServerAddress {
  readonly origin: string;
  /** Null for servers the direct client does not speak to (https). */
  readonly direct: HttpPool | null;
  /** Out of rotation until this time (ms since the epoch). */
  downUntil: number;
}

export class DirectAttempt implements Exchange, ResponseController {
  readonly headRequest: boolean;
  /** Rebuilt per server (the base path and Host differ). */
  head = '';
  private attempts = 0;
  private server!: DirectServer;
  private conn: HttpConnection | null = null;
  private headersReceived = false;
  private finished = false;
  private readonly onAbort = (): void => this.abort();

  constructor(
    private readonly host: DirectHost,
    private readonly req: UpstreamRequest,
    private readonly sink: ResponseSink,
    readonly body: Buffer | null,
  ) {
    this.headRequest = req.method === 'HEAD';
  }

  run(server: DirectServer, fresh = false): void {
    this.server = server;
    this.attempts++;
    if (this.req.signal.aborted) return this.fail(new ClientGoneError('connect', 'client gone before sending'));
    const built = directRequestHead(this.req, server, this.body === null ? 0 : this.body.length);
    if (!built.ok) return this.fail(new M2gwError('M2GW_BAD_REQUEST', `upstream ${this.host.name}: ${built.problem}`, 'route'));
    this.head = built.head;
    if (this.attempts === 1) this.req.signal.addEventListener('abort', this.onAbort, { once: true });
    server.direct!.send(this, fresh);
  }

  // Exchange (from the connection)
  onStart(conn: HttpConnection): void {
    this.conn = conn;
  }

  onHead(head: ResponseHead): void {
    this.headersReceived = true;
    this.host.markUp(this.server);
    try {
      this.sink.onResponseStart(this, head.status, head.headers, head.reason === '' ? undefined : head.reason);
    } catch (err) {
      this.sinkThrew(err);
    }
  }

  onBody(chunk: Buffer): void {
    if (this.finished) return;
    try {
      this.sink.onResponseData(this, chunk);
    } catch (err) {
      this.sinkThrew(err);
    }
  }

  onEnd(): void {
    if (this.finished) return;
    this.finished = true;
    this.conn = null;
    this.cleanup();
    try {
      this.sink.onResponseEnd(this);
    } catch (err) {
      // The request is over for us: nothing is left to undo but to say it.
      this.host.sinkError(err);
    }
  }

  /**
   * A sink that throws is a bug in m2gw, not the upstream's doing: as undici does for its
   * handlers, the one request ends (its connection, whose response is half read, with it)
   * instead of the exception reaching the socket's event handler and the worker.
   */
  private sinkThrew(err: unknown): void {
    this.host.sinkError(err);
    const conn = this.conn;
    this.conn = null;
    conn?.abort();
    this.fail(asM2gwError(err, 'headers-sent'));
  }

  onFailure(f: ExchangeFailure): void {
    this.conn = null;
    if (this.finished) return;
    if (this.req.signal.aborted) {
      return this.fail(new ClientGoneError(this.headersReceived ? 'headers-sent' : 'request-sent', 'client disconnected', { cause: f.error }));
    }
    const mapped = this.classify(f);
    if (f.kind === 'shutdown') return this.fail(mapped);
    if (mapped.phase === 'connect') this.host.markDown(this.server, f.error);
    const again =
      !this.host.closed &&
      mayRetry({
        method: this.req.method,
        error: mapped,
        attempts: this.attempts,
        retries: this.host.retries,
        answered: f.answered,
        reusedConnection: f.reused,
        closedUnread: false,
      });
    if (again) {
      if (mapped.phase !== 'connect') return this.run(this.server, true);
      const next = this.host.pick(this.server);
      if (next !== this.server) {
        if (next.direct !== null) return this.run(next);
        // An https:// server: undici's attempt takes the request over, and ends its in-flight count.
        this.finished = true;
        this.req.signal.removeEventListener('abort', this.onAbort);
        return this.host.viaUndici(this.req, this.sink, next, this.attempts);
      }
    }
    this.fail(mapped);
  }

  // ResponseController (from the sink)
  pause(): void {
    this.conn?.pause();
  }

  resume(): void {
    this.conn?.resume();
  }

  private abort(): void {
    if (this.finished) return;
    const conn = this.conn;
    this.conn = null;
    if (conn !== null) conn.abort();
    else this.server.direct?.withdraw(this);
    this.fail(new ClientGoneError(this.headersReceived ? 'headers-sent' : conn?.isConnected === true ? 'request-sent' : 'connect', 'client disconnected'));
  }

  private classify(f: ExchangeFailure): M2gwError {
    const where = `upstream ${this.host.name} (${this.server.origin})`;
    const phase = this.headersReceived ? 'headers-sent' : 'request-sent';
    const code = (f.error as NodeJS.ErrnoException).code;
    switch (f.kind) {
      case 'connect':
        return new UpstreamError('M2GW_UPSTREAM_CONNECT', `${where}: ${code ?? f.error.message}`, 'connect', { cause: f.error });
      case 'connect-timeout':
        return new UpstreamError('M2GW_UPSTREAM_CONNECT', `${where}: connect timeout`, 'connect', { cause: f.error });
      case 'head-timeout':
      case 'body-timeout':
        return new UpstreamError('M2GW_UPSTREAM_TIMEOUT', `${where}: ${f.error.message}`, phase, { cause: f.error });
      case 'protocol':
        return new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `${where}: ${f.error.message}`, phase, { cause: f.error });
      case 'shutdown':
        return new UpstreamError('M2GW_SHUTTING_DOWN', `${where}: the upstream is being shut down`, this.headersReceived ? 'headers-sent' : 'connect', { cause: f.error });
      case 'reset':
        return new UpstreamError('M2GW_UPSTREAM_RESET', `${where}: ${f.error.message}${code ? ` (${code})` : ''}`, phase, { cause: f.error });
    }
  }

  private fail(err: M2gwError): void {
    if (this.finished) return;
    this.finished = true;
    this.conn = null;
    this.cleanup();
    try {
      this.sink.onResponseError(err);
    } catch (thrown) {
      this.host.sinkError(thrown);
    }
  }

  private cleanup(): void {
    this.req.signal.removeEventListener('abort', this.onAbort);
    this.host.done();
  }
}
