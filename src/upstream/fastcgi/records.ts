/**
 * FastCGI wire format (FastCGI 1.0 spec §3–§5): record headers, padding, name-value pairs,
 * the request-side records and a streaming decoder for what the application sends back.
 * Pure: no sockets, timers or config.
 *
 * Limits follow what PHP-FPM accepts, which is stricter than the spec:
 * - PHP-FPM rejects a record whose contentLength + paddingLength exceeds 65535, so a record's
 *   padding is dropped when it would push the total past that (padding is optional anyway).
 * - PHP-FPM parses every PARAMS record on its own, so a name-value pair never spans two
 *   records; a single pair longer than a record cannot be sent at all.
 *
 * The spec's header field requestId is called `recordId` here: in m2gw "request id" means
 * the X-Request-Id a request is logged under, never this per-connection FastCGI number.
 */

export const FCGI_VERSION_1 = 1;
export const HEADER_LEN = 8;
/** Largest content of one record. */
export const MAX_CONTENT = 0xffff;
/** Payload per STDIN record: a multiple of 8, so no padding (PHP-FPM splits its output the same way). */
export const STDIN_CHUNK = 0xfff8;

export const RecordType = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;

export const Role = { RESPONDER: 1, AUTHORIZER: 2, FILTER: 3 } as const;
export const FLAG_KEEP_CONN = 1;

export const ProtocolStatus = {
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
} as const;

export interface RecordHeader {
  version: number;
  type: number;
  recordId: number;
  contentLength: number;
  paddingLength: number;
}

/** Padding that brings `contentLength` to a multiple of 8, unless that would exceed 65535 in all. */
export function paddingFor(contentLength: number): number {
  const pad = (8 - (contentLength & 7)) & 7;
  return contentLength + pad > MAX_CONTENT ? 0 : pad;
}

export function writeHeader(
  buf: Buffer,
  offset: number,
  type: number,
  recordId: number,
  contentLength: number,
  paddingLength: number,
): number {
  buf[offset] = FCGI_VERSION_1;
  buf[offset + 1] = type;
  buf[offset + 2] = (recordId >> 8) & 0xff;
  buf[offset + 3] = recordId & 0xff;
  buf[offset + 4] = (contentLength >> 8) & 0xff;
  buf[offset + 5] = contentLength & 0xff;
  buf[offset + 6] = paddingLength;
  buf[offset + 7] = 0;
  return offset + HEADER_LEN;
}

export function decodeHeader(buf: Buffer, offset = 0): RecordHeader {
  if (buf.length - offset < HEADER_LEN) throw new RangeError('a record header is 8 bytes');
  return {
    version: buf[offset]!,
    type: buf[offset + 1]!,
    recordId: (buf[offset + 2]! << 8) | buf[offset + 3]!,
    contentLength: (buf[offset + 4]! << 8) | buf[offset + 5]!,
    paddingLength: buf[offset + 6]!,
  };
}

/** Bytes one whole record takes on the wire. */
export function recordSize(contentLength: number): number {
  return HEADER_LEN + contentLength + paddingFor(contentLength);
}

/** Writes header + content + zeroed padding at `offset`; returns the offset after it. */
export function writeRecord(buf: Buffer, offset: number, type: number, recordId: number, content: Buffer): number {
  if (content.length > MAX_CONTENT) throw new RangeError(`record content of ${content.length} bytes exceeds 65535`);
  const pad = paddingFor(content.length);
  let o = writeHeader(buf, offset, type, recordId, content.length, pad);
  o += content.copy(buf, o);
  if (pad > 0) buf.fill(0, o, o + pad);
  return o + pad;
}

export function encodeRecord(type: number, recordId: number, content: Buffer = Buffer.alloc(0)): Buffer {
  const buf = Buffer.allocUnsafe(recordSize(content.length));
  writeRecord(buf, 0, type, recordId, content);
  return buf;
}

export function encodeBeginRequest(recordId: number, keepConn = true, role: number = Role.RESPONDER): Buffer {
  const buf = Buffer.alloc(16);
  writeBeginRequest(buf, 0, recordId, keepConn, role);
  return buf;
}

function writeBeginRequest(buf: Buffer, offset: number, recordId: number, keepConn: boolean, role: number): number {
  const o = writeHeader(buf, offset, RecordType.BEGIN_REQUEST, recordId, 8, 0);
  buf[o] = (role >> 8) & 0xff;
  buf[o + 1] = role & 0xff;
  buf[o + 2] = keepConn ? FLAG_KEEP_CONN : 0;
  buf.fill(0, o + 3, o + 8);
  return o + 8;
}

export function encodeAbortRequest(recordId: number): Buffer {
  return encodeRecord(RecordType.ABORT_REQUEST, recordId);
}

export function encodeEndRequest(recordId: number, appStatus: number, protocolStatus: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(appStatus >>> 0, 0);
  body[4] = protocolStatus;
  return encodeRecord(RecordType.END_REQUEST, recordId, body);
}

// ---------------------------------------------------------------------------------------------
// Name-value pairs (§3.4): each length is 1 byte below 128, else 4 bytes with the top bit set.

/** Name-value pairs as byte strings: every char is one byte (latin1), as the rest of m2gw does. */
export type NameValuePairs = ReadonlyArray<readonly [name: string, value: string]>;

function lengthSize(n: number): number {
  return n < 0x80 ? 1 : 4;
}

function writeLength(buf: Buffer, o: number, n: number): number {
  if (n < 0x80) {
    buf[o] = n;
    return o + 1;
  }
  buf.writeUInt32BE((n | 0x80000000) >>> 0, o);
  return o + 4;
}

/** Size of one encoded pair (names and values are latin1 byte strings). */
export function pairSize(name: string, value: string): number {
  return lengthSize(name.length) + lengthSize(value.length) + name.length + value.length;
}

export function encodeNameValuePairs(pairs: NameValuePairs): Buffer {
  let size = 0;
  for (const [n, v] of pairs) size += pairSize(n, v);
  const buf = Buffer.allocUnsafe(size);
  let o = 0;
  for (const [n, v] of pairs) o = writePair(buf, o, n, v);
  return buf;
}

function writePair(buf: Buffer, o: number, name: string, value: string): number {
  o = writeLength(buf, o, name.length);
  o = writeLength(buf, o, value.length);
  o += buf.write(name, o, 'latin1');
  o += buf.write(value, o, 'latin1');
  return o;
}

/** Decodes a name-value pair stream; throws on a truncated one. */
export function decodeNameValuePairs(buf: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let o = 0;
  const readLength = (): number => {
    if (o >= buf.length) throw new RangeError('truncated name-value pair length');
    const b = buf[o]!;
    if (b < 0x80) {
      o += 1;
      return b;
    }
    if (o + 4 > buf.length) throw new RangeError('truncated name-value pair length');
    const n = buf.readUInt32BE(o) & 0x7fffffff;
    o += 4;
    return n;
  };
  while (o < buf.length) {
    const nlen = readLength();
    const vlen = readLength();
    if (o + nlen + vlen > buf.length) throw new RangeError('truncated name-value pair');
    const name = buf.toString('latin1', o, o + nlen);
    const value = buf.toString('latin1', o + nlen, o + nlen + vlen);
    o += nlen + vlen;
    out.push([name, value]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// A whole request head: BEGIN_REQUEST, PARAMS records (pair-aligned), empty PARAMS, then
// STDIN when the body is given here.

export interface RequestHeadOptions {
  recordId: number;
  params: NameValuePairs;
  keepConn?: boolean;
  /**
   * Body bytes to send as STDIN after the params, followed by the empty STDIN record that ends
   * it. null: no body (just the empty STDIN). 'stream': the caller sends STDIN itself.
   */
  stdin: Buffer | null | 'stream';
}

/** Thrown when one param cannot fit in a record: PHP-FPM would reject the request. */
export class ParamTooLargeError extends RangeError {
  readonly paramName: string;
  constructor(name: string, size: number) {
    super(`FastCGI param ${name} is ${size} bytes encoded; one record holds at most ${MAX_CONTENT}`);
    this.name = 'ParamTooLargeError';
    this.paramName = name;
  }
}

/** A name-value length as latin1 chars (1 below 128, else 4 with the top bit set). */
function lengthChars(n: number): string {
  return n < 0x80
    ? String.fromCharCode(n)
    : String.fromCharCode(((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/**
 * Encodes a request head into one Buffer, so it goes out in a single socket write. Params are
 * packed into as few PARAMS records as possible without splitting a pair (see the file comment).
 * Each record's pairs are joined into one latin1 string and copied in one call: a
 * Buffer.write per name and value costs more than the rest of the encoding.
 */
export function encodeRequestHead(opts: RequestHeadOptions): Buffer {
  const { recordId, params } = opts;
  const stdin = opts.stdin;
  const records: string[] = [];
  let cur = '';
  for (let i = 0; i < params.length; i++) {
    const [n, v] = params[i]!;
    const pair = lengthChars(n.length) + lengthChars(v.length) + n + v;
    if (pair.length > MAX_CONTENT) throw new ParamTooLargeError(n, pair.length);
    if (cur.length + pair.length > MAX_CONTENT) {
      records.push(cur);
      cur = '';
    }
    cur += pair;
  }
  if (cur.length > 0) records.push(cur);
  let size = 16 + HEADER_LEN; // BEGIN_REQUEST + empty PARAMS
  for (const r of records) size += recordSize(r.length);
  if (stdin !== 'stream') size += stdinSize(stdin === null ? 0 : stdin.length);

  const buf = Buffer.allocUnsafe(size);
  let o = writeBeginRequest(buf, 0, recordId, opts.keepConn ?? true, Role.RESPONDER);
  for (const r of records) {
    const pad = paddingFor(r.length);
    o = writeHeader(buf, o, RecordType.PARAMS, recordId, r.length, pad);
    o += buf.write(r, o, 'latin1');
    for (let k = 0; k < pad; k++) buf[o++] = 0;
  }
  o = writeHeader(buf, o, RecordType.PARAMS, recordId, 0, 0);
  if (stdin !== 'stream') o = writeStdin(buf, o, recordId, stdin);
  if (o !== size) throw new Error(`internal: request head is ${o} bytes, expected ${size}`);
  return buf;
}

/** Wire size of `bodyLength` bytes sent as STDIN records, the empty terminator included. */
export function stdinSize(bodyLength: number): number {
  const full = Math.floor(bodyLength / STDIN_CHUNK);
  const rest = bodyLength - full * STDIN_CHUNK;
  return full * (HEADER_LEN + STDIN_CHUNK) + (rest > 0 ? recordSize(rest) : 0) + HEADER_LEN;
}

function writeStdin(buf: Buffer, o: number, recordId: number, body: Buffer | null): number {
  if (body !== null) {
    for (let start = 0; start < body.length; start += STDIN_CHUNK) {
      o = writeRecord(buf, o, RecordType.STDIN, recordId, body.subarray(start, start + STDIN_CHUNK));
    }
  }
  return writeHeader(buf, o, RecordType.STDIN, recordId, 0, 0);
}

/**
 * STDIN records for `body` as a list of buffers for a corked write: headers and padding are
 * small new buffers, the payload is referenced, not copied (for large in-memory bodies).
 */
export function stdinRecords(recordId: number, body: Buffer, terminate: boolean): Buffer[] {
  const out: Buffer[] = [];
  for (let start = 0; start < body.length; start += STDIN_CHUNK) {
    const chunk = body.subarray(start, start + STDIN_CHUNK);
    const pad = paddingFor(chunk.length);
    const header = Buffer.allocUnsafe(HEADER_LEN + pad);
    writeHeader(header, 0, RecordType.STDIN, recordId, chunk.length, pad);
    if (pad > 0) header.fill(0, HEADER_LEN);
    // The padding goes after the payload: split the little buffer in two.
    out.push(header.subarray(0, HEADER_LEN), chunk);
    if (pad > 0) out.push(header.subarray(HEADER_LEN));
  }
  if (terminate) out.push(endOfStdin(recordId));
  return out;
}

export function endOfStdin(recordId: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER_LEN);
  writeHeader(b, 0, RecordType.STDIN, recordId, 0, 0);
  return b;
}

/** Rewrites the record id in every record header of an encoded request. */
export function setRecordId(buf: Buffer, id: number): void {
  let o = 0;
  while (o + 8 <= buf.length) {
    buf[o + 2] = (id >> 8) & 0xff;
    buf[o + 3] = id & 0xff;
    o += 8 + ((buf[o + 4]! << 8) | buf[o + 5]!) + buf[o + 6]!;
  }
}
