/**
 * The pipelined-request queue of each connection: HTTP/1.1 clients may send requests
 * before the previous answer, and Mongrel2 passes them on at once. Answers must leave
 * in request order, so a connection answers one request at a time and the rest wait here.
 *
 * Bounds (a client pipelining 200,000 requests against a slow upstream once queued them
 * all: 388 MB of heap):
 * - at most MAX_PIPELINED_PER_CONNECTION wait on one connection, and queued requests count
 *   toward the worker's `max_in_flight` together with active ones. The request past either
 *   cap is queued as a 503 that closes the connection in its turn (answers stay in order);
 *   anything the client pipelines after it is dropped, as it will never be read;
 * - the next request starts only once the replies already queued for the client are under
 *   HIGH_WATER, so a client that does not read cannot make small answers pile up.
 *
 * An async upload holds its place from its start message on (a placeholder, filled by its
 * done message's request): the file is opened and checked asynchronously after the done, and a
 * request pipelined behind the upload must not be answered first.
 *
 * Promises: a queued request starts only after the one before it finished; requests behind
 * a response that closed the connection, or on a connection whose client left, are dropped
 * (never started) and their upload files deleted (a placeholder dropped is told to
 * onUploadDropped, so a late done message deletes its file). This module is the only writer
 * of ConnState.queue.
 */
import { M2gwError } from '../errors.js';
import { recordLimitHit } from '../metrics/limit-hits.js';
import { HIGH_WATER } from './client-connection.js';
import { discardBodyFile, type ConnState, type Pending } from './connections.js';
import { MAX_PIPELINED_PER_CONNECTION } from './limits.js';

export class Pipeline {
  /** Starts a request on an idle connection (the gateway sets state.active). */
  private readonly start: (state: ConnState, pending: Pending) => void;
  /** Active requests in this worker (the gateway's count). */
  private readonly active: () => number;
  /** `max_in_flight`: active plus queued requests allowed in this worker. */
  private readonly maxInFlight: number;
  private queuedCount = 0;
  /** A placeholder was dropped: its upload's done message may still come (uploads.ts). */
  private readonly onUploadDropped: (state: ConnState, uploadPath: string) => void;

  constructor(start: (state: ConnState, pending: Pending) => void, active: () => number, maxInFlight: number, onUploadDropped: (state: ConnState, uploadPath: string) => void) {
    this.start = start;
    this.active = active;
    this.maxInFlight = maxInFlight;
    this.onUploadDropped = onUploadDropped;
  }

  /** Requests waiting behind another on their connection, in this worker. */
  get queued(): number {
    return this.queuedCount;
  }

  /** Start the request now if the connection is idle, else queue it behind the active one. */
  readonly enqueue = (state: ConnState, pending: Pending): void => {
    if (state.conn.closing || state.conn.finished || state.queue.at(-1)?.closeAfter === true) {
      // Pipelined behind a response that closes the connection: the client will never read it.
      if (pending.bodyFile) discardBodyFile(pending.bodyFile);
      return;
    }
    if (state.active === null && state.queue.length === 0 && pending.awaitingUpload === undefined) {
      this.start(state, pending);
      return;
    }
    // A placeholder is not capped here: one per connection at most, and uploads.ts caps them.
    if (pending.awaitingUpload === undefined && (state.queue.length >= MAX_PIPELINED_PER_CONNECTION || this.active() + this.queuedCount >= this.maxInFlight)) {
      recordLimitHit('pipeline_queue');
      if (pending.bodyFile) discardBodyFile(pending.bodyFile);
      const why = state.queue.length >= MAX_PIPELINED_PER_CONNECTION ? `more than ${MAX_PIPELINED_PER_CONNECTION} pipelined requests on one connection` : `more than ${this.maxInFlight} requests in flight or queued`;
      pending = { req: pending.req, bodyFile: null, refusal: new M2gwError('M2GW_SATURATED', why, 'route'), closeAfter: true };
    }
    state.queue.push(pending);
    this.queuedCount++;
  };

  /**
   * An upload's done message became its request (or its refusal): it takes its placeholder's
   * place, and starts if that place has come. False when the placeholder is gone (dropped with
   * the connection): the caller then discards the file.
   */
  fill(state: ConnState, uploadPath: string, pending: Pending): boolean {
    const at = state.queue.findIndex((p) => p.awaitingUpload === uploadPath);
    if (at === -1) return false;
    state.queue[at] = pending;
    if (at === 0 && state.active === null) this.advance(state, false);
    return true;
  }

  /** The active request finished: start the next one, or drop the rest if the connection closed. */
  advance(state: ConnState, closed: boolean): void {
    if (closed) {
      this.drop(state);
      return;
    }
    if (state.queue.length === 0 || state.queue[0]!.awaitingUpload !== undefined) return;
    if (state.conn.queuedBytes > HIGH_WATER) {
      // The client is not reading: answer more only once it has caught up.
      recordLimitHit('queued_reply_bytes');
      state.conn.whenDrained(() => {
        if (state.active === null && !state.conn.finished) this.advance(state, false);
      });
      return;
    }
    const next = state.queue.shift()!;
    this.queuedCount--;
    this.start(state, next);
  }

  /** Forget every queued request (the connection closed or its client left). */
  drop(state: ConnState): void {
    for (const p of state.queue) {
      if (p.bodyFile) discardBodyFile(p.bodyFile);
      if (p.awaitingUpload !== undefined) this.onUploadDropped(state, p.awaitingUpload);
    }
    this.queuedCount -= state.queue.length;
    state.queue = [];
  }
}
