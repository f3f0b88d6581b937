/**
 * The state of one FastCGI request on its way through the pool and a connection, and who may
 * change what. One object per party, each written by its owner only:
 *
 * - FcgiRequest / PoolRequest: the FastCGI upstream's Exchange (fastcgi-upstream.ts). Its
 *   inputs are fixed when it is made; its response state (the CGI parser, whether the head
 *   reached the sink, stderr) is private to it. The connection rewrites only the record id
 *   inside `head` before writing it.
 * - PoolJob (pool.ts): FcgiPool alone writes its fields (attempts, where it is written, retry
 *   on a new connection, cancelled). The Exchange holds it to pause, resume and cancel.
 * - A connection's Slot (connection.ts): the record id, whether PHP answered (some record
 *   came back: the first-byte clock stops, a retry would no longer be silent), whether it went
 *   onto a reused connection, when it was written. Private to FcgiConnection, which is generic
 *   over the pool's job type and reports these in `Unfinished` when it closes.
 *
 * "answered" (a FastCGI record arrived) is not "the response started" (the Exchange parsed the
 * CGI head and gave it to the sink): PHP may send stderr or a partial head first.
 */
import type { UpstreamError } from '../../errors.js';
import type { RequestBody } from '../upstream.js';

/** One request's records and where PHP's answer goes (the FastCGI upstream's Exchange). */
export interface FcgiRequest {
  /** BEGIN_REQUEST + PARAMS (+ STDIN unless the body is sent separately), encoded for record id 1. */
  readonly head: Buffer;
  /** Body to send after `head`; null when `head` already ends STDIN. */
  readonly separateBody: RequestBody | null;
  onStdout(data: Buffer): void;
  onStderr(data: Buffer): void;
  onEnd(appStatus: number, protocolStatus: number): void;
}

/** What the connection needs of its owner's job: the request it carries. */
export interface ConnectionJob {
  readonly request: FcgiRequest;
}

/** A job still on the connection when it closed: why, and what the connection saw of it. */
export interface Unfinished<J> {
  readonly job: J;
  readonly error: UpstreamError;
  /** Some record for it arrived. */
  readonly answered: boolean;
  /** It was written onto a connection that had served a request or was carrying another. */
  readonly reusedConnection: boolean;
}

/** What the pool needs besides: the method for the retry rule, and where its own failures go. */
export interface PoolRequest extends FcgiRequest {
  readonly method: string;
  /** The pool gives up on the request; called at most once, never after onEnd. */
  onFail(err: UpstreamError): void;
}

/** What the connection saw of its own end. */
export interface CloseInfo {
  /** False when the socket never connected: nothing of any job was sent. */
  readonly wasConnected: boolean;
  /** PHP-FPM closed cleanly right after answering a request (RECYCLE_WINDOW_MS in connection.ts). */
  readonly recycledByPeer: boolean;
}
