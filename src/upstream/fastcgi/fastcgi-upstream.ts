/**
 * The FastCGI (PHP-FPM) upstream: resolve the path under document_root, then serve a static
 * file, redirect, refuse, or run the script through the connection pool, turning its STDOUT
 * into a response for the sink. Every outcome reaches the sink; nothing is thrown.
 */
import type { FastcgiUpstreamConfig } from '../../config/schema.js';
import { ClientGoneError, M2gwError, UpstreamError, asM2gwError, inPhase } from '../../errors.js';
import type { Logger } from '../../log.js';
import { VERSION } from '../../version.js';
import type { RequestBody, ResponseController, ResponseSink, Upstream, UpstreamHealth, UpstreamRequest } from '../upstream.js';
import { CgiHeaderError, CgiResponseParser } from './cgi-response.js';
import { parseAddress } from './address.js';
import type { PoolRequest } from './job.js';
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
      throw new M2gwError('M2GW_CONFIG', `upstream ${cfg.name}: ${(err as Error).message}`, 'route');
    }
    this.pool = new FcgiPool({
      name: cfg.name,
      address,
      maxConnections: Math.max(1, cfg.maxConnections),
      pipeline: Math.max(1, cfg.pipeline),
      queueSize: Math.max(0, cfg.queueSize),
      queueTimeoutMs: cfg.queueTimeoutMs,
      retries: cfg.retries,
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
      sink.onResponseError(new ClientGoneError('connect'));
      return;
    }
    this.resolver.resolve(req).then(
      (r) => this.afterResolve(req, sink, r),
      (err: unknown) => sink.onResponseError(asM2gwError(err, 'connect')),
    );
  }

  private afterResolve(req: UpstreamRequest, sink: ResponseSink, r: Resolution): void {
    try {
      if (req.signal.aborted) {
        sink.onResponseError(new ClientGoneError('connect'));
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
      // Nothing reaches PHP before runScript hands the request to the pool, which never throws.
      sink.onResponseError(asM2gwError(err, 'connect'));
    }
  }

  private runScript(req: UpstreamRequest, sink: ResponseSink, script: Extract<Resolution, { kind: 'script' }>): void {
    const body = req.body;
    if (body?.kind === 'stream' && body.stream.length === null) {
      // CGI states the body's length up front (CONTENT_LENGTH); PHP reads no body without it.
      sink.onResponseError(new M2gwError('M2GW_LENGTH_REQUIRED', 'a chunked request body cannot be streamed to FastCGI (no CONTENT_LENGTH)', 'route'));
      return;
    }
    const inline = body === null ? null : body.kind === 'buffer' && body.data.length <= INLINE_BODY_MAX ? body.data : 'stream';
    let head: Buffer;
    try {
      head = encodeRequestHead({ recordId: 1, params: buildParams(req, script, this.ctx), stdin: inline });
    } catch (err) {
      if (err instanceof ParamTooLargeError) {
        sink.onResponseError(new M2gwError('M2GW_BAD_REQUEST', err.message, 'route'));
        return;
      }
      throw err;
    }
    new Exchange(this, req, sink, head, inline === 'stream' ? body : null).submit();
  }

  logStderr(req: UpstreamRequest, text: string): void {
    this.logger.warn('php stderr', { request_id: req.id, upstream: this.name, stderr: text });
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

/**
 * One request through the pool: FastCGI output → CGI head → sink. Its state is its own (see
 * job.ts); it is also the sink's ResponseController, pausing PHP's output through the pool job.
 */
class Exchange implements PoolRequest, ResponseController {
  readonly method: string;
  private readonly parser = new CgiResponseParser();
  private readonly isHead: boolean;
  /** The pool's handle, once submitted. */
  private job: PoolJob | null = null;
  /** The CGI head was parsed and given to the sink (onResponseStart). */
  private headDelivered = false;
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
    this.method = req.method;
    this.isHead = req.method === 'HEAD';
    req.signal.addEventListener('abort', this.onAbort, { once: true });
  }

  submit(): void {
    const job = this.up.pool.submit(this);
    // Unless the pool failed it at once (closing, queue full).
    if (!this.done) this.job = job;
  }

  // ResponseController
  pause(): void {
    this.job?.pauseReading();
  }

  resume(): void {
    this.job?.resumeReading();
  }

  onStdout(data: Buffer): void {
    if (this.done) return;
    if (this.headDelivered) {
      if (!this.isHead) this.sink.onResponseData(this, data);
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
    this.headDelivered = true;
    this.sink.onResponseStart(this, head.status, head.headers, head.reason);
    if (head.rest.length > 0 && !this.done && !this.isHead) this.sink.onResponseData(this, head.rest);
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
    } else if (!this.headDelivered) {
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
    const phase = this.headDelivered ? 'headers-sent' : this.job === null || !this.job.sent ? 'connect' : 'request-sent';
    const job = this.job;
    this.finish(new ClientGoneError(phase));
    if (job !== null) this.up.pool.cancel(job);
    this.logStderr();
  }

  private finish(err: M2gwError | null): void {
    if (this.done) return;
    this.done = true;
    this.req.signal.removeEventListener('abort', this.onAbort);
    if (err === null) {
      this.sink.onResponseEnd(this);
    } else {
      this.sink.onResponseError(this.headDelivered ? inPhase(err, 'headers-sent') : err);
    }
    // A failed request's END_REQUEST may still bring stderr: log then (see onEnd).
    if (err === null || this.job === null || this.job.conn === null) this.logStderr();
  }

  private logStderr(): void {
    if (this.stderr === null) return;
    const text = Buffer.concat(this.stderr).toString('utf8').trimEnd();
    this.stderr = null;
    const suffix = this.stderrBytes >= STDERR_MAX ? ' …(truncated)' : '';
    this.up.logStderr(this.req, text + suffix);
  }
}
