/**
 * The pipelined-request queue of each connection: HTTP/1.1 clients may send requests
 * before the previous answer, and Mongrel2 passes them on at once. Answers must leave
 * in request order, so a connection answers one request at a time and the rest wait here.
 *
 * Promises: a queued request starts only after the one before it finished; requests behind
 * a response that closed the connection, or on a connection whose client left, are dropped
 * (never started) and their upload files deleted. This module is the only writer of
 * ConnState.queue.
 */
import type { ConnState, Pending } from './connections.js';
import { unlinkQuietly } from './uploads.js';

export class Pipeline {
  /** Starts a request on an idle connection (the gateway sets state.active). */
  private readonly start: (state: ConnState, pending: Pending) => void;

  constructor(start: (state: ConnState, pending: Pending) => void) {
    this.start = start;
  }

  /** Start the request now if the connection is idle, else queue it behind the active one. */
  readonly enqueue = (state: ConnState, pending: Pending): void => {
    if (state.conn.closing || state.conn.finished) {
      // Pipelined behind a response that closes the connection: the client will never read it.
      if (pending.bodyFile) void unlinkQuietly(pending.bodyFile.path);
      return;
    }
    if (state.active) {
      state.queue.push(pending);
      return;
    }
    this.start(state, pending);
  };

  /** The active request finished: start the next one, or drop the rest if the connection closed. */
  advance(state: ConnState, closed: boolean): void {
    if (closed) {
      this.drop(state);
    } else {
      const next = state.queue.shift();
      if (next) this.start(state, next);
    }
  }

  /** Forget every queued request (the connection closed or its client left). */
  drop(state: ConnState): void {
    for (const p of state.queue) if (p.bodyFile) void unlinkQuietly(p.bodyFile.path);
    state.queue = [];
  }
}
