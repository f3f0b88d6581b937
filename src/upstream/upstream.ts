/**
 * The one contract every upstream (HTTP, FastCGI) implements. The gateway never
 * branches on protocol: it builds an UpstreamRequest, hands it to `forward`, and
 * receives the response through a ResponseSink shaped like undici's dispatch handler.
 */
import type { Duplex } from 'node:stream';
import { asM2gwError, type M2gwError } from '../errors.js';

/** Header name/value pairs, in order; a repeated header appears once per value. */
export type HeaderList = Array<[name: string, value: string]>;

/**
 * A request body. Inline bodies are Buffers; async uploads are Mongrel2 temp files,
 * kept as a path so an upstream can reopen it for a retry that sent nothing; streamed
 * uploads (Mongrel2's upload.stream) are a BodyStream, readable once.
 */
export type RequestBody =
  | { readonly kind: 'buffer'; readonly data: Buffer }
  | { readonly kind: 'file'; readonly path: string; readonly length: number }
  | { readonly kind: 'stream'; readonly stream: BodyStream };

/**
 * A request body still arriving from the client. Promises to the upstream:
 * - `read()` resolves with the next piece (never empty), or null once the body is
 *   complete: exactly `length` bytes when that is known.
 * - It rejects with an M2gwError when the body cannot complete (client gone, over the
 *   route's max_body); the request is then being answered or aborted by the gateway,
 *   and the upstream only has to stop.
 * - One read at a time. Reading is what lets the client send more: the gateway grants
 *   Mongrel2 upload credits as pieces are taken, so an upstream that stops reading holds
 *   the client back and memory stays bounded.
 * - It cannot be replayed: an upstream must not retry a request once it called read().
 * The upstream's promises in return: read only as fast as it can pass bytes on (wait for
 * its socket to drain), and call `cancel()` if it gives up on the body before its end.
 */
export interface BodyStream {
  /** Content-Length when the client sent one; null for a chunked body. */
  readonly length: number | null;
  /** True once read() was called: the body can no longer be sent elsewhere. */
  readonly started: boolean;
  read(): Promise<Buffer | null>;
  /** The upstream will read no more (it answered early or failed). Idempotent. */
  cancel(): void;
}

/** A body's length when known up front (null: a chunked streamed body). */
export function bodyLength(body: RequestBody): number | null {
  switch (body.kind) {
    case 'buffer':
      return body.data.length;
    case 'file':
      return body.length;
    case 'stream':
      return body.stream.length;
  }
}

/**
 * The part of AbortSignal upstreams use. The gateway passes a RequestAbort (below):
 * creating an AbortController per request cost ~2 µs, a fifth of the gateway's own time.
 * A real AbortSignal fits too (tests use one).
 */
export interface RequestSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A minimal, allocation-light abort signal: listeners run once, in order. */
export class RequestAbort implements RequestSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | null = null;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (!this.listeners) return;
    const i = this.listeners.indexOf(listener);
    if (i !== -1) this.listeners.splice(i, 1);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = null;
    if (listeners) for (const l of listeners) l();
  }
}

export interface UpstreamRequest {
  /** Request id (also sent as X-Request-Id). */
  readonly id: string;
  readonly method: string;
  /** Path as forwarded (after strip_prefix), raw, without query. Always starts with '/'. */
  readonly path: string;
  /** Raw query string without '?', or '' when the client sent none. */
  readonly query: string;
  /** The client sent a '?' (possibly with an empty query). */
  readonly hasQuery: boolean;
  /** The URI exactly as the client sent it (path + '?' + query), before strip_prefix. */
  readonly originalUri: string;
  /** Route prefix that matched (for SCRIPT_NAME-like needs). */
  readonly routePrefix: string;
  /** 'HTTP/1.1' or 'HTTP/1.0'. */
  readonly httpVersion: string;
  /**
   * Client request headers, names lower-cased, hop-by-hop headers already removed.
   * Repeated headers appear once per value (Mongrel2 delivers them as lists).
   */
  readonly headers: HeaderList;
  /** Host the client asked for (Host header, without port), '' when absent. */
  readonly host: string;
  /** The Host header as sent (with port), '' when absent. */
  readonly hostHeader: string;
  /** Client IP as Mongrel2 saw it (REMOTE_ADDR). */
  readonly remoteAddr: string;
  readonly scheme: 'http' | 'https';
  /** Local port of the Mongrel2 listener when known (from Host), else 80/443. */
  readonly serverPort: number;
  readonly body: RequestBody | null;
  /** Route option: keep the client's Host header when forwarding over HTTP. */
  readonly preserveHost: boolean;
  /** Aborted when the client disconnects or the gateway gives up on the request. */
  readonly signal: RequestSignal;
  /**
   * Ask the upstream to switch protocols (an HTTP/1.1 Upgrade: only 'websocket' exists).
   * A 101 then reaches the sink's onResponseUpgrade with the raw socket; any other answer
   * comes as an ordinary response. Upstreams that cannot upgrade (FastCGI) answer an error.
   */
  readonly upgrade?: 'websocket';
}

/** Given to the sink with every callback: lets it stop and restart the upstream's flow. */
export interface ResponseController {
  pause(): void;
  resume(): void;
}

/**
 * Receives one response. Calls arrive in order: onResponseStart once, onResponseData
 * zero or more times, then exactly one of onResponseEnd / onResponseError. onResponseError
 * may also come after onResponseStart (the error's phase is then 'headers-sent').
 * The sink takes ownership of every chunk it is given (it may hold it without copying).
 */
export interface ResponseSink {
  onResponseStart(ctl: ResponseController, status: number, headers: HeaderList, reason?: string): void;
  onResponseData(ctl: ResponseController, chunk: Buffer): void;
  onResponseEnd(ctl: ResponseController): void;
  onResponseError(err: M2gwError): void;
  /**
   * The upstream switched protocols (only for requests with `upgrade`): instead of
   * onResponseStart, the sink gets the 101's headers and owns the socket from now on (any
   * bytes that came after the 101's head are still readable from it). Exactly one of this,
   * onResponseStart or onResponseError is called. A sink without it never sets `upgrade`.
   */
  onResponseUpgrade?(status: number, headers: HeaderList, socket: Duplex): void;
}

export interface UpstreamHealth {
  readonly name: string;
  readonly type: 'http' | 'fastcgi';
  /** True when at least one server is usable. */
  readonly healthy: boolean;
  readonly servers: ReadonlyArray<{ address: string; healthy: boolean }>;
  readonly inFlight: number;
  readonly queued: number;
  readonly connections: { busy: number; idle: number; max: number };
}

export interface Upstream {
  readonly name: string;
  readonly type: 'http' | 'fastcgi';
  /** Never throws: every failure reaches the sink as onResponseError. */
  forward(req: UpstreamRequest, sink: ResponseSink): void;
  health(): UpstreamHealth;
  /** Stop taking requests, let in-flight ones finish, then release connections. Idempotent. */
  close(): Promise<void>;
  /** Abort everything now. Idempotent. */
  destroy(): Promise<void>;
}

/** upstream.forward(), with a throw (a broken contract) answered through the sink instead of lost. */
export function forwardTo(upstream: Upstream, req: UpstreamRequest, sink: ResponseSink): void {
  try {
    upstream.forward(req, sink);
  } catch (err) {
    sink.onResponseError(asM2gwError(err, 'connect'));
  }
}
