/**
 * Maps a request path to what runs or is served under document_root. The decisions are pure
 * functions; the only I/O is stat/realpath through an injectable ResolverFs.
 *
 * Choices (README design notes):
 * - The path is percent-decoded once. Malformed escapes, NUL (raw or %00) and `..` segments
 *   are 400; an encoded slash (%2F) or any backslash is 404 (Apache's AllowEncodedSlashes Off).
 *   Empty and `.` segments are dropped (nginx merge_slashes).
 * - The split at the script extension is ASCII case-insensitive, at the first `.php` followed
 *   by '/' or the end: so `/X.PHP` is never served as static source on any filesystem. Only a
 *   regular file whose name ends in the extension exactly (case included) is executed;
 *   `/X.PHP` is otherwise 404, not handed to PHP.
 * - A script that does not exist is 404 without contacting PHP (or the front controller).
 * - A directory without a trailing slash that has an index gets a 301 to the slash form
 *   (nginx does the same); without an index it is treated as not found.
 * - `deny` prefixes are 403, compared ASCII case-insensitively as plain string prefixes of
 *   the decoded path and of the path the file really has (after symlinks).
 * - Files whose real path leaves document_root (symlinks out of it) are 404: the realpath
 *   check backs up the `..` refusal (nginx would need disable_symlinks for this).
 * - Paths with a dot-file or dot-directory segment (.env, .git/…) are treated as not found,
 *   except under /.well-known/: never served statically, never executed (`/.git/hook.php`), no
 *   directory redirect. A front controller, when configured, gets them like any missing path.
 * - Redirects are built from the normalised path, so `//admin` never becomes the
 *   protocol-relative `Location: //admin/` (another host).
 * - Script decisions are cached for a second (PHP's realpath cache and nginx's open_file_cache
 *   do the same): stat + realpath per request cost more than the rest of a hello-world
 *   request. A script deleted meanwhile still goes to PHP, which answers 404 itself.
 * Paths are latin1 byte strings throughout, as the request is; fs calls get Buffers.
 */
import fs from 'node:fs';
import path from 'node:path';
import { M2gwError } from '../../errors.js';
import { utf8ToByteString } from './params.js';

export interface ResolverOptions {
  /** Absolute, as configured (a JS string). */
  readonly documentRoot: string;
  readonly index: string;
  readonly frontController: string | null;
  readonly serveStatic: boolean;
  readonly deny: readonly string[];
  readonly scriptExtension: string;
}

export type Resolution =
  | { kind: 'script'; scriptFilename: string; scriptName: string; pathInfo: string }
  | { kind: 'static'; file: string; stat: fs.Stats }
  | { kind: 'redirect'; location: string }
  | { kind: 'error'; error: M2gwError };

/** File system access the resolver needs; paths are latin1 byte strings. */
export interface ResolverFs {
  /** null when the path does not exist (ENOENT, ENOTDIR, ENAMETOOLONG). */
  stat(p: string): Promise<fs.Stats | null>;
  /** The path with every symlink resolved, or null when it cannot be. */
  realpath(p: string): Promise<string | null>;
}

const MISSING = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP', 'EACCES']);

export const nodeResolverFs: ResolverFs = {
  stat(p) {
    return new Promise((resolve, reject) => {
      fs.stat(Buffer.from(p, 'latin1'), (err, st) => {
        if (err === null) resolve(st);
        else if (MISSING.has(err.code ?? '')) resolve(null);
        else reject(err);
      });
    });
  },
  realpath(p) {
    return new Promise((resolve) => {
      fs.realpath.native(Buffer.from(p, 'latin1'), { encoding: 'buffer' }, (err, real) => {
        resolve(err === null ? real.toString('latin1') : null);
      });
    });
  },
};

// ---------------------------------------------------------------------------------------------
// Pure decisions

export type DecodedPath =
  | { ok: true; path: string; trailingSlash: boolean }
  | { ok: false; error: M2gwError };

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

const badRequest = (msg: string): DecodedPath => ({ ok: false, error: new M2gwError('M2GW_BAD_REQUEST', msg, 'route') });
const notFoundPath = (msg: string): DecodedPath => ({ ok: false, error: new M2gwError('M2GW_NOT_FOUND', msg, 'route') });

/** Paths with nothing to decode or normalise (no %, backslash, NUL, //, /. or non-byte chars). */
// eslint-disable-next-line no-control-regex
const PLAIN_PATH = /^(?:\/[^/%\\\x00.\u0100-\uffff][^/%\\\x00\u0100-\uffff]*)*\/?$/;

/** Percent-decodes and normalises a raw request path (see the file comment for what is refused). */
export function decodeRequestPath(raw: string): DecodedPath {
  if (!raw.startsWith('/')) return badRequest('the path does not start with /');
  if (PLAIN_PATH.test(raw)) return { ok: true, path: raw, trailingSlash: raw.length > 1 && raw.endsWith('/') };
  let out = '';
  let runStart = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 0) return badRequest('NUL in the path');
    if (c > 0xff) return badRequest('the path is not a byte string');
    if (c === 0x5c) return notFoundPath('backslash in the path');
    if (c !== 0x25) continue;
    const hi = hexValue(raw.charCodeAt(i + 1));
    const lo = hexValue(raw.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return badRequest('malformed percent-escape in the path');
    const b = hi * 16 + lo;
    if (b === 0) return badRequest('%00 in the path');
    if (b === 0x2f) return notFoundPath('encoded slash (%2F) in the path');
    if (b === 0x5c) return notFoundPath('encoded backslash in the path');
    out += raw.slice(runStart, i) + String.fromCharCode(b);
    i += 2;
    runStart = i + 1;
  }
  const decoded = runStart === 0 ? raw : out + raw.slice(runStart);
  const segments: string[] = [];
  const parts = decoded.split('/');
  for (const seg of parts) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') return badRequest('".." in the path');
    segments.push(seg);
  }
  const last = parts[parts.length - 1];
  const trailingSlash = segments.length > 0 && (last === '' || last === '.');
  const p = '/' + segments.join('/') + (trailingSlash ? '/' : '');
  return { ok: true, path: p, trailingSlash };
}

/** ASCII-only lower-casing of one char code (latin1 letters above 0x7f stay as they are). */
function asciiLower(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

/**
 * Splits at the first occurrence of `ext` (ASCII case-insensitive) that ends a path segment:
 * script is up to and including it, pathInfo the rest ('' or starting with '/').
 */
export function splitScriptPath(p: string, ext: string): { script: string; pathInfo: string } | null {
  const e = ext.toLowerCase();
  const n = e.length;
  outer: for (let i = 1; i + n <= p.length; i++) {
    for (let j = 0; j < n; j++) {
      if (asciiLower(p.charCodeAt(i + j)) !== e.charCodeAt(j)) continue outer;
    }
    const after = i + n;
    if (after === p.length || p.charCodeAt(after) === 0x2f) {
      return { script: p.slice(0, after), pathInfo: p.slice(after) };
    }
  }
  return null;
}

/** True when `p` starts with one of the prefixes, ASCII case-insensitively. */
export function isDenied(p: string, deny: readonly string[]): boolean {
  outer: for (const d of deny) {
    if (d.length > p.length) continue;
    for (let i = 0; i < d.length; i++) {
      if (asciiLower(p.charCodeAt(i)) !== asciiLower(d.charCodeAt(i))) continue outer;
    }
    return true;
  }
  return false;
}

/** A dot-file or dot-directory anywhere in the path, /.well-known/ excepted. */
export function hasHiddenSegment(p: string): boolean {
  if (p === '/.well-known') return false;
  const rest = p.startsWith('/.well-known/') ? p.slice('/.well-known'.length) : p;
  return rest.includes('/.');
}

// ---------------------------------------------------------------------------------------------

/** How long a script decision is reused, and how many are kept. */
export const SCRIPT_CACHE_TTL_MS = 1000;
const SCRIPT_CACHE_MAX = 1024;

type ScriptResolution = Extract<Resolution, { kind: 'script' }>;

export interface ResolveInput {
  /** Raw path under document_root (after strip_prefix). */
  readonly path: string;
  /** The client's URI before strip_prefix: redirects are built from it. */
  readonly originalUri: string;
}

export class ScriptResolver {
  /** Byte string, no trailing slash. */
  readonly documentRoot: string;
  private readonly index: string;
  private readonly ext: string;
  private readonly frontController: string | null;
  private readonly deny: string[];
  private rootReal: Promise<string | null> | null = null;
  /** Decoded path → script decision, with when it expires. Insertion order = age. */
  private readonly cache = new Map<string, { r: ScriptResolution; expires: number }>();

  constructor(
    private readonly opts: ResolverOptions,
    private readonly fsx: ResolverFs = nodeResolverFs,
  ) {
    this.documentRoot = utf8ToByteString(path.resolve(opts.documentRoot)).replace(/\/+$/, '');
    this.index = utf8ToByteString(opts.index.replace(/^\/+/, ''));
    this.ext = opts.scriptExtension.startsWith('.') ? opts.scriptExtension : '.' + opts.scriptExtension;
    this.frontController =
      opts.frontController === null ? null : '/' + utf8ToByteString(opts.frontController.replace(/^\/+/, ''));
    this.deny = opts.deny.map((d) => utf8ToByteString(d.startsWith('/') ? d : '/' + d));
  }

  async resolve(input: ResolveInput): Promise<Resolution> {
    const decoded = decodeRequestPath(input.path);
    if (!decoded.ok) return { kind: 'error', error: decoded.error };
    const p = decoded.path;
    if (isDenied(p, this.deny)) return forbidden();
    const hit = this.cache.get(p);
    if (hit !== undefined) {
      if (hit.expires > Date.now()) return hit.r;
      this.cache.delete(p);
    }
    const r = await this.resolveUncached(p, decoded.trailingSlash, input);
    if (r.kind === 'script') {
      if (this.cache.size >= SCRIPT_CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(p, { r, expires: Date.now() + SCRIPT_CACHE_TTL_MS });
    }
    return r;
  }

  /** Forgets cached decisions (tests, or after a deploy). */
  clearCache(): void {
    this.cache.clear();
  }

  private async resolveUncached(p: string, trailingSlash: boolean, input: ResolveInput): Promise<Resolution> {
    const split = splitScriptPath(p, this.ext);
    if (split !== null) {
      const r = hasHiddenSegment(split.script) ? null : await this.script(split.script, split.pathInfo);
      return r ?? this.notFound();
    }
    if (hasHiddenSegment(p)) return this.notFound();

    const full = this.documentRoot + p;
    const st = await this.fsx.stat(full);
    if (st === null) return this.notFound();
    if (st.isDirectory()) return this.directory(p, trailingSlash, input);
    if (st.isFile()) {
      const r = await this.staticFile(p, st);
      if (r !== null) return r;
    }
    return this.notFound();
  }

  /** A script candidate: a regular file, right extension case, inside the root, not denied. */
  private async script(scriptName: string, pathInfo: string): Promise<Resolution | null> {
    if (!scriptName.endsWith(this.ext)) return null;
    const file = this.documentRoot + scriptName;
    const st = await this.fsx.stat(file);
    if (st === null || !st.isFile()) return null;
    const inside = await this.insideRoot(file);
    if (inside === 'denied') return forbidden();
    if (inside === 'outside') return null;
    return { kind: 'script', scriptFilename: file, scriptName, pathInfo };
  }

  private async staticFile(p: string, st: fs.Stats): Promise<Resolution | null> {
    if (!this.opts.serveStatic || hasHiddenSegment(p)) return null;
    const file = this.documentRoot + p;
    const inside = await this.insideRoot(file);
    if (inside === 'denied') return forbidden();
    if (inside === 'outside') return null;
    return { kind: 'static', file, stat: st };
  }

  private async directory(p: string, trailingSlash: boolean, input: ResolveInput): Promise<Resolution> {
    const dir = p.endsWith('/') ? p : p + '/';
    const indexPath = dir + this.index;
    const st = await this.fsx.stat(this.documentRoot + indexPath);
    if (st === null || !st.isFile()) return this.notFound();
    if (!trailingSlash && p !== '/') return { kind: 'redirect', location: slashRedirect(input.originalUri, input.path, p) };
    if (splitScriptPath(indexPath, this.ext)?.pathInfo === '') {
      return (await this.script(indexPath, '')) ?? this.notFound();
    }
    return (await this.staticFile(indexPath, st)) ?? this.notFound();
  }

  private async notFound(): Promise<Resolution> {
    if (this.frontController !== null) {
      const r = await this.script(this.frontController, '');
      if (r !== null) return r;
    }
    return { kind: 'error', error: new M2gwError('M2GW_NOT_FOUND', 'no such file', 'route') };
  }

  private async insideRoot(file: string): Promise<'inside' | 'outside' | 'denied'> {
    this.rootReal ??= this.fsx.realpath(this.documentRoot === '' ? '/' : this.documentRoot);
    let root = await this.rootReal;
    if (root === null) {
      // The root may appear later (deploys): don't cache a failure.
      this.rootReal = null;
      return 'outside';
    }
    if (root === '/') root = '';
    const real = await this.fsx.realpath(file);
    if (real === null || !real.startsWith(root + '/')) return 'outside';
    return isDenied(real.slice(root.length), this.deny) ? 'denied' : 'inside';
  }
}

function forbidden(): Resolution {
  return { kind: 'error', error: new M2gwError('M2GW_FORBIDDEN', 'path denied by configuration', 'route') };
}

/**
 * The directory's URI plus '/', query kept: relative to the host, like nginx's absolute_redirect
 * off. Built from the normalised path `normalised` (of `path`, the part of the client's URI under
 * document_root) behind the untouched route prefix, never from the client's own path text: for
 * `//admin` that text would give `Location: //admin/`, which browsers read as host `admin`.
 */
export function slashRedirect(originalUri: string, path: string, normalised: string): string {
  const q = originalUri.indexOf('?');
  const rawPath = q === -1 ? originalUri : originalUri.slice(0, q);
  const query = q === -1 ? '' : originalUri.slice(q);
  let location: string;
  if (rawPath.endsWith(path)) {
    location = rawPath.slice(0, rawPath.length - path.length) + normalised;
  } else if (path.startsWith('/') && rawPath.endsWith(path.slice(1))) {
    // strip_prefix added the leading '/' (prefix "/app" and URI "/appx" give the path "/x").
    location = rawPath.slice(0, rawPath.length - path.length + 1) + normalised.slice(1);
  } else {
    location = normalised;
  }
  // Whatever the prefix was, a Location starting with two slashes (or slash-backslash) names a host.
  let i = 0;
  while (location.charCodeAt(i) === 0x2f || location.charCodeAt(i) === 0x5c) i++;
  if (i !== 1) location = '/' + location.slice(i);
  return location + (location.endsWith('/') ? '' : '/') + query;
}
