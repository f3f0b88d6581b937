/**
 * One catalogue of the errors m2gw raises. Every error carries a stable code and
 * the phase it happened in; `statusFor` maps them to HTTP status in one place.
 */

/** Where in a request's life an error happened (nginx's request_sent / header_sent). */
export type Phase =
  | 'route' //        before any upstream was chosen
  | 'connect' //      nothing of the request reached the upstream: always safe to retry
  | 'request-sent' // the upstream may have seen the request, no response byte yet
  | 'headers-sent'; // the response head already went to the client: only closing is left

export type ErrorCode =
  | 'M2GW_BAD_FRAME'
  | 'M2GW_BAD_REQUEST'
  | 'M2GW_NO_ROUTE'
  | 'M2GW_NOT_FOUND'
  | 'M2GW_FORBIDDEN'
  | 'M2GW_BODY_TOO_LARGE'
  | 'M2GW_SATURATED'
  | 'M2GW_UPSTREAM_CONNECT'
  | 'M2GW_UPSTREAM_RESET'
  | 'M2GW_UPSTREAM_TIMEOUT'
  | 'M2GW_UPSTREAM_PROTOCOL'
  | 'M2GW_UPSTREAM_OVERLOADED'
  | 'M2GW_CLIENT_GONE'
  | 'M2GW_WEBSOCKET_PROTOCOL'
  | 'M2GW_SHUTTING_DOWN'
  | 'M2GW_CONFIG'
  | 'M2GW_INTERNAL';

const STATUS: Record<ErrorCode, number> = {
  M2GW_BAD_FRAME: 400,
  M2GW_BAD_REQUEST: 400,
  M2GW_NO_ROUTE: 404,
  M2GW_NOT_FOUND: 404,
  M2GW_FORBIDDEN: 403,
  M2GW_BODY_TOO_LARGE: 413,
  M2GW_SATURATED: 503,
  M2GW_UPSTREAM_CONNECT: 502,
  M2GW_UPSTREAM_RESET: 502,
  M2GW_UPSTREAM_TIMEOUT: 504,
  M2GW_UPSTREAM_PROTOCOL: 502,
  M2GW_UPSTREAM_OVERLOADED: 503,
  // 499 is nginx's "client closed request": never sent, only logged.
  M2GW_CLIENT_GONE: 499,
  // Only raised once a WebSocket is open, where it becomes a close code, not a status.
  M2GW_WEBSOCKET_PROTOCOL: 400,
  M2GW_SHUTTING_DOWN: 503,
  M2GW_CONFIG: 500,
  M2GW_INTERNAL: 500,
};

export class M2gwError extends Error {
  readonly code: ErrorCode;
  phase: Phase;

  constructor(code: ErrorCode, message: string, phase: Phase = 'route', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'M2gwError';
    this.code = code;
    this.phase = phase;
  }
}

/** A Mongrel2 message that could not be parsed. Logged and dropped, never fatal. */
export class FrameError extends M2gwError {
  constructor(message: string) {
    super('M2GW_BAD_FRAME', message);
    this.name = 'FrameError';
  }
}

export class UpstreamError extends M2gwError {
  constructor(code: ErrorCode, message: string, phase: Phase, options?: { cause?: unknown }) {
    super(code, message, phase, options);
    this.name = 'UpstreamError';
  }
}

/** A WebSocket peer broke RFC 6455; `closeCode` is what the connection is closed with. */
export class WebSocketProtocolError extends M2gwError {
  readonly closeCode: number;
  constructor(closeCode: number, message: string) {
    super('M2GW_WEBSOCKET_PROTOCOL', message, 'headers-sent');
    this.name = 'WebSocketProtocolError';
    this.closeCode = closeCode;
  }
}

/** Config problems carry every issue found, each with its key and line. */
export interface ConfigProblem {
  key: string;
  line?: number;
  message: string;
  severity?: 'error' | 'warning';
}

export class ConfigError extends M2gwError {
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, problems: readonly ConfigProblem[]) {
    super('M2GW_CONFIG', `${file}: ${problems.length} problem(s)\n` + problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  const where = p.line !== undefined ? `line ${p.line}: ` : '';
  return `  ${where}${p.key}: ${p.message}`;
}

/** The one place errors become HTTP status codes. */
export function statusFor(err: unknown): number {
  if (err instanceof M2gwError) return STATUS[err.code];
  return 500;
}

/** Turn anything thrown into an M2gwError, keeping the original as cause. */
export function asM2gwError(err: unknown, phase: Phase = 'route'): M2gwError {
  if (err instanceof M2gwError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new M2gwError('M2GW_INTERNAL', message, phase, { cause: err });
}
