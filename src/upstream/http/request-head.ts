/**
 * What m2gw tells an HTTP upstream about a request: the client's headers (the gateway already
 * removed hop-by-hop ones and anything claiming to be a proxy's), the Host, and the
 * X-Forwarded-* set and X-Request-Id rebuilt from what Mongrel2 saw. One list for both
 * clients (undici's and the direct one), so both say the same.
 *
 * `directRequestHead` serialises it for the direct client (connection.ts), and with that takes
 * over the checks undici's Request makes: a method that is a token, a target of visible
 * characters only, header names that are tokens and values without CR, LF, NUL or other
 * controls. Everything here came from Mongrel2, which is untrusted: a CR LF in any of it would
 * let a client write a second request into the upstream connection (request smuggling), so a
 * request that fails a check is refused with a 400, never repaired.
 */
import type { UpstreamRequest } from '../upstream.js';
import { memoizedTest, TOKEN } from './tokens.js';

export interface ServerAddress {
  /** Path prefix of the configured URL, without trailing slash ('' for none). */
  readonly basePath: string;
  /** host[:port] of the configured URL, for the Host header. */
  readonly hostHeader: string;
}

/** Calls `add` for each header the upstream gets (besides framing: Content-Length). */
export function forwardedHeaders(req: UpstreamRequest, server: ServerAddress, add: (name: string, value: string) => void): void {
  // Host first, as RFC 9112 §3.2 asks of a client: the client's own (every one of them, so a
  // second one is still seen and refused) with preserve_host, else the configured server's.
  if (req.preserveHost && req.hostHeader !== '') {
    for (const [name, value] of req.headers) if (name === 'host') add(name, value);
  } else {
    add('host', server.hostHeader);
  }
  for (const [name, value] of req.headers) {
    if (name === 'host' || name === 'x-request-id' || name === 'x-forwarded-proto' || name === 'x-forwarded-host') continue;
    add(name, value);
  }
  if (req.remoteAddr !== '') add('x-forwarded-for', req.remoteAddr);
  add('x-forwarded-proto', req.scheme);
  if (req.hostHeader !== '') add('x-forwarded-host', req.hostHeader);
  add('x-request-id', req.id);
}

/** The target as sent: the server's base path, the request's path and its query. */
export function requestTarget(req: UpstreamRequest, server: ServerAddress): string {
  return server.basePath + req.path + (req.hasQuery ? '?' + req.query : '');
}

/** RFC 9110 §9.3: methods whose requests carry content, so an empty one is sent as `Content-Length: 0` (as undici does). */
const EXPECTS_CONTENT = new Set(['POST', 'PUT', 'PATCH', 'QUERY', 'PROPFIND', 'PROPPATCH']);

// A client header name as Mongrel2 passes it: a token, lower-cased. One with a capital in it
// did not come from Mongrel2's parser, and would slip past the gateway's lower-case drop list
// (`transfer-Encoding: chunked` beside our Content-Length is request smuggling).
const LOWER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// A field value: any visible or obs-text byte, space and HTAB; nothing else (RFC 9110 §5.5).
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
// A request target: visible characters and obs-text (what undici allows too).
const BAD_TARGET = /[^\x21-\xff]/;

/** A request header name is a lower-case token (memoized: names repeat across requests). */
const validName = memoizedTest(LOWER_TOKEN);

export type HeadResult = { readonly ok: true; readonly head: string } | { readonly ok: false; readonly problem: string };

/** The request head for the direct client, ending in the blank line; a problem when a check fails. */
export function directRequestHead(req: UpstreamRequest, server: ServerAddress, bodyLength: number): HeadResult {
  if (!TOKEN.test(req.method)) return { ok: false, problem: 'invalid request method' };
  // CONNECT asks for a tunnel, which this client does not make (nor does undici without an upgrade).
  if (req.method === 'CONNECT') return { ok: false, problem: 'CONNECT is not forwarded' };
  const target = requestTarget(req, server);
  if (BAD_TARGET.test(target)) return { ok: false, problem: 'invalid request target' };
  let head = req.method + ' ' + target + ' HTTP/1.1\r\n';
  let problem: string | null = null;
  let hosts = 0;
  forwardedHeaders(req, server, (name, value) => {
    if (!validName(name)) problem ??= `invalid header name ${JSON.stringify(name.slice(0, 40))}`;
    else if (BAD_VALUE.test(value)) problem ??= `invalid value in header ${JSON.stringify(name)}`;
    // Two Hosts (kept with preserve_host) would let the upstream pick another one than we
    // routed by; RFC 9112 §3.2 makes that a 400, as undici's refusal does on its path.
    else if (name === 'host' && ++hosts > 1) problem ??= 'more than one Host header';
    head += name + ': ' + value + '\r\n';
  });
  if (problem !== null) return { ok: false, problem };
  if (bodyLength > 0 || EXPECTS_CONTENT.has(req.method)) head += 'content-length: ' + bodyLength + '\r\n';
  return { ok: true, head: head + '\r\n' };
}

/** The same list as name/value pairs, for undici. */
export function headerPairs(req: UpstreamRequest, server: ServerAddress): string[] {
  const out: string[] = [];
  forwardedHeaders(req, server, (name, value) => out.push(name, value));
  return out;
}
