/**
 * Keep-alive connections to one PHP-FPM address: at most maxConnections, each carrying one
 * request at a time (or `pipeline` deep), a bounded FIFO wait queue with a deadline, and the
 * retry rule (lifecycle.ts decides, on what the connection saw; `retries` times at most):
 * - nothing of the request was sent (connect failed): retried, on a new connection;
 * - the request was written onto a reused or pipelined connection that then closed before any
 *   byte came back (PHP-FPM's pm.max_requests close, a reload, an idle-kill racing our write):
 *   retried if the method is idempotent, or if PHP-FPM's FIN came within RECYCLE_WINDOW_MS of
 *   its previous END_REQUEST (the pm.max_requests pattern: the child exits without reading the
 *   request); 502 otherwise;
 * - anything else is reported to the request.
 *
 * A kept-alive connection pins one PHP-FPM child, so maxConnections should not exceed
 * pm.max_children: surplus connections would sit in FPM's accept backlog behind idle ones.
 *
 * Only a request the retry rule can send again is pipelined: one with an idempotent method
 * and its body in memory. A request written behind another is at the mercy of the one ahead
 * and of its connection: our own abort when the client ahead leaves (closing is the only way
 * to stop a running script), PHP-FPM killing a child at request_terminate_timeout, a crash.
 * Any of those resets the connection before PHP has read what waits behind, and we cannot
 * tell that from a reset just after PHP started it. A GET is then retried on a new
 * connection; a POST would be a 502 for a request PHP never saw. So a POST waits in the
 * queue for a connection of its own, as under nginx, and only idempotent requests go behind
 * another (RFC 9112 §9.3.2 gives clients the same advice).
 */
import { ClientGoneError, UpstreamError } from '../../errors.js';
import { IDEMPOTENT_METHODS, mayRetry } from '../lifecycle.js';
import type { UpstreamHealth } from '../upstream.js';
import type { FcgiAddress } from './address.js';
import { describeAddress } from './address.js';
import type { ConnectionOwner, ConnectionTimeouts } from './connection.js';
import { FcgiConnection } from './connection.js';
import type { CloseInfo, ConnectionJob, PoolRequest, Unfinished } from './job.js';

/** Pipeline only behind a request that was written less than this long ago. */
const PIPELINE_BEHIND_MS = 10;

/** The pool's state for one request, from submit to its end. Only FcgiPool writes the fields. */
export class PoolJob implements ConnectionJob {
  /** The body streams (from a file or the client): only on an idle connection, never pipelined behind. */
  readonly streamsBody: boolean;
  /** May be written behind another request: the retry rule could send it again (file header). */
  readonly pipelinable: boolean;
  /** Connections tried so far. */
  attempts = 0;
  /** Where the job is written, null while queued or done. */
  conn: FcgiConnection<PoolJob> | null = null;
  /** Taken back after a client abort: no more callbacks are wanted. */
  cancelled = false;
  /** A retry: goes on a new connection if the pool has room for one. */
  preferFresh = false;

  constructor(readonly request: PoolRequest) {
    this.streamsBody = request.separateBody !== null && request.separateBody.kind !== 'buffer';
    this.pipelinable = !this.streamsBody && IDEMPOTENT_METHODS.has(request.method);
  }

  /** Some connection has been given the request (PHP may have seen it). */
  get sent(): boolean {
    return this.attempts > 0;
  }

  /** Backpressure from the sink: stop reading PHP's output, and go on. */
  pauseReading(): void {
    this.conn?.pauseReading(this);
  }

  resumeReading(): void {
    this.conn?.resumeReading(this);
  }
}

export interface PoolOptions extends ConnectionTimeouts {
  readonly name: string;
  readonly address: FcgiAddress;
  readonly maxConnections: number;
  readonly pipeline: number;
  readonly queueSize: number;
  readonly queueTimeoutMs: number;
  /** Retries allowed by lifecycle.ts's rule, each on a new connection. */
  readonly retries: number;
}

interface Waiting {
  job: PoolJob;
  deadline: number;
}

export class FcgiPool implements ConnectionOwner<PoolJob> {
  private readonly conns = new Set<FcgiConnection<PoolJob>>();
  /** Idle connections, most recently used last. */
  private readonly idle: Array<FcgiConnection<PoolJob>> = [];
  private readonly queue: Waiting[] = [];
  private queueTimer: NodeJS.Timeout | null = null;
  private releaseScheduled = false;
  private healthy = true;
  private closing = false;
  private destroying = false;
  private drained: Promise<void> | null = null;
  private resolveDrained: (() => void) | null = null;

  constructor(private readonly opts: PoolOptions) {}

  /** Takes a request; every outcome reaches it (onEnd or onFail). The job is the caller's handle on it. */
  submit(request: PoolRequest): PoolJob {
    const job = new PoolJob(request);
    if (this.closing) {
      request.onFail(new UpstreamError('M2GW_SHUTTING_DOWN', 'the upstream is closing', 'connect'));
      return job;
    }
    if (this.queue.length === 0) {
      const conn = this.takeConnection(job);
      if (conn !== null) {
        this.startOn(conn, job);
        return job;
      }
    }
    if (this.queue.length >= this.opts.queueSize) {
      request.onFail(new UpstreamError('M2GW_SATURATED', `${this.opts.name}: all ${this.opts.maxConnections} PHP connections busy and the queue is full`, 'connect'));
      return job;
    }
    this.enqueue(job, false);
    return job;
  }

  /** The client went away: take the job back. A request PHP is running closes its connection. */
  cancel(job: PoolJob): void {
    if (job.cancelled) return;
    job.cancelled = true;
    const i = this.queue.findIndex((w) => w.job === job);
    if (i !== -1) {
      this.queue.splice(i, 1);
      return;
    }
    const conn = job.conn;
    if (conn !== null && conn.isActive(job)) {
      // PHP-FPM does not read FCGI_ABORT_REQUEST while a script runs: closing is the only signal.
      conn.abort(job, new ClientGoneError('request-sent'));
    }
    // A pipelined job not started yet stays on its connection; its output is dropped.
  }

  health(): UpstreamHealth {
    let inFlight = 0;
    for (const c of this.conns) inFlight += c.depth;
    const address = describeAddress(this.opts.address);
    return {
      name: this.opts.name,
      type: 'fastcgi',
      healthy: this.healthy,
      servers: [{ address, healthy: this.healthy }],
      inFlight,
      queued: this.queue.length,
      connections: { busy: this.conns.size - this.idle.length, idle: this.idle.length, max: this.opts.maxConnections },
    };
  }

  /** Stops taking jobs, lets queued and running ones finish, then closes the connections. */
  close(): Promise<void> {
    this.closing = true;
    this.drained ??= new Promise<void>((resolve) => {
      this.resolveDrained = resolve;
    });
    this.checkDrained();
    return this.drained;
  }

  /** Fails everything now and closes every connection. */
  destroy(): Promise<void> {
    const done = this.close();
    if (!this.destroying) {
      this.destroying = true;
      const err = new UpstreamError('M2GW_SHUTTING_DOWN', 'the upstream was destroyed', 'connect');
      for (const w of this.queue.splice(0)) w.job.request.onFail(err);
      this.armQueueTimer();
      for (const c of [...this.conns]) c.destroy(new UpstreamError('M2GW_SHUTTING_DOWN', 'the upstream was destroyed', 'request-sent'));
      this.checkDrained();
    }
    return done;
  }

  // --- ConnectionOwner ---------------------------------------------------------------------

  connected(): void {
    this.healthy = true;
  }

  jobDone(_conn: FcgiConnection<PoolJob>, job: PoolJob): void {
    job.conn = null;
    this.scheduleRelease();
  }

  bodySent(): void {
    this.pump();
  }

  closed(conn: FcgiConnection<PoolJob>, unfinished: Array<Unfinished<PoolJob>>, info: CloseInfo): void {
    this.conns.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    if (!info.wasConnected && !this.destroying) this.healthy = false;
    const retries: PoolJob[] = [];
    for (const u of unfinished) {
      const job = u.job;
      job.conn = null;
      if (job.cancelled) continue;
      if (this.mayRetry(u, info)) retries.push(job);
      else job.request.onFail(u.error);
    }
    // Retries go first, in their original order.
    for (let k = retries.length - 1; k >= 0; k--) {
      const job = retries[k]!;
      job.preferFresh = true;
      this.enqueue(job, true);
    }
    this.pump();
  }

  // -----------------------------------------------------------------------------------------

  private mayRetry(u: Unfinished<PoolJob>, info: CloseInfo): boolean {
    if (this.destroying) return false;
    const body = u.job.request.separateBody;
    return mayRetry({
      method: u.job.request.method,
      error: u.error,
      attempts: u.job.attempts,
      retries: this.opts.retries,
      answered: u.answered,
      reusedConnection: u.reusedConnection,
      // PHP-FPM recycled its child: it closed right after answering the previous request,
      // before reading this one (RECYCLE_WINDOW_MS in connection.ts).
      closedUnread: info.recycledByPeer,
      // A streamed upload flows into the socket as soon as it is written, even before it connects.
      bodyConsumed: body?.kind === 'stream' && body.stream.started,
    });
  }

  private takeConnection(job: PoolJob): FcgiConnection<PoolJob> | null {
    if (job.preferFresh) {
      // A retry goes on a new connection: the idle ones may be about to close as well (PHP-FPM
      // recycles children at pm.max_requests). At the limit, close an idle one to make room;
      // the job then waits for that close.
      if (this.conns.size < this.opts.maxConnections) return this.newConnection();
      this.idle.shift()?.end();
      return null;
    }
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (c.idle) return c;
      // Dying (peer FIN seen): its close event will finish the bookkeeping.
    }
    if (this.conns.size < this.opts.maxConnections) return this.newConnection();
    if (this.opts.pipeline > 1 && job.pipelinable) {
      // Only behind a request that started moments ago: a script already running for a while
      // is likely a slow one, and whatever is pipelined behind it waits for all of it, while
      // the central queue would hand it the first connection that frees up.
      const youngSince = performance.now() - PIPELINE_BEHIND_MS;
      let best: FcgiConnection<PoolJob> | null = null;
      for (const c of this.conns) {
        const n = c.depth;
        if (n === 0 || n >= this.opts.pipeline || !c.acceptsPipelined) continue;
        if (c.headWrittenAt < youngSince) continue;
        if (best === null || n < best.depth) best = c;
      }
      return best;
    }
    return null;
  }

  private newConnection(): FcgiConnection<PoolJob> {
    const c = new FcgiConnection<PoolJob>(this.opts.address, this.opts, this);
    this.conns.add(c);
    return c;
  }

  private startOn(conn: FcgiConnection<PoolJob>, job: PoolJob): void {
    job.attempts++;
    job.conn = conn;
    conn.start(job);
  }

  private enqueue(job: PoolJob, front: boolean): void {
    const w = { job, deadline: Date.now() + this.opts.queueTimeoutMs };
    if (front) this.queue.unshift(w);
    else this.queue.push(w);
    if (this.queueTimer === null) this.armQueueTimer();
  }

  /** Starts queued jobs while there is a connection for them. */
  private pump(): void {
    while (this.queue.length > 0) {
      const w = this.queue[0]!;
      const conn = this.takeConnection(w.job);
      if (conn === null) break;
      this.queue.shift();
      this.startOn(conn, w.job);
    }
    if (this.queue.length === 0 && this.queueTimer !== null) {
      clearTimeout(this.queueTimer);
      this.queueTimer = null;
    }
    this.checkDrained();
  }

  /**
   * Finished connections go back to work after the event loop has polled for I/O once more,
   * not at once: PHP-FPM closes right after END_REQUEST when a child reaches pm.max_requests,
   * and its FIN, a few microseconds behind the data, is then seen before another request is
   * written there. (One setImmediate runs before the next poll; the second runs after it.)
   */
  private scheduleRelease(): void {
    if (this.releaseScheduled) return;
    this.releaseScheduled = true;
    setImmediate(() =>
      setImmediate(() => {
        this.releaseScheduled = false;
        for (const c of this.conns) {
          if (c.depth === 0 && c.idle && !this.idle.includes(c)) this.idle.push(c);
        }
        this.pump();
      }),
    );
  }

  private armQueueTimer(): void {
    if (this.queueTimer !== null) clearTimeout(this.queueTimer);
    this.queueTimer = null;
    if (this.queue.length === 0) return;
    let next = Infinity;
    for (const w of this.queue) next = Math.min(next, w.deadline);
    this.queueTimer = setTimeout(() => this.expireQueue(), Math.max(0, next - Date.now()));
  }

  private expireQueue(): void {
    this.queueTimer = null;
    const now = Date.now();
    const expired: PoolJob[] = [];
    for (let i = 0; i < this.queue.length; ) {
      if (this.queue[i]!.deadline <= now) expired.push(this.queue.splice(i, 1)[0]!.job);
      else i++;
    }
    this.armQueueTimer();
    for (const job of expired) {
      job.request.onFail(new UpstreamError('M2GW_SATURATED', `${this.opts.name}: no PHP connection free within ${this.opts.queueTimeoutMs} ms`, 'connect'));
    }
    this.checkDrained();
  }

  private checkDrained(): void {
    if (!this.closing || this.queue.length > 0) return;
    for (const c of this.conns) if (c.depth === 0) c.end();
    if (this.conns.size === 0 && this.resolveDrained !== null) {
      const resolve = this.resolveDrained;
      this.resolveDrained = null;
      resolve();
    }
  }
}
