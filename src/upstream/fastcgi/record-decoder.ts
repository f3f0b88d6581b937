/**
 * Streaming FastCGI record decoder: takes the byte stream in whatever chunks the socket hands
 * over and calls back per record. STDOUT/STDERR content is passed on as it arrives (slices of
 * the input, never copied), so a 64 KiB record need not be buffered whole; every other record
 * type is delivered complete. Pure: no sockets or timers.
 */
import { FCGI_VERSION_1, HEADER_LEN, RecordType } from './records.js';

export interface RecordHandler {
  /** A piece of a STDOUT record's content (never empty). */
  onStdout(recordId: number, data: Buffer): void;
  /** A piece of a STDERR record's content (never empty). */
  onStderr(recordId: number, data: Buffer): void;
  onEndRequest(recordId: number, appStatus: number, protocolStatus: number): void;
  /** Any other record (request-side types, GET_VALUES_RESULT, UNKNOWN_TYPE), whole. */
  onRecord?(type: number, recordId: number, content: Buffer): void;
}

export class RecordDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecordDecodeError';
  }
}

const enum State {
  Header,
  Content,
  Padding,
}

export class RecordDecoder {
  private state = State.Header;
  private readonly header = Buffer.alloc(HEADER_LEN);
  private headerFill = 0;
  private type = 0;
  private recordId = 0;
  private contentLeft = 0;
  private paddingLeft = 0;
  /** Whole-record content being collected (non-stream types). */
  private collect: Buffer | null = null;
  private collectFill = 0;
  private paused = false;
  /** Input not yet processed: received while paused, or left when a callback paused. */
  private readonly pending: Buffer[] = [];
  /** Where processing stopped in pending[0]. */
  private pendingOffset = 0;
  /** Inside drain(): a resume() from a callback must not start a second, nested pass. */
  private draining = false;
  private failed: RecordDecodeError | null = null;

  constructor(private readonly handler: RecordHandler) {}

  /** Feeds bytes. Throws RecordDecodeError on a malformed stream (and on every later call). */
  push(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    this.pending.push(chunk);
    this.drain();
  }

  /** Stops delivering callbacks (the current callback returns first); input is kept. */
  pause(): void {
    this.paused = true;
  }

  /** Delivers what was kept while paused, unless a callback pauses again. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.drain();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** True between records: no partial record is held. */
  get atRecordBoundary(): boolean {
    return this.state === State.Header && this.headerFill === 0 && this.pending.length === 0;
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.pending.length > 0 && !this.paused) {
        const chunk = this.pending[0]!;
        const stop = this.process(chunk, this.pendingOffset);
        if (stop < chunk.length) {
          this.pendingOffset = stop;
          return;
        }
        this.pending.shift();
        this.pendingOffset = 0;
      }
    } finally {
      this.draining = false;
    }
  }

  /** Processes `chunk` from `off` until it is used up or a callback paused; returns where it stopped. */
  private process(chunk: Buffer, off: number): number {
    const len = chunk.length;
    while (off < len && !this.paused) {
      switch (this.state) {
        case State.Header: {
          if (this.headerFill === 0 && len - off >= HEADER_LEN) {
            this.startRecord(chunk, off);
            off += HEADER_LEN;
          } else {
            const n = Math.min(HEADER_LEN - this.headerFill, len - off);
            chunk.copy(this.header, this.headerFill, off, off + n);
            this.headerFill += n;
            off += n;
            if (this.headerFill === HEADER_LEN) {
              this.headerFill = 0;
              this.startRecord(this.header, 0);
            }
          }
          break;
        }
        case State.Content: {
          const n = Math.min(this.contentLeft, len - off);
          const piece = chunk.subarray(off, off + n);
          off += n;
          this.contentLeft -= n;
          if (this.contentLeft === 0) this.state = this.paddingLeft > 0 ? State.Padding : State.Header;
          if (this.collect !== null) {
            piece.copy(this.collect, this.collectFill);
            this.collectFill += n;
            if (this.contentLeft === 0) this.finishCollected();
          } else if (this.type === RecordType.STDOUT) {
            this.handler.onStdout(this.recordId, piece);
          } else {
            this.handler.onStderr(this.recordId, piece);
          }
          break;
        }
        case State.Padding: {
          const n = Math.min(this.paddingLeft, len - off);
          off += n;
          this.paddingLeft -= n;
          if (this.paddingLeft === 0) this.state = State.Header;
          break;
        }
      }
    }
    return off;
  }

  private startRecord(buf: Buffer, o: number): void {
    if (buf[o] !== FCGI_VERSION_1) {
      this.failed = new RecordDecodeError(`unsupported FastCGI record version ${buf[o]}`);
      throw this.failed;
    }
    this.type = buf[o + 1]!;
    this.recordId = (buf[o + 2]! << 8) | buf[o + 3]!;
    this.contentLeft = (buf[o + 4]! << 8) | buf[o + 5]!;
    this.paddingLeft = buf[o + 6]!;
    const streamed = this.type === RecordType.STDOUT || this.type === RecordType.STDERR;
    if (this.type === RecordType.END_REQUEST && this.contentLeft < 8) {
      this.failed = new RecordDecodeError(`END_REQUEST with ${this.contentLeft} content bytes (8 expected)`);
      throw this.failed;
    }
    this.collect = streamed ? null : Buffer.allocUnsafe(this.contentLeft);
    this.collectFill = 0;
    if (this.contentLeft > 0) {
      this.state = State.Content;
    } else {
      // An empty STDOUT/STDERR record only marks the end of that stream: nothing to report.
      this.state = this.paddingLeft > 0 ? State.Padding : State.Header;
      if (!streamed) this.finishCollected();
    }
  }

  private finishCollected(): void {
    const content = this.collect!;
    this.collect = null;
    if (this.type === RecordType.END_REQUEST) {
      const appStatus = content.readUInt32BE(0);
      this.handler.onEndRequest(this.recordId, appStatus, content[4]!);
    } else {
      this.handler.onRecord?.(this.type, this.recordId, content);
    }
  }
}
