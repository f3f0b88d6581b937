/**
 * Keep-alive connections (connection.ts) to one upstream server: at most `max`, the most
 * recently used idle one first (it is the least likely to have been closed by the server's own
 * keep-alive timer), and a FIFO of requests waiting for one. The gateway bounds what is in
 * flight, so the queue is bounded by it.
 *
 * Where a request goes when it is sent again (the decision is lifecycle.ts's, made by the
 * caller on what the failed connection saw): `fresh` asks for a new connection while the pool
 * has room for one, since the idle ones are as old as the one that just failed.
 */
import { HttpConnection, type ConnectionOwner, type ConnectionTimeouts, type Exchange } from './connection.js';

export class HttpPool implements ConnectionOwner {
  private readonly conns = new Set<HttpConnection>();
  /** Idle connections, most recently used last. Every other connection in `conns` is busy. */
  private readonly idle: HttpConnection[] = [];
  private readonly queue: Exchange[] = [];
  private closing: Promise<void> | null = null;
  private closed: (() => void) | null = null;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly max: number,
    private readonly timeouts: ConnectionTimeouts,
  ) {}

  /** Sends the exchange on an idle connection, a new one, or when one frees up (the exchange hears onStart then). */
  send(ex: Exchange, fresh = false): void {
    let conn: HttpConnection | undefined;
    if (!fresh || this.conns.size >= this.max) conn = this.idle.pop();
    if (conn === undefined) {
      if (this.conns.size >= this.max) {
        this.queue.push(ex);
        return;
      }
      conn = new HttpConnection(this, this.host, this.port, this.timeouts);
      this.conns.add(conn);
    }
    conn.start(ex);
  }

  /** Takes a queued exchange back (its client left before it was sent). */
  withdraw(ex: Exchange): void {
    const i = this.queue.indexOf(ex);
    if (i !== -1) this.queue.splice(i, 1);
  }

  get stats(): { busy: number; idle: number; queued: number } {
    return { busy: this.conns.size - this.idle.length, idle: this.idle.length, queued: this.queue.length };
  }

  // ConnectionOwner
  release(conn: HttpConnection): void {
    const next = this.queue.shift();
    if (next !== undefined) {
      conn.start(next);
      return;
    }
    if (this.closing !== null) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
  }

  dropped(conn: HttpConnection): void {
    if (!this.conns.delete(conn)) return;
    const i = this.idle.lastIndexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
    // Room for a waiting request: on a new connection.
    const next = this.queue.shift();
    if (next !== undefined) this.send(next, true);
    if (this.closed !== null && this.conns.size === 0) this.closed();
  }

  /** Lets what is in flight finish, then closes every connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.closed = resolve;
      for (const c of [...this.idle]) c.destroy();
      if (this.conns.size === 0) resolve();
    });
    return this.closing;
  }

  /** Closes every connection now; their exchanges, and the queued ones, fail as 'shutdown'. */
  destroy(): void {
    const error = new Error('upstream client destroyed');
    for (const ex of this.queue.splice(0)) ex.onFailure({ kind: 'shutdown', error, reused: false, answered: false });
    for (const c of [...this.conns]) c.destroy(error);
  }
}
