/**
 * Mongrel2's streamed uploads (`upload.stream = 1`, PROTOCOL.md §4.3). Instead of a temp
 * file, Mongrel2 sends the request with the body bytes it already has (header
 * UPLOAD_STREAM "0"), then waits for upload credits (`["ctl", {"credits": N}]`) before
 * reading more from the client; each later message carries only UPLOAD_STREAM (its byte
 * offset) and, on the last, UPLOAD_STREAM_DONE. A chunked body arrives the same way, one
 * de-chunked chunk per message (up to 100 KiB each, whatever the credits), ending with an
 * empty message.
 *
 * Promises:
 * - Bounded memory: credits are granted only for room in a CREDIT_WINDOW, and room appears
 *   only when the upstream reads (BodyStream.read). A stalled upstream holds the client.
 * - max_body applies as bytes arrive: a declared length over it is refused at once, a
 *   chunked body when it crosses it; either way 413, then the connection ends.
 * - Offsets are checked: a message that does not continue the body exactly fails it.
 * - A body cut short (client gone, upstream gone, refused) ends the client connection with
 *   `cancel`, the only message that wakes Mongrel2's upload reader (client-connection.ts).
 * This module is the only writer of ConnState.streamUpload.
 */
import { M2gwError } from '../errors.js';
import type { Logger } from '../log.js';
import { encodeCtl } from '../mongrel2/reply.js';
import { headerFirst, type Mongrel2Request } from '../mongrel2/request.js';
import type { BodyStream } from '../upstream/upstream.js';
import type { ClientConnection } from './client-connection.js';
import type { ConnectionTable, ConnState, HandlerRuntime, Pending } from './connections.js';
import { readRequestLine } from './request-builder.js';
import type { Router } from './router.js';

/** Body bytes held here or granted to Mongrel2 but not yet read by the upstream, at most. */
export const CREDIT_WINDOW = 256 * 1024;
/** Credits go out in batches of at least this much (one ctl message per upstream read would be wasteful). */
const GRANT_BATCH = CREDIT_WINDOW / 4;

export class StreamedUpload implements BodyStream {
  readonly length: number | null;
  started = false;
  /** UPLOAD_STREAM_DONE arrived and every byte before it. */
  complete = false;
  /** Why the body can never complete, once it cannot. */
  failure: M2gwError | null = null;
  private readonly conn: ClientConnection;
  private readonly maxBody: number;
  private pieces: Buffer[] = [];
  private buffered = 0;
  private received = 0;
  /** Bytes received in messages sent on credit (Mongrel2's first message is free). */
  private receivedOnCredit = 0;
  private granted = 0;
  private cancelled = false;
  private waiter: { resolve: (b: Buffer | null) => void; reject: (e: M2gwError) => void } | null = null;
  /** Told when the body fails while the request may be active (the gateway answers and aborts). */
  onFailure: ((err: M2gwError) => void) | null = null;

  constructor(conn: ClientConnection, length: number | null, maxBody: number) {
    this.conn = conn;
    this.length = length;
    this.maxBody = maxBody;
  }

  /** One message's body bytes. `first`: the message that carried the request. */
  push(offset: number, data: Buffer, done: boolean, first: boolean): void {
    if (this.complete || this.failure) return;
    if (offset !== this.received) {
      this.fail(new M2gwError('M2GW_BAD_REQUEST', `streamed upload offset ${offset}, expected ${this.received}`, 'route'));
      return;
    }
    this.received += data.length;
    if (!first) this.receivedOnCredit += data.length;
    if (this.received > this.maxBody || (this.length !== null && this.received > this.length)) {
      const what = this.received > this.maxBody ? `exceeds max_body ${this.maxBody}` : `exceeds its Content-Length ${this.length}`;
      this.fail(new M2gwError(this.received > this.maxBody ? 'M2GW_BODY_TOO_LARGE' : 'M2GW_BAD_REQUEST', `request body ${what}`, 'route'));
      return;
    }
    if (data.length > 0) {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = null;
        w.resolve(data);
      } else {
        this.pieces.push(data);
        this.buffered += data.length;
      }
    }
    if (done) {
      if (this.length !== null && this.received !== this.length) {
        this.fail(new M2gwError('M2GW_BAD_REQUEST', `streamed upload ended at ${this.received} of ${this.length} bytes`, 'route'));
        return;
      }
      this.complete = true;
      this.conn.closeByCancel = false;
      if (this.waiter && this.buffered === 0) {
        const w = this.waiter;
        this.waiter = null;
        w.resolve(null);
      }
      return;
    }
    this.grant();
  }

  /** The body cannot complete (client gone, too large, bad offsets). */
  fail(err: M2gwError): void {
    if (this.complete || this.failure) return;
    this.failure = err;
    this.pieces = [];
    this.buffered = 0;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
    this.onFailure?.(err);
  }

  // BodyStream
  read(): Promise<Buffer | null> {
    this.started = true;
    if (this.failure) return Promise.reject(this.failure);
    if (this.waiter) return Promise.reject(new M2gwError('M2GW_INTERNAL', 'BodyStream.read while a read is pending', 'route'));
    if (this.pieces.length > 0) {
      const piece = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.buffered);
      this.pieces = [];
      this.buffered = 0;
      this.grant();
      return Promise.resolve(piece);
    }
    if (this.complete) return Promise.resolve(null);
    this.grant();
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  cancel(): void {
    this.cancelled = true;
    this.pieces = [];
    this.buffered = 0;
  }

  /** Top Mongrel2's credits up to the window, counting what is buffered here. */
  private grant(): void {
    if (this.complete || this.failure || this.cancelled || this.conn.finished) return;
    const outstanding = Math.max(0, this.granted - this.receivedOnCredit);
    const room = CREDIT_WINDOW - outstanding - this.buffered;
    if (room < GRANT_BATCH) return;
    this.granted += room;
    this.conn.socket.send(encodeCtl(this.conn.replySender, [this.conn.connId], { credits: room }));
  }
}

/** Turns UPLOAD_STREAM messages into requests with a streamed body. */
export class StreamedUploads {
  constructor(
    private readonly log: Logger,
    private readonly router: Router,
    private readonly conns: ConnectionTable,
    private readonly enqueue: (state: ConnState, pending: Pending) => void,
  ) {}

  /** Returns false for a continuation of an upload this process does not know (an orphan). */
  onMessage(handler: HandlerRuntime, req: Mongrel2Request, key: string, offset: number, done: boolean): boolean {
    // Only the first message carries the request's headers (Mongrel2 adds METHOD to every request).
    if (headerFirst(req.headers, 'METHOD') === undefined) {
      const state = this.conns.get(key);
      const upload = state?.streamUpload;
      if (!state) return false;
      // Known connection, upload already over (refused or failed): bytes Mongrel2 read on credit before it heard.
      if (!upload) return true;
      upload.push(offset, req.body, done, false);
      if (upload.complete || upload.failure) state.streamUpload = null;
      return true;
    }
    const state = this.conns.stateFor(handler, req, key);
    if (state.streamUpload) {
      state.streamUpload.fail(new M2gwError('M2GW_BAD_REQUEST', 'a new streamed upload began before the last one ended', 'route'));
      state.streamUpload = null;
    }
    const line = readRequestLine(req);
    const route = this.router.match(line.host, line.path);
    const chunked = (headerFirst(req.headers, 'transfer-encoding') ?? '').toLowerCase().includes('chunked');
    const declared = chunked ? null : Number(headerFirst(req.headers, 'content-length') ?? NaN);
    const maxBody = route?.maxBodyBytes ?? Infinity;
    const upload = new StreamedUpload(state.conn, declared !== null && Number.isSafeInteger(declared) && declared >= 0 ? declared : null, maxBody);
    if (declared !== null && !Number.isSafeInteger(declared)) {
      upload.fail(new M2gwError('M2GW_BAD_REQUEST', 'streamed upload without a valid Content-Length', 'route'));
    } else if (declared !== null && declared > maxBody) {
      // Answer now; the client's body stays unread, so the connection ends after the answer.
      upload.fail(new M2gwError('M2GW_BODY_TOO_LARGE', `request body of ${declared} bytes exceeds max_body ${maxBody}`, 'route'));
    }
    if (!upload.failure && !done) state.conn.closeByCancel = true;
    if (upload.failure) {
      if (!done) state.conn.closeByCancel = true;
      this.log.debug('streamed upload refused', { conn: req.connId, error: upload.failure.message });
      this.enqueue(state, { req, bodyFile: null, refusal: upload.failure, bodyStream: null });
      return true;
    }
    state.streamUpload = upload;
    this.enqueue(state, { req, bodyFile: null, refusal: null, bodyStream: upload });
    upload.push(offset, req.body, done, true);
    if (upload.complete || upload.failure) state.streamUpload = null;
    return true;
  }
}
