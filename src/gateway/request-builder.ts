/**
 * Mongrel2 request → the protocol-neutral UpstreamRequest. Mongrel2 mixes its own
 * UPPERCASE keys with the client's (lower-cased) headers and delivers repeated
 * headers as lists; this flattens that into ordered name/value pairs.
 */
import { M2gwError } from '../errors.js';
import { headerFirst, type HeaderValue, type Mongrel2Request } from '../mongrel2/request.js';
import type { HeaderList, RequestBody, RequestSignal, UpstreamRequest } from '../upstream/upstream.js';
import { dotDotSegment, upstreamPath, type Route } from './router.js';

/** Request headers that describe the client hop only, or that Mongrel2 already acted on. */
const DROP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  // Mongrel2 answered 100-continue itself; forwarding Expect would make the upstream wait.
  'expect',
  // Recomputed from the body actually forwarded (chunked uploads arrive de-chunked).
  'content-length',
  // Mongrel2 overwrote it with the client address; the HTTP upstream rebuilds X-Forwarded-*.
  'x-forwarded-for',
  // Client-made claims about proxies and addresses. m2gw (with Mongrel2) is the edge, so an app
  // that trusts its local proxy would believe them; the HTTP upstream rebuilds X-Forwarded-For,
  // -Proto and -Host from what Mongrel2 saw, and every other X-Forwarded-* is dropped below.
  // `proxy` is httpoxy (HTTP_PROXY in CGI-like environments).
  'proxy',
  'forwarded',
  'x-real-ip',
  'x-mongrel2-upload-start',
  'x-mongrel2-upload-done',
]);

export interface RequestLine {
  readonly method: string;
  readonly version: string;
  /** Raw path (Mongrel2's PATH: no query, undecoded). */
  readonly path: string;
  /** Raw query without '?', '' when none. */
  readonly query: string;
  readonly hasQuery: boolean;
  /** As the client sent it, without the fragment. */
  readonly uri: string;
  /** Host header, lower-cased, port removed. */
  readonly host: string;
  readonly hostHeader: string;
  readonly port: number | null;
  readonly scheme: 'http' | 'https';
  readonly remoteAddr: string;
  readonly keepAlive: boolean;
  readonly http10: boolean;
}

export function readRequestLine(req: Mongrel2Request): RequestLine {
  const h = req.headers;
  const method = headerFirst(h, 'METHOD') ?? 'GET';
  const version = headerFirst(h, 'VERSION') ?? 'HTTP/1.1';
  const path = req.path;
  const uri = headerFirst(h, 'URI') ?? path;
  const q = uri.indexOf('?');
  const query = q >= 0 ? uri.slice(q + 1) : '';
  const hostHeader = headerFirst(h, 'host') ?? '';
  const { host, port } = splitHost(hostHeader);
  const scheme = headerFirst(h, 'URL_SCHEME') === 'https' ? 'https' : 'http';
  const http10 = version === 'HTTP/1.0';
  const connection = (headerFirst(h, 'connection') ?? '').toLowerCase();
  const keepAlive = http10 ? hasToken(connection, 'keep-alive') : !hasToken(connection, 'close');
  return {
    method,
    version,
    path,
    query,
    hasQuery: q >= 0,
    uri,
    host,
    hostHeader,
    port,
    scheme,
    remoteAddr: headerFirst(h, 'REMOTE_ADDR') ?? '',
    keepAlive,
    http10,
  };
}

/** Client headers in order, hop-by-hop and Mongrel2's own keys removed, lists expanded. */
export function clientHeaders(headers: Readonly<Record<string, HeaderValue>>): HeaderList {
  const out: HeaderList = [];
  const connection = headerFirst(headers, 'connection');
  const named = connection ? new Set(connection.toLowerCase().split(',').map((t) => t.trim())) : null;
  for (const name in headers) {
    const c = name.charCodeAt(0);
    // Mongrel2 lower-cases client header names, so an uppercase first letter is one of its own keys.
    if (c >= 65 && c <= 90) continue;
    if (DROP.has(name) || (named !== null && named.has(name))) continue;
    // x-forwarded-port/-prefix/-ssl/-scheme/-server…: spoofable the same way (Rack, Spring and
    // others read them as the scheme or mount point when the peer is a trusted proxy).
    if (c === 120 && name.startsWith('x-forwarded-')) continue;
    const value = headers[name]!;
    if (typeof value === 'string') out.push([name, value]);
    else for (const v of value) out.push([name, v]);
  }
  return out;
}

// A field value: visible and obs-text bytes, space and HTAB; no other control (RFC 9110 §5.5).
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * The refusal (400) of a request holding a control byte, or null when it holds none. Every value Mongrel2 sent is
 * checked, its own keys (URI, PATH, REMOTE_ADDR…) included, and the path of the message: an
 * UpstreamRequest is made of them. A CR or LF would let a client write a second request into
 * an HTTP upstream connection (request smuggling); a NUL or another control byte would reach a
 * PHP script's $_SERVER as is. Mongrel2's parser lets none through, so only a hostile or broken
 * Mongrel2 sends one. The request is refused (400) for every upstream alike, never repaired.
 * The HTTP clients check what they write once more (upstream/http/request-head.ts; undici):
 * an encoder refuses what it cannot write safely, whoever made the request. ~0.25 µs a request.
 */
/** A path with a `..` segment is a 400, before routing: `/public/../admin` must not match `/public/` (router.ts, dotDotSegment). */
export function dotDotRefusal(path: string): M2gwError | null {
  return dotDotSegment(path) ? new M2gwError('M2GW_BAD_REQUEST', 'dot-dot segment in the path', 'route') : null;
}

export function controlByteRefusal(req: Mongrel2Request): M2gwError | null {
  const where = controlByteAt(req);
  return where === null ? null : new M2gwError('M2GW_BAD_REQUEST', `control character in ${where}`, 'route');
}

function controlByteAt(req: Mongrel2Request): string | null {
  if (BAD_VALUE.test(req.path)) return 'the path';
  const headers = req.headers;
  for (const name in headers) {
    const value = headers[name]!;
    if (typeof value === 'string') {
      if (BAD_VALUE.test(value)) return `header ${JSON.stringify(name.slice(0, 40))}`;
    } else {
      for (const v of value) if (BAD_VALUE.test(v)) return `header ${JSON.stringify(name.slice(0, 40))}`;
    }
  }
  return null;
}

function hasToken(list: string, token: string): boolean {
  if (list === '') return false;
  return list.split(',').some((t) => t.trim() === token);
}

function splitHost(hostHeader: string): { host: string; port: number | null } {
  if (hostHeader === '') return { host: '', port: null };
  let host = hostHeader;
  let port: number | null = null;
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    const rest = end >= 0 ? host.slice(end + 1) : '';
    if (rest.startsWith(':')) port = Number(rest.slice(1)) || null;
    host = end >= 0 ? host.slice(0, end + 1) : host;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) {
      port = Number(host.slice(colon + 1)) || null;
      host = host.slice(0, colon);
    }
  }
  return { host: host.toLowerCase(), port };
}

let counter = 0;
const prefix = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keep a sane incoming X-Request-Id (so a trace crosses proxies); otherwise mint one. */
export function requestIdFor(headers: Readonly<Record<string, HeaderValue>>): string {
  const incoming = headerFirst(headers, 'x-request-id');
  if (incoming !== undefined && SAFE_ID.test(incoming)) return incoming;
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${counter.toString(36)}`;
}

/**
 * The UpstreamRequest for a routed request, HTTP or WebSocket handshake alike, so both say the
 * same to the upstream about path, headers and client (one object literal: one hidden class).
 */
export function upstreamRequestFor(
  id: string,
  method: string,
  route: Route,
  line: RequestLine,
  headers: Readonly<Record<string, HeaderValue>>,
  body: RequestBody | null,
  signal: RequestSignal,
): UpstreamRequest {
  return {
    id,
    method,
    path: upstreamPath(route, line.path),
    query: line.query,
    hasQuery: line.hasQuery,
    originalUri: line.uri,
    routePrefix: route.prefix,
    httpVersion: line.version,
    headers: clientHeaders(headers),
    host: line.host,
    hostHeader: line.hostHeader,
    remoteAddr: line.remoteAddr,
    scheme: line.scheme,
    serverPort: line.port ?? (line.scheme === 'https' ? 443 : 80),
    body,
    preserveHost: route.preserveHost,
    signal,
  };
}
