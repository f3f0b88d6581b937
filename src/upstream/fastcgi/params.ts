/**
 * The CGI/1.1 variables (RFC 3875 §4.1) sent as FastCGI PARAMS, built from an UpstreamRequest
 * and the script the resolver picked. Pure. Every name and value is a latin1 byte string, as
 * request headers already are; strings that come from config (document root, extra params)
 * are turned into UTF-8 bytes first.
 *
 * SCRIPT_NAME is mount-aware: when the route stripped its prefix, the prefix (without its
 * trailing slash) goes back in front of the script path, so `/app/x.php` routed through
 * prefix "/app/" with strip_prefix reaches PHP as SCRIPT_NAME "/app/x.php" while
 * SCRIPT_FILENAME is "<document_root>/x.php". PHP apps then build URLs that route back here.
 */
import { bodyLength, type UpstreamRequest } from '../upstream.js';

export interface ScriptTarget {
  /** Absolute file name (byte string). */
  readonly scriptFilename: string;
  /** Script path under document_root, starting with '/' (byte string, decoded). */
  readonly scriptName: string;
  /** Decoded path after the script, '' when none. */
  readonly pathInfo: string;
}

export interface ParamsContext {
  /** Byte string, no trailing slash. */
  readonly documentRoot: string;
  /** e.g. "m2gw/0.1.0". */
  readonly serverSoftware: string;
  /** Config `params`, byte strings: override or add to everything else. */
  readonly extra: ReadonlyArray<readonly [string, string]>;
}

export type ParamList = Array<[string, string]>;

/** A JS (UTF-16) string as a latin1 byte string of its UTF-8 encoding. */
export function utf8ToByteString(s: string): string {
  // Pure ASCII is the common case and needs no conversion.
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(s) ? s : Buffer.from(s, 'utf8').toString('latin1');
}

/**
 * The part of the client's path that the route stripped, without a trailing slash: '' when
 * nothing was stripped. Known by comparing the forwarded path with the original URI's path.
 */
export function mountPrefix(req: Pick<UpstreamRequest, 'path' | 'originalUri' | 'routePrefix'>): string {
  const q = req.originalUri.indexOf('?');
  const originalPath = q === -1 ? req.originalUri : req.originalUri.slice(0, q);
  if (originalPath === req.path) return '';
  let prefix = req.routePrefix;
  while (prefix.endsWith('/')) prefix = prefix.slice(0, -1);
  return prefix;
}

/** Header names that become HTTP_* variables: letters, digits and '-' only (see below). */
const HEADER_NAME = /^[A-Za-z0-9-]+$/;
const DROPPED = new Set(['content-length', 'proxy', 'x-request-id', 'x-forwarded-proto', 'x-forwarded-host']);

/** Header name → HTTP_* name (null: dropped). Names repeat from request to request. */
const httpNames = new Map<string, string | null>();

function httpParamName(header: string): string | null {
  let name = httpNames.get(header);
  if (name === undefined) {
    name = HEADER_NAME.test(header) ? 'HTTP_' + header.toUpperCase().replace(/-/g, '_') : null;
    if (httpNames.size >= 4096) httpNames.clear();
    httpNames.set(header, name);
  }
  return name;
}

/**
 * Builds the params in the order PHP will see them. Headers whose names hold anything but
 * letters, digits and '-' are dropped: with '_' allowed, "X_Forwarded_For" and
 * "X-Forwarded-For" would both become HTTP_X_FORWARDED_FOR (nginx drops them too).
 */
export function buildParams(req: UpstreamRequest, script: ScriptTarget, ctx: ParamsContext): ParamList {
  const body = req.body;
  const params: ParamList = [
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', ctx.serverSoftware],
    ['SERVER_PROTOCOL', req.httpVersion],
    ['SERVER_NAME', req.host !== '' ? req.host : 'localhost'],
    ['SERVER_PORT', String(req.serverPort)],
    ['REQUEST_METHOD', req.method],
    ['REQUEST_URI', req.originalUri],
    ['QUERY_STRING', req.query],
    ['DOCUMENT_ROOT', ctx.documentRoot],
    ['SCRIPT_FILENAME', script.scriptFilename],
    ['SCRIPT_NAME', mountPrefix(req) + script.scriptName],
  ];
  if (script.pathInfo !== '') {
    params.push(['PATH_INFO', script.pathInfo], ['PATH_TRANSLATED', ctx.documentRoot + script.pathInfo]);
  }
  params.push(['REMOTE_ADDR', req.remoteAddr]);
  if (req.scheme === 'https') params.push(['HTTPS', 'on']);
  params.push(['REDIRECT_STATUS', '200']);

  let contentType: string | undefined;
  // Index of each HTTP_* param, to join repeated headers into one.
  let seen: Map<string, number> | null = null;
  const headers = req.headers;
  for (let i = 0; i < headers.length; i++) {
    const [name, value] = headers[i]!;
    if (name === 'content-type') {
      if (contentType === undefined) contentType = value;
      continue;
    }
    // Content-Length is ours to state (from the body we send); Proxy is httpoxy; the request
    // id is ours; X-Forwarded-Proto/-Host from a client would be spoofed (HTTPS and HTTP_HOST
    // say the same, truthfully) — the HTTP upstream drops them too.
    if (DROPPED.has(name)) continue;
    const key = httpParamName(name);
    if (key === null) continue;
    seen ??= new Map();
    const at = seen.get(key);
    if (at === undefined) {
      seen.set(key, params.length);
      params.push([key, value]);
    } else {
      const pair = params[at]!;
      pair[1] += (name === 'cookie' ? '; ' : ', ') + value;
    }
  }
  if (req.id !== '') params.push(['HTTP_X_REQUEST_ID', req.id]);
  if (contentType !== undefined) params.push(['CONTENT_TYPE', contentType]);
  // A chunked streamed body has no length to state (FastCGI upstreams refuse those with 411).
  const length = body === null ? null : bodyLength(body);
  if (length !== null) params.push(['CONTENT_LENGTH', String(length)]);

  for (const [name, value] of ctx.extra) {
    const i = params.findIndex((p) => p[0] === name);
    if (i === -1) params.push([name, value]);
    else params[i] = [name, value];
  }
  return params;
}
