/**
 * The head of an HTTP/1.1 response, read from bytes already gathered by ResponseParser
 * (response-parser.ts, whose comment states the rules): the status line, the header lines,
 * and from them the body's framing and whether the connection may be kept. Pure functions.
 */
import type { HeaderList } from '../upstream.js';
import { memoizedTest, TOKEN } from './tokens.js';

export { TOKEN };

/** 15 decimal digits: below 2^53. */
const MAX_LENGTH_DIGITS = 15;
const CR = 0x0d;
const LF = 0x0a;

export type Framing = 'none' | 'length' | 'chunked' | 'close';

export interface ResponseHead {
  readonly status: number;
  /** Reason phrase as sent ('' when none). */
  readonly reason: string;
  /** As received: names keep their case, repeats stay separate. */
  readonly headers: HeaderList;
  readonly framing: Framing;
  /** For framing 'length'. */
  readonly contentLength: number;
  /** The upstream lets the connection carry another request after this response. */
  readonly keepAlive: boolean;
  /** The upstream's `Keep-Alive: timeout=N`, in seconds; -1 when it gave none. */
  readonly keepAliveTimeoutS: number;
}

export class HttpResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HttpResponseError';
  }
}

// Control characters a field value or reason must not hold (HTAB is allowed), and DEL.
// eslint-disable-next-line no-control-regex
export const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
// `timeout=N` in a Keep-Alive header, as a whole parameter (a longer number or a unit is no timeout).
const KEEP_ALIVE_TIMEOUT = /(?:^|[,;\s])timeout\s*=\s*(\d{1,9})\s*(?:[,;]|$)/i;

/**
 * The head in buf[0, end) (its final CRLF included at end), or null for a skipped 1xx.
 * Read as one latin1 string: one copy out of the Buffer, then only string scans and slices,
 * which V8 inlines (a Buffer.indexOf or toString per line is a call into C++ each).
 */
export function parseResponseHead(buf: Buffer, end: number, headRequest: boolean): ResponseHead | null {
  const text = (buf as Latin1Sliceable).latin1Slice(0, end + 2);
  const limit = end + 2;
  const lf = text.indexOf('\n');
  if (lf <= 0 || text.charCodeAt(lf - 1) !== CR) throw new HttpResponseError('status line not ended by CRLF');
  const line = text.slice(0, lf - 1);
  if (line.length < 12 || !line.startsWith('HTTP/1.') || (line[7] !== '1' && line[7] !== '0') || line[8] !== ' ') {
    throw new HttpResponseError(`malformed status line ${JSON.stringify(line.slice(0, 80))}`);
  }
  const http10 = line[7] === '0';
  const d0 = line.charCodeAt(9) - 0x30;
  const d1 = line.charCodeAt(10) - 0x30;
  const d2 = line.charCodeAt(11) - 0x30;
  if (d0 < 1 || d0 > 9 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9 || (line.length > 12 && line[12] !== ' ')) {
    throw new HttpResponseError(`malformed status line ${JSON.stringify(line.slice(0, 80))}`);
  }
  const status = d0 * 100 + d1 * 10 + d2;
  const reason = line.length > 13 ? line.slice(13) : '';
  if (BAD_VALUE.test(reason)) throw new HttpResponseError('control character in the reason phrase');
  const informational = status >= 100 && status < 200 && status !== 101;

  const headers: HeaderList = [];
  let contentLength = -1;
  let chunked = false;
  let transferEncoding = false;
  let sawClose = false;
  let sawKeepAlive = false;
  let keepAliveTimeoutS = -1;
  let i = lf + 1;
  while (i < limit) {
    const next = text.indexOf('\n', i);
    if (text.charCodeAt(next - 1) !== CR) throw new HttpResponseError('header line not ended by CRLF');
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09) throw new HttpResponseError('obs-fold header continuation');
    const colon = text.indexOf(':', i);
    if (colon === -1 || colon >= next - 1 || colon === i) throw new HttpResponseError('header line without a name and colon');
    const name = text.slice(i, colon);
    if (!validName(name)) throw new HttpResponseError(`invalid header name ${JSON.stringify(name.slice(0, 80))}`);
    let vs = colon + 1;
    let ve = next - 1;
    while (vs < ve && isSpace(text.charCodeAt(vs))) vs++;
    while (ve > vs && isSpace(text.charCodeAt(ve - 1))) ve--;
    const value = text.slice(vs, ve);
    if (BAD_VALUE.test(value)) throw new HttpResponseError(`control character in header ${JSON.stringify(name.slice(0, 80))}`);
    i = next + 1;
    if (informational) continue;
    headers.push([name, value]);
    // Only the few framing headers are looked at; a length check first keeps the rest cheap.
    const len = name.length;
    if (len !== 14 && len !== 17 && len !== 10) continue;
    const lower = lowerName(name);
    if (lower === 'content-length') {
      contentLength = contentLengthOf(value, contentLength);
    } else if (lower === 'transfer-encoding') {
      if (http10) throw new HttpResponseError('Transfer-Encoding in an HTTP/1.0 response');
      transferEncoding = true;
      for (const part of value.split(',')) {
        const coding = part.trim().toLowerCase();
        if (coding === '') continue;
        if (chunked) throw new HttpResponseError('a transfer coding after chunked');
        if (coding === 'chunked') chunked = true;
      }
    } else if (lower === 'connection') {
      if (value === 'keep-alive') sawKeepAlive = true;
      else if (value === 'close') sawClose = true;
      else {
        for (const part of value.split(',')) {
          const token = part.trim().toLowerCase();
          if (token === 'close') sawClose = true;
          else if (token === 'keep-alive') sawKeepAlive = true;
        }
      }
    } else if (lower === 'keep-alive') {
      keepAliveTimeoutS = keepAliveTimeout(value);
    }
  }
  if (informational) return null;
  const close = sawClose || (http10 && !sawKeepAlive);
  if (transferEncoding && contentLength !== -1) throw new HttpResponseError('both Content-Length and Transfer-Encoding');

  let framing: Framing;
  if (headRequest || status === 204 || status === 304 || status === 101) framing = 'none';
  else if (transferEncoding) framing = chunked ? 'chunked' : 'close';
  else if (contentLength !== -1) framing = 'length';
  else framing = 'close';
  return {
    status,
    reason,
    headers,
    framing,
    contentLength: contentLength === -1 ? 0 : contentLength,
    keepAlive: !close && framing !== 'close' && status !== 101,
    keepAliveTimeoutS,
  };
}

/** Buffer's own latin1 decoder, without toString()'s argument handling (Node has it on every Buffer). */
type Latin1Sliceable = Buffer & { latin1Slice(start: number, end: number): string };

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09;

/** A response header name is a token (memoized: servers send the same few names). */
const validName = memoizedTest(TOKEN);

/** A Content-Length value (one number, or a list of the same one) with what earlier ones said; throws when they disagree. */
function contentLengthOf(value: string, before: number): number {
  let length = before;
  for (const part of value.indexOf(',') === -1 ? [value] : value.split(',')) {
    const n = decimal(part);
    if (n === -1) throw new HttpResponseError(`invalid Content-Length ${JSON.stringify(value.slice(0, 40))}`);
    if (length !== -1 && length !== n) throw new HttpResponseError('conflicting Content-Length values');
    length = n;
  }
  return length;
}

/** `timeout=N` of a Keep-Alive value in seconds, -1 without one. The common `timeout=5` without a regex. */
function keepAliveTimeout(value: string): number {
  if (value.length <= 17 && value.startsWith('timeout=')) {
    const n = decimal(value.slice(8));
    if (n !== -1 && value.length > 8 && !isSpace(value.charCodeAt(8))) return n;
  }
  const m = KEEP_ALIVE_TIMEOUT.exec(value);
  return m ? Number(m[1]) : -1;
}

/** The framing names in the cases servers send them need no lower-casing (an allocation). */
function lowerName(name: string): string {
  switch (name) {
    case 'Content-Length':
    case 'content-length':
      return 'content-length';
    case 'Connection':
    case 'connection':
      return 'connection';
    case 'Keep-Alive':
    case 'keep-alive':
      return 'keep-alive';
    case 'Transfer-Encoding':
    case 'transfer-encoding':
      return 'transfer-encoding';
    default:
      return name.toLowerCase();
  }
}

/**
 * Where the head's final CRLF starts (the index of the CR of "\r\n\r\n", so the head's
 * lines are buf[0, end) plus that CRLF), or -1. Scans from `from`.
 */
export function findBlankLine(buf: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const lf = buf.indexOf(LF, i);
    if (lf === -1) return -1;
    if (lf >= 3 && buf[lf - 1] === CR && buf[lf - 2] === LF && buf[lf - 3] === CR) return lf - 3;
    i = lf + 1;
  }
}

/** 1*DIGIT with optional surrounding spaces/tabs (a list element); -1 otherwise. */
function decimal(raw: string): number {
  let start = 0;
  let end = raw.length;
  while (start < end && (raw.charCodeAt(start) === 0x20 || raw.charCodeAt(start) === 0x09)) start++;
  while (end > start && (raw.charCodeAt(end - 1) === 0x20 || raw.charCodeAt(end - 1) === 0x09)) end--;
  if (start === end || end - start > MAX_LENGTH_DIGITS) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = raw.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
