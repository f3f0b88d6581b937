/**
 * The FastCGI (PHP-FPM) upstream: resolve the path under document_root, then serve a static
 * file, redirect, refuse, or run the script through the connection pool, turning its STDOUT
 * into a response for the sink. Every outcome reaches the sink; nothing is thrown.
 */
import type { FastcgiUpstreamConfig } from '../../config/schema.js';
import { M2gwError, UpstreamError, asM2gwError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { VERSION } from '../../version.js';
import type { RequestBody, ResponseController, ResponseSink, Upstream, UpstreamHealth, UpstreamRequest } from '../upstream.js';
import { CgiHeaderError, CgiResponseParser } from './cgi-response.js';
import { parseAddress } from './address.js';
import type { FcgiConnection } from './connection.js';
import { buildParams, utf8ToByteString } from './params.js';
import type { ParamsContext } from './params.js';
import { FcgiPool } from './pool.js';
import type { PoolJob } from './pool.js';
import { ParamTooLargeError, ProtocolStatus, encodeRequestHead } from './records.js';
import { ScriptResolver } from './script-resolver.js';
import type { Resolution, ResolverFs } from './script-resolver.js';
import { serveStaticFile } from './static-files.js';

/** In-memory bodies up to this size are copied into the request's single write. */
const INLINE_BODY_MAX = 64 * 1024;
/** Most PHP stderr kept per request for the log line. */
const STDERR_MAX = 8 * 1024;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export interface FastcgiUpstreamOptions {
  /** File system access for the resolver (tests). */
  readonly resolverFs?: ResolverFs;
}

export function createFastcgiUpstream(cfg: FastcgiUpstreamConfig, logger: Logger, opts: FastcgiUpstreamOptions = {}): Upstream {
  return new FastcgiUpstream(cfg, logger, opts);
}

class FastcgiUpstream implements Upstream {
  readonly type = 'fastcgi' as const;
  readonly name: string;
  readonly pool: FcgiPool;
  private readonly resolver: ScriptResolver;
  private readonly ctx: ParamsContext;
  private closing = false;

  constructor(
    readonly cfg: FastcgiUpstreamConfig,
    readonly logger: Logger,
    opts: FastcgiUpstreamOptions,
  ) {
    this.name = cfg.name;
    let address;
    try {
      address = parseAddress(cfg.address);
    } catch (err) {
      throw new M2gwError('M2GW_CONFIG', `upstream ${cfg.name}: ${(err as Error).message}`);
    }
    this.pool = new FcgiPool({
      name: cfg.name,
      address,
      maxConnections: Math.max(1, cfg.maxConnections),
      pipeline: Math.max(1, cfg.pipeline),
      queueSize: Math.max(0, cfg.queueSize),
      queueTimeoutMs: cfg.queueTimeoutMs,
      connectTimeoutMs: cfg.connectTimeoutMs,
      responseTimeoutMs: cfg.responseTimeoutMs,
      idleTimeoutMs: cfg.idleTimeoutMs,
    });
    this.resolver = new ScriptResolver(cfg, opts.resolverFs);
    this.ctx = {
      documentRoot: this.resolver.documentRoot,
      serverSoftware: `m2gw/${VERSION}`,
      extra: Object.entries(cfg.params).map(([k, v]) => [utf8ToByteString(k), utf8ToByteString(v)] as const),
    };
  }

  forward(req: UpstreamRequest, sink: ResponseSink): void {
    if (this.closing) {
      sink.onResponseError(new UpstreamError('M2GW_SHUTTING_DOWN', 'the upstream is closing', 'connect'));
      return;
    }
    if (req.signal.aborted) {
      sink.onResponseError(new UpstreamError('M2GW_CLIENT_GONE', 'client went away', 'connect'));
      return;
    }
    this.resolver.resolve(req).then(
      (r) => this.afterResolve(req, sink, r),
      (err: unknown) => sink.onResponseError(asM2gwError(err)),
    );
  }

  private afterResolve(req: UpstreamRequest, sink: ResponseSink, r: Resolution): void {
    try {
      if (req.signal.aborted) {
        sink.onResponseError(new UpstreamError('M2GW_CLIENT_GONE', 'client went away', 'connect'));
        return;
      }
      switch (r.kind) {
        case 'error':
          sink.onResponseError(r.error);
          return;
        case 'redirect': {
          const ctl: ResponseController = { pause() {}, resume() {} };
          sink.onResponseStart(ctl, 301, [
            ['location', r.location],
            ['content-length', '0'],
          ]);
          sink.onResponseEnd(ctl);
          return;
        }
        case 'static':
          serveStaticFile(req, r.file, sink);
          return;
        case 'script':
          this.runScript(req, sink, r);
          return;
      }
    } catch (err) {
      sink.onResponseError(asM2gwError(err));
    }
  }

  private runScript(req: UpstreamRequest, sink: ResponseSink, script: Extract<Resolution, { kind: 'script' }>): void {
    const body = req.body;
    const inline = body === null ? null : body.kind === 'buffer' && body.data.length <= INLINE_BODY_MAX ? body.data : 'stream';
    let head: Buffer;
    try {
      head = encodeRequestHead({ recordId: 1, params: buildParams(req, script, this.ctx), stdin: inline });
    } catch (err) {
      if (err instanceof ParamTooLargeError) {
        sink.onResponseError(new M2gwError('M2GW_BAD_REQUEST', err.message));
        return;
      }
      throw err;
    }
    const ex = new Exchange(this, req, sink, head, inline === 'stream' ? body : null);
    this.pool.submit(ex);
  }

  logStderr(req: UpstreamRequest, text: string): void {
    this.logger.warn('php stderr', { requestId: req.id, upstream: this.name, stderr: text });
  }

  health(): UpstreamHealth {
    return this.pool.health();
  }

  close(): Promise<void> {
    this.closing = true;
    return this.pool.close();
  }

  destroy(): Promise<void> {
    this.closing = true;
    return this.pool.destroy();
  }
}

/** One request through the pool: FastCGI output → CGI head → sink. */
class Exchange implements PoolJob {
  recordId = 0;
  responseStarted = false;
  attempts = 0;
  conn: FcgiConnection | null = null;
  silentRetryOk = false;
  cancelled = false;
  preferFresh = false;
  startedAt = 0;
  readonly idempotent: boolean;
  readonly streamsBody: boolean;
  readonly ctl: ResponseController;
  private readonly parser = new CgiResponseParser();
  private readonly isHead: boolean;
  private headSent = false;
  private done = false;
  private stderr: Buffer[] | null = null;
  private stderrBytes = 0;
  private readonly onAbort = (): void => this.abort();

  constructor(
    private readonly up: FastcgiUpstream,
    private readonly req: UpstreamRequest,
    private readonly sink: ResponseSink,
    readonly head: Buffer,
    readonly separateBody: RequestBody | null,
  ) {
    this.idempotent = IDEMPOTENT.has(req.method);
    this.streamsBody = separateBody !== null && separateBody.kind === 'file';
    this.isHead = req.method === 'HEAD';
    this.ctl = {
      pause: () => this.conn?.pauseReading(this),
      resume: () => this.conn?.resumeReading(this),
    };
    req.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  onStdout(data: Buffer): void {
    if (this.done) return;
    if (this.headSent) {
      if (!this.isHead) this.sink.onResponseData(this.ctl, data);
      return;
    }
    let head;
    try {
      head = this.parser.push(data);
    } catch (err) {
      if (!(err instanceof CgiHeaderError)) throw err;
      // The output stream stays in step: the rest of it is dropped until END_REQUEST.
      this.finish(new UpstreamError('M2GW_UPSTREAM_PROTOCOL', `PHP sent a bad header block: ${err.message}`, 'request-sent'));
      return;
    }
    if (head === null) return;
    this.headSent = true;
    this.sink.onResponseStart(this.ctl, head.status, head.headers, head.reason);
    if (head.rest.length > 0 && !this.done && !this.isHead) this.sink.onResponseData(this.ctl, head.rest);
  }

  onStderr(data: Buffer): void {
    if (this.stderrBytes >= STDERR_MAX) return;
    const piece = data.subarray(0, STDERR_MAX - this.stderrBytes);
    (this.stderr ??= []).push(Buffer.from(piece));
    this.stderrBytes += piece.length;
  }

  onEnd(_appStatus: number, protocolStatus: number): void {
    if (this.done) {
      this.logStderr();
      return;
    }
    if (protocolStatus !== ProtocolStatus.REQUEST_COMPLETE) {
      const what = ['complete', 'cannot multiplex', 'overloaded', 'unknown role'][protocolStatus] ?? `status ${protocolStatus}`;
      this.finish(new UpstreamError('M2GW_UPSTREAM_OVERLOADED', `PHP-FPM refused the request: ${what}`, 'request-sent'));
    } else if (!this.headSent) {
      const why = this.parser.hasPartialHead ? 'PHP output ended inside the header block' : 'PHP sent no output';
      this.finish(new UpstreamError('M2GW_UPSTREAM_PROTOCOL', why, 'request-sent'));
    } else {
      this.finish(null);
    }
  }

  onFail(err: UpstreamError): void {
    this.finish(err);
  }

  private abort(): void {
    if (this.done) return;
    const phase = this.headSent ? 'headers-sent' : this.conn === null && this.attempts === 0 ? 'connect' : 'request-sent';
    this.finish(new UpstreamError('M2GW_CLIENT_GONE', 'client went away', phase));
    this.up.pool.cancel(this);
    this.logStderr();
  }

  private finish(err: UpstreamError | null): void {
    if (this.done) return;
    this.done = true;
    this.req.signal.removeEventListener('abort', this.onAbort);
    if (err === null) {
      this.sink.onResponseEnd(this.ctl);
    } else {
      if (this.headSent) err.phase = 'headers-sent';
      this.sink.onResponseError(err);
    }
    // A failed request's END_REQUEST may still bring stderr: log then (see onEnd).
    if (err === null || this.conn === null) this.logStderr();
  }

  private logStderr(): void {
    if (this.stderr === null) return;
    const text = Buffer.concat(this.stderr).toString('utf8').trimEnd();
    this.stderr = null;
    const suffix = this.stderrBytes >= STDERR_MAX ? ' …(truncated)' : '';
    this.up.logStderr(this.req, text + suffix);
  }
}
