/**
 * HTTP/1.1 response framing. Mongrel2 writes reply bytes to the client verbatim, so the status
 * line, headers and chunked framing are entirely ours (PROTOCOL.md §6.1). Header strings are byte
 * strings (latin1), matching how request headers are decoded, so forwarded values stay byte-exact.
 */
import { STATUS_CODES } from 'node:http';

export const CRLF: Buffer = Buffer.from('\r\n', 'latin1');
/** The zero-length chunk plus the empty trailer section that end a chunked body. */
export const LAST_CHUNK: Buffer = Buffer.from('0\r\n\r\n', 'latin1');

/** RFC 9110 token: what a field name may be. */
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Field-value bytes: HTAB, visible ASCII, SP and obs-text; no CR/LF/NUL (response splitting), no
 * other controls and nothing above U+00FF (would not survive latin1). Same rule as node:http.
 */
const BAD_VALUE_RE = /[^\t\x20-\x7e\x80-\xff]/;

/** The standard reason phrase, or '' for a code without one (the status line then ends in a space). */
export function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? '';
}

function checkStatus(status: number): void {
  if (!Number.isInteger(status) || status < 100 || status > 999) {
    throw new RangeError(`invalid HTTP status ${status}`);
  }
}

/** `HTTP/1.1 STATUS REASON` CRLF, `name: value` CRLF each, CRLF. Throws TypeError on CR/LF/NUL etc. */
export function encodeResponseHead(
  status: number,
  headers: ReadonlyArray<readonly [string, string]>,
  reason?: string,
): Buffer {
  checkStatus(status);
  const phrase = reason ?? reasonPhrase(status);
  if (BAD_VALUE_RE.test(phrase)) throw new TypeError('invalid character in reason phrase');
  let head = 'HTTP/1.1 ' + status + ' ' + phrase + '\r\n';
  for (const [name, value] of headers) {
    if (!TOKEN_RE.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (BAD_VALUE_RE.test(value)) throw new TypeError(`invalid character in the value of header ${name}`);
    head += name + ': ' + value + '\r\n';
  }
  head += '\r\n';
  return Buffer.from(head, 'latin1');
}

/**
 * `HEX CRLF` for a chunk of `length` bytes. Zero is refused: a zero-size chunk ends the body,
 * which must only ever happen on purpose, through LAST_CHUNK.
 */
export function encodeChunkHeader(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length <= 0) throw new RangeError(`invalid chunk length ${length}`);
  return Buffer.from(length.toString(16) + '\r\n', 'latin1');
}

/** [header, data, CRLF]; [] for empty data, because an empty chunk would end the body. */
export function encodeChunk(data: Buffer): Buffer[] {
  if (data.length === 0) return [];
  return [encodeChunkHeader(data.length), data, CRLF];
}

/** Status codes whose responses never have a body (RFC 9110 §6.4.1). */
function forbidsBody(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

/**
 * A complete small response (error pages and the like) with Content-Length. The body is text,
 * sent as UTF-8; Content-Type defaults to text/plain unless extraHeaders sets one. With
 * `head: true` the body is left out but Content-Length still describes it, as HEAD requires.
 */
export function simpleResponse(
  status: number,
  body: string,
  extraHeaders: ReadonlyArray<readonly [string, string]> = [],
  opts: { head?: boolean } = {},
): Buffer {
  checkStatus(status);
  const headers: [string, string][] = [];
  const noBody = forbidsBody(status);
  const bytes = noBody ? EMPTY : Buffer.from(body, 'utf8');
  if (!noBody) {
    if (!extraHeaders.some(([n]) => n.toLowerCase() === 'content-type')) {
      headers.push(['Content-Type', 'text/plain; charset=utf-8']);
    }
    headers.push(['Content-Length', String(bytes.length)]);
  }
  for (const h of extraHeaders) {
    if (h[0].toLowerCase() === 'content-length') continue; // ours is the true one
    headers.push([h[0], h[1]]);
  }
  const head = encodeResponseHead(status, headers);
  if (opts.head === true || bytes.length === 0) return head;
  return Buffer.concat([head, bytes], head.length + bytes.length);
}

const EMPTY = Buffer.alloc(0);
