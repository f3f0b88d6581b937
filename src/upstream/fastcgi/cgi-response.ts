/**
 * Incremental parser for the CGI response header block at the start of a FastCGI STDOUT
 * stream (RFC 3875 §6): header lines ended by \r\n or \n, a blank line, then the body.
 * Pure: feed it STDOUT pieces until it returns the head; what follows is body.
 *
 * Header names come out lower-cased and values as latin1 byte strings (the HeaderList
 * convention). `Status:` is consumed into the status code; `Location:` without `Status:`
 * means 302, as nginx and Caddy do.
 */
import type { HeaderList } from '../upstream.js';

export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;

export interface CgiHead {
  status: number;
  /** Reason phrase from `Status:`, when it had one. */
  reason: string | undefined;
  headers: HeaderList;
  /** Body bytes that arrived in the same piece as the end of the head (may be empty). */
  rest: Buffer;
}

export class CgiHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CgiHeaderError';
  }
}

const LF = 0x0a;
const CR = 0x0d;
// RFC 9110 token characters, for header names.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const EMPTY = Buffer.alloc(0);

export class CgiResponseParser {
  /**
   * The head so far, in a buffer that doubles when full: appending a piece copies only that
   * piece (amortised), where concatenating the whole head per piece was quadratic (a 64 KiB
   * head in 1-byte records cost 0.3–1 s).
   */
  private buffered: Buffer = EMPTY;
  private fill = 0;
  /** Where to resume looking for the blank line in `buffered`. */
  private scanFrom = 0;
  private done = false;

  constructor(private readonly maxHeaderBytes = DEFAULT_MAX_HEADER_BYTES) {}

  get headComplete(): boolean {
    return this.done;
  }

  /** True while bytes are held waiting for the end of the head. */
  get hasPartialHead(): boolean {
    return this.fill > 0;
  }

  /**
   * Feeds STDOUT bytes. Returns the head once the blank line has been seen (once only),
   * null while more is needed. Throws CgiHeaderError for a malformed or oversized head.
   */
  push(chunk: Buffer): CgiHead | null {
    if (this.done) throw new Error('the CGI head is already complete: the rest is body');
    let buf: Buffer;
    if (this.fill === 0) {
      buf = chunk;
    } else {
      this.append(chunk);
      buf = this.buffered.subarray(0, this.fill);
    }
    const end = findHeadEnd(buf, this.scanFrom);
    if (end === null) {
      if (buf.length > this.maxHeaderBytes) {
        throw new CgiHeaderError(`CGI response head exceeds ${this.maxHeaderBytes} bytes`);
      }
      // A copy: the chunk may be a slice of a socket buffer the caller hands on elsewhere.
      if (buf === chunk) this.append(chunk);
      // The last 2 bytes may start a blank line whose end has not arrived yet.
      this.scanFrom = Math.max(0, buf.length - 2);
      return null;
    }
    if (end.headEnd > this.maxHeaderBytes) {
      throw new CgiHeaderError(`CGI response head exceeds ${this.maxHeaderBytes} bytes`);
    }
    this.done = true;
    const head = parseHead(buf, end.headEnd);
    // `rest` may be a view of `buffered`: drop our reference, never reuse the memory.
    this.buffered = EMPTY;
    this.fill = 0;
    return { status: head.status, reason: head.reason, headers: head.headers, rest: end.bodyStart < buf.length ? buf.subarray(end.bodyStart) : EMPTY };
  }

  private append(chunk: Buffer): void {
    const need = this.fill + chunk.length;
    if (need > this.buffered.length) {
      // Never more than the cap (+ the piece that crosses it): the caller's limit bounds memory.
      const cap = Math.max(need, Math.min(Math.max(256, this.buffered.length * 2), this.maxHeaderBytes + 1));
      const grown = Buffer.allocUnsafe(cap);
      this.buffered.copy(grown, 0, 0, this.fill);
      this.buffered = grown;
    }
    chunk.copy(this.buffered, this.fill);
    this.fill = need;
  }
}

/**
 * Finds the blank line ending the head: returns where the header lines end and the body
 * starts, or null when not seen yet. Lines start at 0 and after every LF; a line is blank
 * when it is "\n" or "\r\n".
 */
export function findHeadEnd(buf: Buffer, from: number): { headEnd: number; bodyStart: number } | null {
  let lineStart = from === 0 ? 0 : -1;
  let i = from;
  for (;;) {
    if (lineStart !== -1) {
      const c = buf[lineStart];
      if (c === LF) return { headEnd: lineStart, bodyStart: lineStart + 1 };
      if (c === CR) {
        if (lineStart + 1 >= buf.length) return null;
        if (buf[lineStart + 1] === LF) return { headEnd: lineStart, bodyStart: lineStart + 2 };
      }
    }
    const lf = buf.indexOf(LF, i);
    if (lf === -1) return null;
    lineStart = lf + 1;
    i = lf + 1;
    if (lineStart >= buf.length) return null;
  }
}

/** Raw header name → its lower-cased form, or null when it is not a token. Names repeat. */
const names = new Map<string, string | null>();

/** Longer names are not kept in `names`: a name may be ~64 KiB, and an entry holds two copies. */
const NAME_MEMO_MAX = 64;

function headerName(raw: string): string | null {
  let name = names.get(raw);
  if (name === undefined) {
    name = TOKEN.test(raw) ? raw.toLowerCase() : null;
    if (raw.length > NAME_MEMO_MAX) return name;
    if (names.size >= 1024) names.clear();
    names.set(raw, name);
  }
  return name;
}

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09;

/** Parses the header lines in buf[0, end) (the blank line excluded) into status and headers. */
export function parseHead(buf: Buffer, end: number): { status: number; reason: string | undefined; headers: HeaderList } {
  const headers: HeaderList = [];
  let status = 0;
  let reason: string | undefined;
  let location = false;
  let i = 0;
  while (i < end) {
    let lf = buf.indexOf(LF, i);
    if (lf === -1 || lf > end) lf = end;
    let lineEnd = lf;
    if (lineEnd > i && buf[lineEnd - 1] === CR) lineEnd--;
    const lineStart = i;
    i = lf + 1;
    if (lineEnd === lineStart) continue;
    let colon = buf.indexOf(0x3a, lineStart);
    if (colon === -1 || colon >= lineEnd) colon = -1;
    if (colon <= lineStart) {
      throw new CgiHeaderError(`malformed CGI header line ${JSON.stringify(buf.toString('latin1', lineStart, Math.min(lineEnd, lineStart + 80)))}`);
    }
    const raw = buf.toString('latin1', lineStart, colon);
    const name = headerName(raw);
    if (name === null) throw new CgiHeaderError(`invalid CGI header name ${JSON.stringify(raw.slice(0, 80))}`);
    let vs = colon + 1;
    let ve = lineEnd;
    while (vs < ve && isSpace(buf[vs])) vs++;
    while (ve > vs && isSpace(buf[ve - 1])) ve--;
    const value = buf.toString('latin1', vs, ve);
    if (name === 'status') {
      const parsed = parseStatusValue(value);
      if (parsed === null) throw new CgiHeaderError(`invalid CGI Status ${JSON.stringify(value.slice(0, 80))}`);
      ({ status, reason } = parsed);
      continue;
    }
    if (name === 'location') location = true;
    headers.push([name, value]);
  }
  if (status === 0) status = location ? 302 : 200;
  return { status, reason, headers };
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
/** What a regex `\s` matches among latin1 chars. */
const isLatin1Space = (c: number): boolean => (c >= 0x09 && c <= 0x0d) || c === 0x20 || c === 0xa0;

/**
 * `Status: 404 Not Found` → 404 and "Not Found". Scanned by hand: the former regex
 * `^([1-5]\d\d)(?:\s+(.*))?$` backtracked quadratically on a long run of spaces followed by a
 * CR. A reason holding CR or LF is refused (it would end up in the status line).
 */
export function parseStatusValue(value: string): { status: number; reason: string | undefined } | null {
  const c0 = value.charCodeAt(0);
  if (!(c0 >= 0x31 && c0 <= 0x35) || !isDigit(value.charCodeAt(1)) || !isDigit(value.charCodeAt(2))) return null;
  const status = Number(value.slice(0, 3));
  let i = 3;
  while (i < value.length && isLatin1Space(value.charCodeAt(i))) i++;
  if (i === 3) return value.length === 3 ? { status, reason: undefined } : null;
  const reason = value.slice(i);
  if (reason.includes('\r') || reason.includes('\n')) return null;
  return { status, reason: reason === '' ? undefined : reason };
}
