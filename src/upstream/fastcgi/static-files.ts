/**
 * Serves a file from document_root through a ResponseSink: validators (ETag, Last-Modified),
 * conditional GET (304), one byte range (206/416), HEAD, and a read stream that follows the
 * sink's pause/resume. Only GET and HEAD (405 otherwise).
 */
import fs from 'node:fs';
import { ClientGoneError, M2gwError, UpstreamError } from '../../errors.js';
import type { HeaderList, ResponseController, ResponseSink, UpstreamRequest } from '../upstream.js';

const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  json: 'application/json',
  map: 'application/json',
  svg: 'image/svg+xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  ico: 'image/x-icon',
  woff: 'font/woff',
  woff2: 'font/woff2',
  ttf: 'font/ttf',
  txt: 'text/plain; charset=utf-8',
  xml: 'application/xml',
  pdf: 'application/pdf',
  wasm: 'application/wasm',
};

export function contentTypeFor(file: string): string {
  const slash = file.lastIndexOf('/');
  const dot = file.lastIndexOf('.');
  if (dot <= slash + 1) return 'application/octet-stream';
  return TYPES[file.slice(dot + 1).toLowerCase()] ?? 'application/octet-stream';
}

export function etagFor(st: Pick<fs.Stats, 'size' | 'mtimeMs'>): string {
  return `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
}

/**
 * If-None-Match against our (weak) ETag: weak comparison, `*` matches. A scanner over the
 * client's list: one pass, no substring per entry (a 4 MiB list of tags made that GC-bound).
 */
export function etagMatches(ifNoneMatch: string, etag: string): boolean {
  const ours = etag.startsWith('W/') ? etag.slice(2) : etag;
  const s = ifNoneMatch;
  let i = 0;
  while (i <= s.length) {
    let comma = s.indexOf(',', i);
    if (comma === -1) comma = s.length;
    let a = i;
    let b = comma;
    while (a < b && isTrimmable(s.charCodeAt(a))) a++;
    while (b > a && isTrimmable(s.charCodeAt(b - 1))) b--;
    if (b - a === 1 && s.charCodeAt(a) === 0x2a /* * */) return true;
    if (s.startsWith('W/', a)) a += 2;
    if (b - a === ours.length && s.startsWith(ours, a)) return true;
    i = comma + 1;
  }
  return false;
}

/** What String.prototype.trim removes among latin1 chars (the former trim() semantics). */
function isTrimmable(c: number): boolean {
  return (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0xa0 || c === 0xfeff || c === 0x2028 || c === 0x2029 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x202f || c === 0x205f || c === 0x3000;
}

export type RangeResult =
  | { kind: 'full' }
  | { kind: 'partial'; start: number; end: number }
  | { kind: 'unsatisfiable' };

/**
 * One `bytes=` range against a file of `size` bytes (RFC 9110 §14.1.2). Anything we do not
 * serve as a range (several ranges, other units, malformed) is a full response, as allowed.
 *
 * A scanner, not a regex: the header is the client's, and a pattern with adjacent `\s*`/`\d*`
 * backtracks quadratically (256 KiB of spaces after `bytes=` took minutes). Each char is looked
 * at once. Whitespace is RFC 9110's OWS (SP / HTAB) only.
 */
export function parseRange(header: string, size: number): RangeResult {
  const n = header.length;
  let i = skipOws(header, 0);
  if (!startsWithAsciiCaseless(header, i, 'bytes')) return { kind: 'full' };
  i = skipOws(header, i + 5);
  if (header.charCodeAt(i) !== 0x3d /* = */) return { kind: 'full' };
  i = skipOws(header, i + 1);
  const aStart = i;
  i = skipDigits(header, i);
  const a = header.slice(aStart, i);
  i = skipOws(header, i);
  if (header.charCodeAt(i) !== 0x2d /* - */) return { kind: 'full' };
  i = skipOws(header, i + 1);
  const bStart = i;
  i = skipDigits(header, i);
  const b = header.slice(bStart, i);
  if (skipOws(header, i) !== n) return { kind: 'full' };
  if (a === '' && b === '') return { kind: 'full' };
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  let end = b === '' ? size - 1 : Number(b);
  if (b !== '' && end < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  if (end >= size) end = size - 1;
  return { kind: 'partial', start, end };
}

function skipOws(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x09) break;
    i++;
  }
  return i;
}

function skipDigits(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    i++;
  }
  return i;
}

/** `word` is lower-case ASCII letters. */
function startsWithAsciiCaseless(s: string, at: number, word: string): boolean {
  if (at + word.length > s.length) return false;
  for (let j = 0; j < word.length; j++) {
    if ((s.charCodeAt(at + j) | 0x20) !== word.charCodeAt(j)) return false;
  }
  return true;
}

function header(req: UpstreamRequest, name: string): string | undefined {
  for (const [n, v] of req.headers) if (n === name) return v;
  return undefined;
}

const NOOP_CTL: ResponseController = { pause() {}, resume() {} };

/** Serves `file` (a latin1 byte string path). Reports through the sink only; never throws. */
export function serveStaticFile(req: UpstreamRequest, file: string, sink: ResponseSink): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sink.onResponseStart(NOOP_CTL, 405, [
      ['allow', 'GET, HEAD'],
      ['content-length', '0'],
    ]);
    sink.onResponseEnd(NOOP_CTL);
    return;
  }
  fs.open(Buffer.from(file, 'latin1'), 'r', (err, fd) => {
    if (err !== null) {
      sink.onResponseError(new M2gwError('M2GW_NOT_FOUND', `cannot open static file: ${err.code ?? err.message}`, 'route'));
      return;
    }
    fs.fstat(fd, (err2, st) => {
      if (err2 !== null || !st.isFile()) {
        fs.close(fd, () => {});
        sink.onResponseError(new M2gwError('M2GW_NOT_FOUND', 'static file is not a regular file', 'route'));
        return;
      }
      if (req.signal.aborted) {
        fs.close(fd, () => {});
        sink.onResponseError(new ClientGoneError('connect'));
        return;
      }
      respond(req, fd, st, file, sink);
    });
  });
}

function respond(req: UpstreamRequest, fd: number, st: fs.Stats, file: string, sink: ResponseSink): void {
  const etag = etagFor(st);
  const lastModified = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString();
  const validators: HeaderList = [
    ['etag', etag],
    ['last-modified', lastModified],
  ];

  if (notModified(req, etag, st.mtimeMs)) {
    fs.close(fd, () => {});
    sink.onResponseStart(NOOP_CTL, 304, validators);
    sink.onResponseEnd(NOOP_CTL);
    return;
  }

  let range: RangeResult = { kind: 'full' };
  const rangeHeader = req.method === 'GET' ? header(req, 'range') : undefined;
  if (rangeHeader !== undefined && ifRangeAllows(header(req, 'if-range'), lastModified)) {
    range = parseRange(rangeHeader, st.size);
  }
  if (range.kind === 'unsatisfiable') {
    fs.close(fd, () => {});
    sink.onResponseStart(NOOP_CTL, 416, [
      ['content-range', `bytes */${st.size}`],
      ['content-length', '0'],
      ...validators,
    ]);
    sink.onResponseEnd(NOOP_CTL);
    return;
  }
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : st.size - 1;
  const length = end - start + 1;
  const headers: HeaderList = [
    ['content-type', contentTypeFor(file)],
    ['content-length', String(length)],
    ['accept-ranges', 'bytes'],
    ...validators,
  ];
  if (range.kind === 'partial') headers.push(['content-range', `bytes ${start}-${end}/${st.size}`]);
  const status = range.kind === 'partial' ? 206 : 200;

  if (req.method === 'HEAD' || length === 0) {
    fs.close(fd, () => {});
    sink.onResponseStart(NOOP_CTL, status, headers);
    sink.onResponseEnd(NOOP_CTL);
    return;
  }
  stream(req, fd, start, end, length, status, headers, sink);
}

function stream(
  req: UpstreamRequest,
  fd: number,
  start: number,
  end: number,
  length: number,
  status: number,
  headers: HeaderList,
  sink: ResponseSink,
): void {
  const rs = fs.createReadStream('', { fd, start, end, highWaterMark: 64 * 1024, autoClose: true });
  let sent = 0;
  let finished = false;
  const finish = (err: M2gwError | null): void => {
    if (finished) return;
    finished = true;
    req.signal.removeEventListener('abort', onAbort);
    if (err === null) sink.onResponseEnd(ctl);
    else sink.onResponseError(err);
  };
  const ctl: ResponseController = {
    pause: () => rs.pause(),
    resume: () => {
      if (!finished) rs.resume();
    },
  };
  const onAbort = (): void => {
    rs.destroy();
    finish(new ClientGoneError('headers-sent'));
  };
  req.signal.addEventListener('abort', onAbort, { once: true });
  sink.onResponseStart(ctl, status, headers);
  rs.on('data', (chunk: Buffer | string) => {
    if (finished) return;
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    sent += buf.length;
    sink.onResponseData(ctl, buf);
  });
  rs.on('end', () => {
    if (sent !== length) {
      // The file shrank after fstat: the head promised more than exists.
      finish(new UpstreamError('M2GW_INTERNAL', `static file changed while sent (${sent}/${length} bytes)`, 'headers-sent'));
    } else {
      finish(null);
    }
  });
  rs.on('error', (err) => {
    finish(new UpstreamError('M2GW_INTERNAL', `reading static file: ${err.message}`, 'headers-sent', { cause: err }));
  });
}

function notModified(req: UpstreamRequest, etag: string, mtimeMs: number): boolean {
  const inm = header(req, 'if-none-match');
  if (inm !== undefined) return etagMatches(inm, etag);
  const ims = header(req, 'if-modified-since');
  if (ims === undefined) return false;
  const t = Date.parse(ims);
  return !Number.isNaN(t) && Math.floor(mtimeMs / 1000) * 1000 <= t;
}

/** If-Range: our ETag is weak, which never matches; a date must equal Last-Modified. */
function ifRangeAllows(ifRange: string | undefined, lastModified: string): boolean {
  if (ifRange === undefined) return true;
  const v = ifRange.trim();
  if (v.startsWith('"') || v.startsWith('W/')) return false;
  return v === lastModified;
}
