/**
 * One catalogue of the errors m2gw raises. Every error carries a stable code and the
 * phase it happened in, fixed when it is created; the catalogue gives each code its HTTP
 * status, the body a client sees, and the phases it can happen in, in one place.
 * When to retry is decided in upstream/lifecycle.ts, on these codes and phases.
 */

/**
 * Where in a request's life an error happened (nginx's request_sent / header_sent):
 * - 'route': refused before anything was sent, by the gateway or by an upstream's own routing
 *   (FastCGI script resolution);
 * - 'connect': nothing of the request reached the upstream: always safe to retry;
 * - 'request-sent': the upstream may have seen the request, no response byte yet;
 * - 'headers-sent': the response head already went to the client: only closing is left.
 */
export type Phase = 'route' | 'connect' | 'request-sent' | 'headers-sent';

interface Entry {
  readonly status: number;
  /** What the client reads (the status line says the rest). */
  readonly body: string;
  readonly phases: readonly Phase[];
}

const BAD_REQUEST = 'Bad Request\n';
const BAD_GATEWAY = 'Bad Gateway\n';
const UNAVAILABLE = 'Service Unavailable\n';
const INTERNAL = 'Internal Server Error\n';
/** Anything that may still go wrong once an upstream was chosen, up to the last body byte. */
const IN_UPSTREAM = ['connect', 'request-sent', 'headers-sent'] as const;
const AFTER_SEND = ['request-sent', 'headers-sent'] as const;

const CATALOGUE = {
  // A Mongrel2 message that could not be parsed: logged and dropped, never answered.
  M2GW_BAD_FRAME: { status: 400, body: BAD_REQUEST, phases: ['route'] },
  // Refused by the gateway, or by the FastCGI upstream (a path it will not resolve, params too large).
  M2GW_BAD_REQUEST: { status: 400, body: BAD_REQUEST, phases: ['route'] },
  M2GW_NO_ROUTE: { status: 404, body: 'Not Found\n', phases: ['route'] },
  // The FastCGI upstream's own routing (script or static file missing, path denied).
  M2GW_NOT_FOUND: { status: 404, body: 'Not Found\n', phases: ['route'] },
  M2GW_FORBIDDEN: { status: 403, body: 'Forbidden\n', phases: ['route'] },
  M2GW_BODY_TOO_LARGE: { status: 413, body: 'Payload Too Large\n', phases: ['route'] },
  // A chunked streamed upload to FastCGI, which must state CONTENT_LENGTH up front.
  M2GW_LENGTH_REQUIRED: { status: 411, body: 'Length Required\n', phases: ['route'] },
  // Too much in flight in the gateway (route), or no FastCGI connection free in time (connect).
  M2GW_SATURATED: { status: 503, body: UNAVAILABLE, phases: ['route', 'connect'] },
  M2GW_UPSTREAM_CONNECT: { status: 502, body: BAD_GATEWAY, phases: ['connect'] },
  M2GW_UPSTREAM_RESET: { status: 502, body: BAD_GATEWAY, phases: AFTER_SEND },
  M2GW_UPSTREAM_TIMEOUT: { status: 504, body: 'Gateway Timeout\n', phases: IN_UPSTREAM },
  M2GW_UPSTREAM_PROTOCOL: { status: 502, body: BAD_GATEWAY, phases: AFTER_SEND },
  M2GW_UPSTREAM_OVERLOADED: { status: 503, body: UNAVAILABLE, phases: AFTER_SEND },
  // 499 is nginx's "client closed request": never sent, only logged.
  M2GW_CLIENT_GONE: { status: 499, body: '', phases: IN_UPSTREAM },
  // Only raised once a WebSocket is open, where it becomes a close code, not a status.
  M2GW_WEBSOCKET_PROTOCOL: { status: 400, body: BAD_REQUEST, phases: ['headers-sent'] },
  M2GW_SHUTTING_DOWN: { status: 503, body: UNAVAILABLE, phases: ['route', ...IN_UPSTREAM] },
  // Not a request's error: the config, read before any request.
  M2GW_CONFIG: { status: 500, body: INTERNAL, phases: ['route'] },
  M2GW_INTERNAL: { status: 500, body: INTERNAL, phases: ['route', ...IN_UPSTREAM] },
} as const satisfies Record<string, Entry>;

export type ErrorCode = keyof typeof CATALOGUE;

/** The phases an error with code C can be created in (checked by the compiler at every `new`). */
export type PhaseOf<C extends ErrorCode> = (typeof CATALOGUE)[C]['phases'][number];

export const ERROR_CODES = Object.keys(CATALOGUE) as readonly ErrorCode[];

export class M2gwError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly phase: Phase;

  constructor(code: C, message: string, phase: PhaseOf<C>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'M2gwError';
    this.code = code;
    this.phase = phase;
  }
}

/** A Mongrel2 message that could not be parsed. Logged and dropped, never fatal. */
export class FrameError extends M2gwError<'M2GW_BAD_FRAME'> {
  constructor(message: string) {
    super('M2GW_BAD_FRAME', message, 'route');
    this.name = 'FrameError';
  }
}

/** A failure an upstream reports to its sink. */
export class UpstreamError<C extends ErrorCode = ErrorCode> extends M2gwError<C> {
  constructor(code: C, message: string, phase: PhaseOf<C>, options?: { cause?: unknown }) {
    super(code, message, phase, options);
    this.name = 'UpstreamError';
  }
}

/** The client disconnected (or the gateway gave up on it): the same error wherever it is noticed. */
export class ClientGoneError extends M2gwError<'M2GW_CLIENT_GONE'> {
  constructor(phase: PhaseOf<'M2GW_CLIENT_GONE'>, message = 'client went away', options?: { cause?: unknown }) {
    super('M2GW_CLIENT_GONE', message, phase, options);
    this.name = 'ClientGoneError';
  }
}

/** A WebSocket peer broke RFC 6455; `closeCode` is what the connection is closed with. */
export class WebSocketProtocolError extends M2gwError<'M2GW_WEBSOCKET_PROTOCOL'> {
  readonly closeCode: number;
  constructor(closeCode: number, message: string) {
    super('M2GW_WEBSOCKET_PROTOCOL', message, 'headers-sent');
    this.name = 'WebSocketProtocolError';
    this.closeCode = closeCode;
  }
}

/**
 * The same failure seen later in the request's life: once the response head went out, every
 * error is a 'headers-sent' one whatever its source thought. A new error (the original is
 * its cause), so an error shared by several requests keeps the phase it was created with.
 */
export function inPhase(err: M2gwError, phase: Phase): M2gwError {
  if (err.phase === phase) return err;
  const copy = new M2gwError<ErrorCode>(err.code, err.message, phase, { cause: err });
  copy.name = err.name;
  return copy;
}

/** Config problems carry every issue found, each with its key and line. */
export interface ConfigProblem {
  key: string;
  line?: number;
  message: string;
  severity?: 'error' | 'warning';
}

export class ConfigError extends M2gwError<'M2GW_CONFIG'> {
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, problems: readonly ConfigProblem[]) {
    super('M2GW_CONFIG', `${problems.length} problem(s) in ${file}:\n${formatProblems(file, problems)}`, 'route');
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** The one way a config problem is shown, compiler style: `gw.toml:12: upstream.php.pipeline: must be …`. */
export function formatProblem(file: string, p: ConfigProblem): string {
  const where = p.line === undefined ? file : `${file}:${p.line}`;
  const tag = p.severity === 'warning' ? 'warning: ' : '';
  return `${where}: ${tag}${p.key}: ${p.message}`;
}

/** One line per problem. */
export function formatProblems(file: string, problems: readonly ConfigProblem[]): string {
  return problems.map((p) => formatProblem(file, p)).join('\n');
}

/** The one place errors become HTTP status codes. */
export function statusFor(err: unknown): number {
  if (!(err instanceof M2gwError)) return 500;
  const known: M2gwError = err;
  return statusOf(known.code);
}

export function statusOf(code: ErrorCode): number {
  return CATALOGUE[code].status;
}

/** The body a client gets for an error ('' for one never answered). */
export function bodyFor(code: ErrorCode): string {
  return CATALOGUE[code].body;
}

/** Status, body and phases of one code (the catalogue test reads every one). */
export function describeCode(code: ErrorCode): { readonly status: number; readonly body: string; readonly phases: readonly Phase[] } {
  return CATALOGUE[code];
}

/** Turn anything thrown into an M2gwError, keeping the original as cause. The caller says when it happened. */
export function asM2gwError(err: unknown, phase: PhaseOf<'M2GW_INTERNAL'>): M2gwError {
  if (err instanceof M2gwError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new M2gwError('M2GW_INTERNAL', message, phase, { cause: err });
}
