/**
 * Incremental HTTP/1.1 response parser for m2gw's own upstream client (connection.ts). Pure:
 * bytes in, events out; no sockets, no timers.
 *
 * The upstream is untrusted, and its bytes end up on a client connection that Mongrel2 keeps
 * alive, so framing is decided strictly and once, here:
 * - the status line is `HTTP/1.0` or `HTTP/1.1`, three digits, then an optional reason;
 * - every header line ends in CRLF, its name is a token followed directly by ':', and its
 *   value holds no control character but HTAB (a bare CR or LF inside a line is refused, not
 *   taken as a line end: that difference is what header injection needs);
 * - obs-fold (a line starting with a space) is refused;
 * - the body is framed by, in order: no body (a HEAD request, 1xx, 204, 304), chunked
 *   Transfer-Encoding (a Transfer-Encoding without chunked: until the close), one
 *   Content-Length (identical repeats are one), else the connection's close. Content-Length
 *   with Transfer-Encoding, two different lengths, a coding after chunked, or a
 *   Transfer-Encoding on HTTP/1.0 is an error: we cannot tell where the upstream meant the
 *   body to end, so we do not guess;
 * - 1xx heads (100 Continue, 103 Early Hints) are skipped; a 101 ends parsing (the caller
 *   decides whether it asked for one).
 * Bytes after the end of a message are not consumed: `feed` returns how many it used, and
 * the caller, which has only one request outstanding, treats the rest as unsolicited.
 *
 * Linear in its input: the head is gathered in a doubling buffer (each byte copied O(1)
 * times) and scanned from where the last scan stopped; lines are found with indexOf; chunk
 * lines and trailers are bounded and scanned once. test/unit/fuzz.test.ts checks this.
 */
import { findBlankLine, HttpResponseError, parseResponseHead, TOKEN, BAD_VALUE, type Framing, type ResponseHead } from './response-head.js';

export { HttpResponseError, type Framing, type ResponseHead };

/** Response heads (and trailers) larger than this are refused: undici's own default. */
export const DEFAULT_MAX_HEAD_BYTES = 16 * 1024;
/** A chunk-size line (hex size and extensions) longer than this is refused. */
export const MAX_CHUNK_LINE_BYTES = 4 * 1024;
/** 13 hex digits: every size below 2^52, so sizes stay exact numbers. */
const MAX_CHUNK_SIZE_DIGITS = 13;

export interface ResponseEvents {
  /** The final head (status ≥ 200, or 101). */
  onHead(head: ResponseHead): void;
  /** A piece of the body: a view of the fed chunk (the caller owns it). Never empty. */
  onBody(chunk: Buffer): void;
  /** The message is complete (for 'close' framing: on `finish()`). */
  onEnd(): void;
}

const enum State {
  Idle,
  Head,
  Body,
  ChunkLine,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  Done,
}

const CR = 0x0d;
const LF = 0x0a;
const EMPTY = Buffer.alloc(0);
export class ResponseParser {
  private state = State.Idle;
  private headRequest = false;
  /** The head (or chunk line, or trailers) so far, in a buffer that doubles when full. */
  private buffered: Buffer = EMPTY;
  private fill = 0;
  private scanFrom = 0;
  /** Body bytes still expected: of the whole body ('length') or of the current chunk. */
  private remaining = 0;
  /** Bytes of trailers seen, against the head limit. */
  private trailerBytes = 0;
  private framing: Framing = 'none';
  private any = false;

  constructor(
    private readonly events: ResponseEvents,
    private readonly maxHeadBytes = DEFAULT_MAX_HEAD_BYTES,
  ) {}

  /** Expect the response to one request. `headRequest`: it was a HEAD (no body, whatever the head says). */
  start(headRequest: boolean): void {
    this.state = State.Head;
    this.headRequest = headRequest;
    this.fill = 0;
    this.scanFrom = 0;
    this.trailerBytes = 0;
    this.any = false;
  }

  /** Not inside a message: nothing started, or the last one complete. */
  get idle(): boolean {
    return this.state === State.Idle || this.state === State.Done;
  }

  /** Inside a body that ends with the connection. */
  get awaitingClose(): boolean {
    return this.state === State.Body && this.framing === 'close';
  }

  /** Some byte of the response to the current request has arrived. */
  get started(): boolean {
    return this.any;
  }

  /**
   * Feeds bytes. Returns how many belong to the message: all of them, unless it ended (or a
   * 101 head ended parsing) inside this chunk. Throws HttpResponseError on malformed input;
   * the parser is then unusable.
   */
  feed(chunk: Buffer): number {
    let i = 0;
    const n = chunk.length;
    if (n > 0 && this.state === State.Head) this.any = true;
    while (i < n) {
      switch (this.state) {
        case State.Head:
          i = this.feedHead(chunk, i);
          break;
        case State.Body: {
          const take = Math.min(this.remaining, n - i);
          if (this.framing === 'close') {
            this.events.onBody(i === 0 ? chunk : chunk.subarray(i));
            return n;
          }
          this.remaining -= take;
          this.events.onBody(take === n && i === 0 ? chunk : chunk.subarray(i, i + take));
          i += take;
          if (this.remaining === 0) this.end();
          break;
        }
        case State.ChunkLine:
          i = this.feedChunkLine(chunk, i);
          break;
        case State.ChunkData: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          this.events.onBody(chunk.subarray(i, i + take));
          i += take;
          if (this.remaining === 0) {
            this.state = State.ChunkDataEnd;
            this.remaining = 2;
          }
          break;
        }
        case State.ChunkDataEnd: {
          const expected = this.remaining === 2 ? CR : LF;
          if (chunk[i] !== expected) throw new HttpResponseError('chunk data not followed by CRLF');
          i++;
          if (--this.remaining === 0) this.state = State.ChunkLine;
          break;
        }
        case State.Trailers:
          i = this.feedTrailers(chunk, i);
          break;
        case State.Idle:
        case State.Done:
          return i;
      }
    }
    return n;
  }

  /**
   * The connection ended (no more bytes will come). Completes a close-delimited body;
   * anything else unfinished is an error.
   */
  finish(): void {
    if (this.state === State.Body && this.framing === 'close') {
      this.end();
      return;
    }
    if (this.state === State.Idle || this.state === State.Done) return;
    throw new HttpResponseError(this.state === State.Head ? 'connection closed before the response head' : 'connection closed before the end of the body');
  }

  private end(): void {
    this.state = State.Done;
    this.buffered = EMPTY;
    this.fill = 0;
    this.events.onEnd();
  }

  private feedHead(chunk: Buffer, from: number): number {
    const piece = from === 0 ? chunk : chunk.subarray(from);
    let buf: Buffer;
    if (this.fill === 0) buf = piece;
    else {
      this.append(piece);
      buf = this.buffered.subarray(0, this.fill);
    }
    const end = findBlankLine(buf, this.scanFrom);
    if (end === -1) {
      // The blank line may still end in the next 3 bytes: the same limit as for a whole head.
      if (buf.length - 3 > this.maxHeadBytes) throw new HttpResponseError(`response head larger than ${this.maxHeadBytes} bytes`);
      if (buf === piece) this.append(piece);
      this.scanFrom = Math.max(0, buf.length - 3);
      return chunk.length;
    }
    if (end > this.maxHeadBytes) throw new HttpResponseError(`response head larger than ${this.maxHeadBytes} bytes`);
    // Bytes of `chunk` that the head used: all of `buf` up to the blank line, minus what was buffered before.
    const usedOfPiece = end + 4 - (buf === piece ? 0 : this.fill - piece.length);
    const head = parseResponseHead(buf, end, this.headRequest);
    this.fill = 0;
    this.scanFrom = 0;
    if (head === null) return from + usedOfPiece; // a 1xx: the next head follows
    this.buffered = EMPTY;
    this.framing = head.framing;
    this.events.onHead(head);
    if (head.status === 101) {
      this.state = State.Done;
      return from + usedOfPiece;
    }
    switch (head.framing) {
      case 'none':
        this.end();
        break;
      case 'length':
        if (head.contentLength === 0) this.end();
        else {
          this.state = State.Body;
          this.remaining = head.contentLength;
        }
        break;
      case 'close':
        this.state = State.Body;
        this.remaining = Infinity;
        break;
      case 'chunked':
        this.state = State.ChunkLine;
        break;
    }
    return from + usedOfPiece;
  }

  /** `1*HEXDIG [ ; extensions ] CRLF`: gathered (bounded) until its LF, then read. */
  private feedChunkLine(chunk: Buffer, from: number): number {
    const lf = chunk.indexOf(LF, from);
    const stop = lf === -1 ? chunk.length : lf + 1;
    if (this.fill + (stop - from) > MAX_CHUNK_LINE_BYTES) throw new HttpResponseError(`chunk-size line longer than ${MAX_CHUNK_LINE_BYTES} bytes`);
    this.append(chunk.subarray(from, stop));
    if (lf === -1) return stop;
    const line = this.buffered.subarray(0, this.fill);
    this.fill = 0;
    if (line.length < 2 || line[line.length - 2] !== CR) throw new HttpResponseError('chunk-size line not ended by CRLF');
    let size = 0;
    let digits = 0;
    let sawZero = false;
    let j = 0;
    for (; j < line.length - 2; j++) {
      const h = hexValue(line[j]!);
      if (h === -1) break;
      // Leading zeros do not count toward the limit: the size's value does.
      if ((size > 0 || h > 0) && ++digits > MAX_CHUNK_SIZE_DIGITS) throw new HttpResponseError('chunk size too large');
      if (size === 0 && h === 0) sawZero = true;
      size = size * 16 + h;
    }
    if (digits === 0 && !sawZero) throw new HttpResponseError('chunk-size line without a size');
    // What may follow the size: optional whitespace, then `;` extensions, which are ignored.
    let k = j;
    while (k < line.length - 2 && (line[k] === 0x20 || line[k] === 0x09)) k++;
    if (k < line.length - 2 && line[k] !== 0x3b) throw new HttpResponseError('malformed chunk-size line');
    for (let x = k; x < line.length - 2; x++) {
      const c = line[x]!;
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw new HttpResponseError('control character in a chunk extension');
    }
    if (size === 0) {
      this.state = State.Trailers;
      this.scanFrom = 0;
    } else {
      this.state = State.ChunkData;
      this.remaining = size;
    }
    return stop;
  }

  /** Trailer lines after the last chunk, up to an empty line; checked, bounded and dropped. */
  private feedTrailers(chunk: Buffer, from: number): number {
    let i = from;
    while (i < chunk.length) {
      const lf = chunk.indexOf(LF, i);
      const stop = lf === -1 ? chunk.length : lf + 1;
      this.trailerBytes += stop - i;
      if (this.trailerBytes > this.maxHeadBytes) throw new HttpResponseError(`trailers larger than ${this.maxHeadBytes} bytes`);
      this.append(chunk.subarray(i, stop));
      i = stop;
      if (lf === -1) return i;
      const line = this.buffered.subarray(0, this.fill);
      this.fill = 0;
      if (line.length < 2 || line[line.length - 2] !== CR) throw new HttpResponseError('trailer line not ended by CRLF');
      if (line.length === 2) {
        this.end();
        return i;
      }
      const colon = line.indexOf(0x3a);
      if (colon <= 0 || !TOKEN.test(line.toString('latin1', 0, colon))) throw new HttpResponseError('malformed trailer line');
      if (BAD_VALUE.test(line.toString('latin1', colon + 1, line.length - 2))) throw new HttpResponseError('control character in a trailer');
    }
    return i;
  }

  private append(piece: Buffer): void {
    const need = this.fill + piece.length;
    if (need > this.buffered.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(Math.max(256, this.buffered.length * 2), this.maxHeadBytes + 4)));
      this.buffered.copy(grown, 0, 0, this.fill);
      this.buffered = grown;
    }
    piece.copy(this.buffered, this.fill);
    this.fill = need;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}
