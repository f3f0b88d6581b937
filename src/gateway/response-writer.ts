/**
 * The ResponseSink of one request: turns upstream callbacks into HTTP/1.1 bytes on
 * the client connection. Mongrel2 writes our bytes verbatim, so framing (Content-Length,
 * chunked, or read-until-close) and keep-alive are decided here.
 */
import { M2gwError, bodyFor, inPhase, statusFor } from '../errors.js';
import { CRLF, LAST_CHUNK, encodeChunkHeader, encodeResponseHead, simpleResponse } from '../mongrel2/http-head.js';
import type { HeaderList, ResponseController, ResponseSink } from '../upstream/upstream.js';
import { recordLimitHit } from '../metrics/limit-hits.js';
import { HIGH_WATER, type ClientConnection } from './client-connection.js';
import { checkUpstreamHead } from './upstream-head.js';

/** Response headers that describe the upstream hop, not the client's. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

type Framing = 'none' | 'length' | 'chunked' | 'close';

export interface ResponseOutcome {
  status: number;
  /** Body bytes sent to the client (not counting head and chunk framing). */
  bytes: number;
  error: M2gwError | null;
  /** The connection was closed after this response (no further pipelined requests). */
  closed: boolean;
}

export interface ResponseWriterOptions {
  readonly method: string;
  /** Client asked for keep-alive (HTTP/1.1 without Connection: close, or 1.0 with keep-alive). */
  readonly keepAlive: boolean;
  readonly http10: boolean;
  readonly requestId: string;
  /** The request body was not fully read by Mongrel2 (an upload we refused): close after replying. */
  readonly mustClose?: boolean;
  /**
   * Called when the writer itself gives up on a response the upstream is still sending (an
   * invalid head, a body past its Content-Length): the caller stops the upstream.
   */
  readonly abandon?: (err: M2gwError) => void;
}

/**
 * The options of a request answered through the gateway. A class, not an object literal with
 * a getter: a literal defining `get mustClose()` anew per request gave every request's object
 * its own accessor, and the heap profile showed that request's state outliving
 * young-generation collections (bench/README.md, "where the time goes").
 */
export class RequestReplyOptions implements ResponseWriterOptions {
  constructor(
    readonly method: string,
    readonly keepAlive: boolean,
    readonly http10: boolean,
    readonly requestId: string,
    /** The request body is being refused (or was cut short): the connection ends after the answer. */
    private readonly tooLarge: boolean,
    private readonly conn: ClientConnection,
    /** What stops the upstream when the writer gives up (the request's abort). */
    private readonly upstream: { abort(reason: unknown): void },
  ) {}

  /** Asked when the answer is written: a streamed body still arriving then must end the connection. */
  get mustClose(): boolean {
    return this.tooLarge || this.conn.closeByCancel;
  }

  /** The writer gave up on a response the upstream is still sending: stop the upstream too. */
  abandon(err: M2gwError): void {
    this.upstream.abort(err);
  }
}

export class ResponseWriter implements ResponseSink {
  private readonly conn: ClientConnection;
  private readonly opts: ResponseWriterOptions;
  private readonly done: (outcome: ResponseOutcome) => void;
  private framing: Framing = 'none';
  private started = false;
  private finished = false;
  private status = 0;
  private bytes = 0;
  /** The checked Content-Length, when framing is 'length'. */
  private expected = 0;
  private closeAfter = false;

  constructor(conn: ClientConnection, opts: ResponseWriterOptions, done: (outcome: ResponseOutcome) => void) {
    this.conn = conn;
    this.opts = opts;
    // The connection keeps a quiet open request alive and budgets its messages per response.
    conn.beginResponse();
    this.done = (outcome) => {
      conn.endResponse();
      done(outcome);
    };
  }

  get headersSent(): boolean {
    return this.started;
  }

  onResponseStart(_ctl: ResponseController, status: number, headers: HeaderList, reason?: string): void {
    if (this.finished || this.started) return;
    // 1xx interim responses are the upstream hop's business (Mongrel2 already answered Expect).
    // A 101 is not interim: checkUpstreamHead refuses it (we never ask for an upgrade).
    if (status < 200 && status !== 101) return;
    const verdict = checkUpstreamHead(status, headers);
    if (!verdict.ok) {
      if (verdict.limit) recordLimitHit(verdict.limit);
      this.giveUp(new M2gwError('M2GW_UPSTREAM_PROTOCOL', `invalid response head: ${verdict.reason}`, 'request-sent'));
      return;
    }
    this.started = true;
    this.status = status;
    const noBody = this.opts.method === 'HEAD' || status === 204 || status === 304;
    const out: HeaderList = [];
    let lengthAt = -1;
    let connectionTokens: Set<string> | null = null;
    for (const [name, value] of headers) {
      const lower = name.toLowerCase();
      if (lower === 'connection') {
        connectionTokens ??= new Set();
        for (const t of value.toLowerCase().split(',')) connectionTokens.add(t.trim());
      }
      if (HOP_BY_HOP.has(lower)) continue;
      if (lower === 'content-length') {
        // One header, written by us from the checked number: duplicates collapse, and the
        // framing can never be removed by the loop below.
        if (lengthAt === -1 && status !== 204) {
          lengthAt = out.length;
          out.push(['Content-Length', String(verdict.contentLength)]);
        }
        continue;
      }
      out.push([name, value]);
    }
    if (connectionTokens) {
      // Headers the upstream named in Connection are hop-by-hop too (RFC 9110 §7.6.1), except
      // Content-Length: framing is ours to keep (`Connection: content-length` would otherwise
      // leave a body without a length on a kept-alive connection).
      for (let i = out.length - 1; i >= 0; i--) if (i !== lengthAt && connectionTokens.has(out[i]![0].toLowerCase())) out.splice(i, 1);
    }

    let keepAlive = this.opts.keepAlive && !this.opts.mustClose;
    if (noBody) {
      this.framing = 'none';
    } else if (verdict.contentLength !== null) {
      this.framing = 'length';
      this.expected = verdict.contentLength;
    } else if (!this.opts.http10) {
      this.framing = 'chunked';
      out.push(['Transfer-Encoding', 'chunked']);
    } else {
      this.framing = 'close';
      keepAlive = false;
    }
    if (!keepAlive) out.push(['Connection', 'close']);
    else if (this.opts.http10) out.push(['Connection', 'keep-alive']);
    this.closeAfter = !keepAlive;

    let head: Buffer;
    try {
      head = encodeResponseHead(status, out, reason);
    } catch (err) {
      // An upstream header with CR/LF/NUL would split the response: refuse the whole response.
      this.started = false;
      this.giveUp(new M2gwError('M2GW_UPSTREAM_PROTOCOL', `invalid response header: ${(err as Error).message}`, 'request-sent'));
      return;
    }
    this.conn.write(head, true);
  }

  onResponseData(ctl: ResponseController, chunk: Buffer): void {
    if (this.finished || !this.started || chunk.length === 0 || this.framing === 'none') return;
    if (this.framing === 'length' && chunk.length > this.expected - this.bytes) {
      // More than the upstream announced: whatever follows would be read by the client as
      // the next response. Send what was announced, then close. (Not paused: a paused upstream
      // would hold its connection: the caller's abandon() stops it.)
      const allowed = this.expected - this.bytes;
      if (allowed > 0) {
        this.bytes += allowed;
        this.conn.write(chunk.subarray(0, allowed));
      }
      this.giveUp(new M2gwError('M2GW_UPSTREAM_PROTOCOL', `response body longer than its Content-Length ${this.expected}`, 'headers-sent'));
      return;
    }
    this.bytes += chunk.length;
    if (this.framing === 'chunked') {
      this.conn.write(encodeChunkHeader(chunk.length));
      this.conn.write(chunk);
      this.conn.write(CRLF);
    } else {
      this.conn.write(chunk);
    }
    if (this.conn.queuedBytes > HIGH_WATER) {
      ctl.pause();
      this.conn.whenDrained(() => ctl.resume());
    }
  }

  onResponseEnd(_ctl: ResponseController): void {
    if (this.finished) return;
    if (!this.started) {
      this.onResponseError(new M2gwError('M2GW_UPSTREAM_PROTOCOL', 'upstream ended without a response', 'request-sent'));
      return;
    }
    if (this.framing === 'length' && this.bytes < this.expected) {
      // The client would wait for the missing bytes, then read the next response as body.
      this.onResponseError(new M2gwError('M2GW_UPSTREAM_PROTOCOL', `response body of ${this.bytes} bytes shorter than its Content-Length ${this.expected}`, 'headers-sent'));
      return;
    }
    this.finished = true;
    if (this.framing === 'chunked') this.conn.write(LAST_CHUNK, true);
    else this.conn.flushSoon();
    if (this.closeAfter) this.conn.close();
    this.done({ status: this.status, bytes: this.bytes, error: null, closed: this.closeAfter });
  }

  /** An error found here, not reported by the upstream: answer it, then let the caller stop the upstream. */
  private giveUp(err: M2gwError): void {
    this.onResponseError(err);
    this.opts.abandon?.(err);
  }

  /** `forceClose`: close the connection after the error page even if the client wanted keep-alive. */
  onResponseError(err: M2gwError, forceClose = false): void {
    if (this.finished) return;
    this.finished = true;
    if (this.started) {
      // Part of the response is already with the client: the only honest signal left is closing.
      this.conn.close();
      this.done({ status: this.status, bytes: this.bytes, error: inPhase(err, 'headers-sent'), closed: true });
      return;
    }
    const status = statusFor(err);
    const close = forceClose || !this.opts.keepAlive || this.opts.mustClose === true;
    if (err.code !== 'M2GW_CLIENT_GONE') {
      const headers: Array<[string, string]> = [['X-Request-Id', this.opts.requestId]];
      if (close) headers.push(['Connection', 'close']);
      this.conn.write(simpleResponse(status, bodyFor(err.code), headers, { head: this.opts.method === 'HEAD' }), true);
      if (close) this.conn.close();
    }
    this.done({ status, bytes: 0, error: err, closed: close });
  }
}
