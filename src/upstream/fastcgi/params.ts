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
import type { UpstreamRequest } from '../upstream.js';

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

/**
 * Builds the params in the order PHP will see them. Headers whose names hold anything but
 * letters, digits and '-' are dropped: with '_' allowed, "X_Forwarded_For" and
 * "X-Forwarded-For" would both become HTTP_X_FORWARDED_FOR (nginx drops them too).
 */
export function buildParams(req: UpstreamRequest, script: ScriptTarget, ctx: ParamsContext): ParamList {
  const params = new Map<string, string>();
  const body = req.body;
  params.set('GATEWAY_INTERFACE', 'CGI/1.1');
  params.set('SERVER_SOFTWARE', ctx.serverSoftware);
  params.set('SERVER_PROTOCOL', req.httpVersion);
  params.set('SERVER_NAME', req.host !== '' ? req.host : 'localhost');
  params.set('SERVER_PORT', String(req.serverPort));
  params.set('REQUEST_METHOD', req.method);
  params.set('REQUEST_URI', req.originalUri);
  params.set('QUERY_STRING', req.query);
  params.set('DOCUMENT_ROOT', ctx.documentRoot);
  params.set('SCRIPT_FILENAME', script.scriptFilename);
  params.set('SCRIPT_NAME', mountPrefix(req) + script.scriptName);
  if (script.pathInfo !== '') {
    params.set('PATH_INFO', script.pathInfo);
    params.set('PATH_TRANSLATED', ctx.documentRoot + script.pathInfo);
  }
  params.set('REMOTE_ADDR', req.remoteAddr);
  if (req.scheme === 'https') params.set('HTTPS', 'on');
  params.set('REDIRECT_STATUS', '200');

  let contentType: string | undefined;
  for (const [name, value] of req.headers) {
    if (name === 'content-type') {
      if (contentType === undefined) contentType = value;
      continue;
    }
    // Content-Length is ours to state (from the body we send); Proxy is httpoxy.
    if (name === 'content-length' || name === 'proxy') continue;
    if (!HEADER_NAME.test(name)) continue;
    const key = 'HTTP_' + name.toUpperCase().replace(/-/g, '_');
    const prev = params.get(key);
    if (prev === undefined) params.set(key, value);
    else params.set(key, prev + (name === 'cookie' ? '; ' : ', ') + value);
  }
  if (contentType !== undefined) params.set('CONTENT_TYPE', contentType);
  if (body !== null) params.set('CONTENT_LENGTH', String(body.kind === 'buffer' ? body.data.length : body.length));

  for (const [name, value] of ctx.extra) params.set(name, value);
  return [...params];
}
