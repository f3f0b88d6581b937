/**
 * The request-lifecycle policy both upstreams consult: which methods are idempotent and
 * whether a failed attempt may be made again. What each failure is (code, status, body,
 * the phases it can happen in) is the catalogue's, in errors.ts.
 *
 * The retry rule, the same for HTTP and FastCGI:
 * - nothing of the request reached the upstream (phase 'connect': it refused, or did not
 *   answer the connect in time): retried, whatever the method;
 * - the request was written but the connection reset before any byte came back, on a
 *   connection that was reused (kept alive, or pipelined behind another request): the upstream
 *   may have closed it just as we wrote (a keep-alive race). Retried if the method is
 *   idempotent, or if the upstream shows it closed without reading the request (FastCGI:
 *   PHP-FPM recycled its child right after answering the previous request);
 * - anything else (a timeout after sending, any response byte, a protocol error): never,
 *   the upstream may have acted on the request;
 * - and never once a streamed upload's body was read: it is gone.
 * Each upstream retries at most `retries` times (config, default 1) and decides where: HTTP on
 * another server, FastCGI on a new connection.
 */
import type { M2gwError } from '../errors.js';

/** RFC 9110 §9.2.2. */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** What an upstream knows about an attempt that failed. */
export interface FailedAttempt {
  readonly method: string;
  /** Its phase says how much of the request may have reached the upstream. */
  readonly error: M2gwError;
  /** Attempts made so far, this one included. */
  readonly attempts: number;
  /** The upstream's `retries` setting. */
  readonly retries: number;
  /** Some byte of the response came back. */
  readonly answered: boolean;
  /** The request went onto a reused or pipelined connection (a keep-alive race is possible). */
  readonly reusedConnection: boolean;
  /** The upstream's own evidence that it closed without reading the request. */
  readonly closedUnread: boolean;
  /** The body is a streamed upload (BodyStream) that was read from: it cannot be sent again. */
  readonly bodyConsumed?: boolean;
}

export function mayRetry(a: FailedAttempt): boolean {
  if (a.attempts > a.retries || a.bodyConsumed === true) return false;
  const code = a.error.code;
  if (a.error.phase === 'connect') return code === 'M2GW_UPSTREAM_CONNECT' || code === 'M2GW_UPSTREAM_TIMEOUT';
  if (a.error.phase !== 'request-sent' || code !== 'M2GW_UPSTREAM_RESET' || a.answered || !a.reusedConnection) return false;
  return IDEMPOTENT_METHODS.has(a.method) || a.closedUnread;
}
