/**
 * The undici side of the HTTP upstream (http-upstream.ts): the requests the direct client does
 * not carry (streamed and file uploads, WebSocket handshakes, https:// servers), one attempt
 * each, over undici's Pool for the server, with the same retry rule and the same errors as the
 * direct client.
 *
 * Why undici's dispatch() with a handler object (the legacy onHeaders/onData API)
 * instead of request()/stream(): it skips the stream and promise layers (measured
 * 4–6 µs less per request), hands us the raw header Buffers (case and order kept,
 * every Set-Cookie separate), and its return value is backpressure.
 */
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { Readable, type Duplex } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import type { HttpUpstreamConfig } from '../../config/schema.js';
import { ClientGoneError, M2gwError, UpstreamError } from '../../errors.js';
import { IDEMPOTENT_METHODS, mayRetry } from '../lifecycle.js';
import type { BodyStream, HeaderList, ResponseController, ResponseSink, UpstreamRequest } from '../upstream.js';
import type { DirectServer } from './direct-attempt.js';
import { headerPairs, requestTarget } from './request-head.js';

/**
 * undici, loaded on first use. Most workers never need it (the direct client carries requests
 * without a body or with one in memory to http:// servers), and loading it costs every worker,
 * and the pre-forked spare, 19 MiB of RSS; the price is ~70 ms on the event loop the first
 * time a worker streams an upload, opens a WebSocket or calls an https:// server. With an
 * https:// server in the config it is loaded at start, since every request will need it.
 */
const requireCjs = createRequire(import.meta.url);
let undiciModule: typeof import('undici') | null = null;

export function undici(): typeof import('undici') {
  return (undiciModule ??= requireCjs('undici') as typeof import('undici'));
}

/** A server as an undici attempt sees it: the direct client's view, plus its undici Pool. */
export interface UndiciServer extends DirectServer {
  /** The server's undici Pool, made on first use (UndiciHost.undiciPool). */
  pool: Pool | null;
}

/** What an undici attempt needs of its upstream (HttpUpstream implements it). */
export interface UndiciHost {
  readonly name: string;
  readonly config: HttpUpstreamConfig;
  readonly serverCount: number;
  undiciPool(server: UndiciServer): Pool;
  markUp(server: DirectServer): void;
  markDown(server: DirectServer, err: Error): void;
  pick(exclude: DirectServer | null): UndiciServer;
  done(): void;
}

/** One request's journey, including a retry on another server when lifecycle.ts allows one. */
export class UndiciAttempt implements Dispatcher.DispatchHandler, ResponseController {
  private readonly up: UndiciHost;
  private readonly req: UpstreamRequest;
  private readonly sink: ResponseSink;
  private attempts = 0;
  private server!: UndiciServer;
  private abortFn: ((err: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;
  private paused = false;
  private headersReceived = false;
  private finished = false;
  private readonly onAbort = (): void => {
    const reason = this.req.signal.reason instanceof Error ? this.req.signal.reason : new Error('aborted');
    this.abortFn?.(reason);
  };

  constructor(up: UndiciHost, req: UpstreamRequest, sink: ResponseSink, attempts = 0) {
    this.up = up;
    this.req = req;
    this.sink = sink;
    this.attempts = attempts;
  }

  run(server: UndiciServer): void {
    this.server = server;
    this.abortFn = null;
    this.headersReceived = false;
    this.attempts++;
    if (this.req.signal.aborted) return this.fail(new ClientGoneError('connect', 'client gone before sending'));
    const req = this.req;
    const headers = headerPairs(req, server);
    let body: Buffer | NodeJS.ReadableStream | null = null;
    if (req.body) {
      if (req.body.kind === 'buffer') {
        body = req.body.data;
        headers.push('content-length', String(req.body.data.length));
      } else if (req.body.kind === 'file') {
        // Bounded memory: undici pulls from the stream as the socket drains.
        body = createReadStream(req.body.path, { highWaterMark: 256 * 1024 });
        headers.push('content-length', String(req.body.length));
      } else {
        // Same for a streamed upload: undici pulls as the socket drains, and each pull
        // lets Mongrel2 read more from the client. Unknown length: undici sends it chunked.
        body = Readable.from(pieces(req.body.stream), { objectMode: false });
        if (req.body.stream.length !== null) headers.push('content-length', String(req.body.stream.length));
      }
    }
    const path = requestTarget(req, server);
    req.signal.addEventListener('abort', this.onAbort, { once: true });
    this.up.undiciPool(server).dispatch(
      {
        path,
        method: req.method,
        headers,
        body: body as Dispatcher.DispatchOptions['body'],
        idempotent: IDEMPOTENT_METHODS.has(req.method),
        // undici writes Connection/Upgrade itself, then detaches the socket on a 101 (onUpgrade);
        // any other status arrives through onHeaders like a normal response.
        ...(req.upgrade ? { upgrade: req.upgrade } : {}),
      },
      this,
    );
  }

  // ResponseController
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeFn?.();
  }

  // undici DispatchHandler (legacy callbacks)
  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.req.signal.aborted) this.onAbort();
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    this.resumeFn = resume;
    this.headersReceived = true;
    this.up.markUp(this.server);
    const headers: HeaderList = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      headers.push([rawHeaders[i]!.toString('latin1'), rawHeaders[i + 1]!.toString('latin1')]);
    }
    this.sink.onResponseStart(this, statusCode, headers, statusText || undefined);
    return !this.paused;
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    if (this.finished) {
      socket.destroy();
      return;
    }
    this.finished = true;
    this.headersReceived = true;
    this.up.markUp(this.server);
    this.cleanup();
    const headers: HeaderList = [];
    const raw = rawHeaders ?? [];
    for (let i = 0; i + 1 < raw.length; i += 2) headers.push([latin1(raw[i]!), latin1(raw[i + 1]!)]);
    if (!this.sink.onResponseUpgrade) {
      socket.destroy();
      this.sink.onResponseError(new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `upstream ${this.up.name} switched protocols unasked`, 'headers-sent'));
      return;
    }
    this.sink.onResponseUpgrade(statusCode, headers, socket);
  }

  onData(chunk: Buffer): boolean {
    this.sink.onResponseData(this, chunk);
    return !this.paused;
  }

  onComplete(): void {
    if (this.finished) return;
    this.finished = true;
    this.cleanup();
    this.sink.onResponseEnd(this);
  }

  onError(err: Error): void {
    if (this.finished) return;
    if (this.req.signal.aborted) return this.fail(new ClientGoneError(this.headersReceived ? 'headers-sent' : 'request-sent', 'client disconnected', { cause: err }));
    const mapped = this.classify(err);
    if (mapped.phase === 'connect') this.up.markDown(this.server, err);
    const again = mayRetry({
      method: this.req.method,
      error: mapped,
      attempts: this.attempts,
      retries: this.up.config.retries,
      answered: this.headersReceived,
      // undici keeps its connections to itself: no evidence of a keep-alive race here.
      reusedConnection: false,
      closedUnread: false,
      bodyConsumed: this.req.body?.kind === 'stream' && this.req.body.stream.started,
    });
    if (again && this.up.serverCount > 1) {
      // Another server: the one that failed is out of rotation (or about to be).
      this.cleanup();
      const next = this.up.pick(this.server);
      if (next !== this.server) return this.run(next);
    }
    this.fail(mapped);
  }

  private classify(err: Error): M2gwError {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const where = `upstream ${this.up.name} (${this.server.origin})`;
    const phase = this.headersReceived ? 'headers-sent' : 'request-sent';
    // Only undici's own requests fail here, so undici is loaded.
    const undiciErrors = undici().errors;
    if (err instanceof undiciErrors.InvalidArgumentError) {
      // A method, target or header undici refuses to write (a CR or LF from a hostile
      // Mongrel2): the request's fault, refused as the direct client refuses it.
      return new M2gwError('M2GW_BAD_REQUEST', `${where}: ${err.message}`, 'route', { cause: err });
    }
    if (err instanceof undiciErrors.ConnectTimeoutError) {
      return new UpstreamError('M2GW_UPSTREAM_CONNECT', `${where}: connect timeout`, 'connect', { cause: err });
    }
    if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOENT'].includes(code)) {
      return new UpstreamError('M2GW_UPSTREAM_CONNECT', `${where}: ${code}`, 'connect', { cause: err });
    }
    if (err instanceof undiciErrors.HeadersTimeoutError) {
      return new UpstreamError('M2GW_UPSTREAM_TIMEOUT', `${where}: no response head within ${this.up.config.responseTimeoutMs} ms`, phase, { cause: err });
    }
    if (err instanceof undiciErrors.BodyTimeoutError) {
      return new UpstreamError('M2GW_UPSTREAM_TIMEOUT', `${where}: body idle for ${this.up.config.idleTimeoutMs} ms`, phase, { cause: err });
    }
    if (err instanceof undiciErrors.ResponseContentLengthMismatchError || err instanceof undiciErrors.HTTPParserError) {
      return new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `${where}: ${err.message}`, phase, { cause: err });
    }
    return new UpstreamError('M2GW_UPSTREAM_RESET', `${where}: ${err.message}${code ? ` (${code})` : ''}`, phase, { cause: err });
  }

  private fail(err: M2gwError): void {
    if (this.finished) return;
    this.finished = true;
    if (this.req.body?.kind === 'stream') this.req.body.stream.cancel();
    this.cleanup();
    this.sink.onResponseError(err);
  }

  private cleanup(): void {
    this.req.signal.removeEventListener('abort', this.onAbort);
    if (this.finished) this.up.done();
  }
}

function latin1(b: Buffer | string): string {
  return typeof b === 'string' ? b : b.toString('latin1');
}

/** A BodyStream as an async iterable (what undici's stream body pulls from). */
async function* pieces(stream: BodyStream): AsyncGenerator<Buffer> {
  try {
    for (;;) {
      const piece = await stream.read();
      if (piece === null) return;
      yield piece;
    }
  } finally {
    // undici stopped pulling early (the upstream answered or failed): no more credits.
    stream.cancel();
  }
}
