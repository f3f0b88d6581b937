/**
 * The checks an upstream's response head must pass before any of it reaches a client.
 * Mongrel2 writes our bytes verbatim on a kept-alive connection, so a head whose framing
 * is ambiguous would let an upstream (or whoever controls a PHP script's output) decide
 * where the client thinks the next response starts: response smuggling. Hence:
 * - exactly one valid decimal Content-Length (identical duplicates, also as a list, are
 *   one); two different ones, a sign, hex, or a value past 2^53 are a 502;
 * - Content-Length together with Transfer-Encoding is a 502 (RFC 9112 §6.1 forbids a
 *   sender to send both; we cannot tell which one the upstream meant);
 * - a 101 is a 502: m2gw never asks an upstream to switch protocols;
 * - the head is bounded in header count and bytes (an HTTP upstream is also bounded by
 *   undici's own 16 KiB limit; a CGI head by its parser's 64 KiB).
 * Pure: the response writer acts on the verdict.
 */
import type { HeaderList } from '../upstream/upstream.js';
import type { LimitKind } from '../metrics/limit-hits.js';

/** More headers than this in one upstream response head is a 502. */
export const MAX_UPSTREAM_HEADERS = 500;
/** More bytes (names, values, ": " and CRLF) than this in one upstream head is a 502. */
export const MAX_UPSTREAM_HEAD_BYTES = 64 * 1024;
/** 15 digits: below 2^53, so the length is an exact number (and far above any real body). */
const MAX_LENGTH_DIGITS = 15;

export type HeadVerdict =
  | { readonly ok: true; readonly contentLength: number | null }
  | { readonly ok: false; readonly reason: string; readonly limit?: LimitKind };

export function checkUpstreamHead(status: number, headers: HeaderList): HeadVerdict {
  if (status === 101) return { ok: false, reason: 'unsolicited 101 Switching Protocols' };
  if (headers.length > MAX_UPSTREAM_HEADERS) {
    return { ok: false, reason: `more than ${MAX_UPSTREAM_HEADERS} response headers`, limit: 'upstream_header_count' };
  }
  let bytes = 0;
  let contentLength: number | null = null;
  let transferEncoding = false;
  for (const [name, value] of headers) {
    bytes += name.length + value.length + 4;
    if (name.length !== 14 && name.length !== 17) continue;
    const lower = name.toLowerCase();
    if (lower === 'transfer-encoding') {
      transferEncoding = true;
    } else if (lower === 'content-length') {
      for (const part of value.split(',')) {
        const n = parseDecimalLength(part);
        if (n === null) return { ok: false, reason: `invalid Content-Length ${JSON.stringify(value.slice(0, 40))}` };
        if (contentLength !== null && contentLength !== n) return { ok: false, reason: 'conflicting Content-Length values' };
        contentLength = n;
      }
    }
  }
  if (bytes > MAX_UPSTREAM_HEAD_BYTES) {
    return { ok: false, reason: `response head larger than ${MAX_UPSTREAM_HEAD_BYTES} bytes`, limit: 'upstream_header_bytes' };
  }
  if (contentLength !== null && transferEncoding) return { ok: false, reason: 'both Content-Length and Transfer-Encoding' };
  return { ok: true, contentLength };
}

/** 1*DIGIT with optional surrounding spaces/tabs (a list element); null otherwise. */
function parseDecimalLength(raw: string): number | null {
  let start = 0;
  let end = raw.length;
  while (start < end && (raw.charCodeAt(start) === 0x20 || raw.charCodeAt(start) === 0x09)) start++;
  while (end > start && (raw.charCodeAt(end - 1) === 0x20 || raw.charCodeAt(end - 1) === 0x09)) end--;
  if (start === end || end - start > MAX_LENGTH_DIGITS) return null;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = raw.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
  }
  return n;
}
