/**
 * The data channel from the supervisor to one worker: a socketpair the supervisor
 * creates when it forks the worker (child fd 4). Mongrel2 messages and the ordered
 * "stop" control travel on it as length-prefixed records:
 *
 *   u32 payload length | u8 kind | u8 0 | u16 handler index | payload
 *
 * Why a socketpair and not zeromq or process.send: it is ordered with no hop through
 * a broker, costs no file on disk (nothing to clean up, nothing for systemd
 * sandboxing to hide), closes by itself when either process dies, and carries
 * Buffers without the JSON/structured-clone cost of the IPC channel.
 *
 * Every record queued during one event-loop turn leaves in one write.
 */
import type { Socket } from 'node:net';

export const HEADER_BYTES = 8;
const KIND_MESSAGE = 1;
const KIND_STOP = 2;
/** A Mongrel2 message bigger than this is not one (limits.content_length is far lower). */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export type ChannelRecord =
  | { readonly kind: 'message'; readonly handlerIndex: number; readonly msg: Buffer }
  | { readonly kind: 'stop'; readonly timeoutMs: number };

function header(kind: number, handlerIndex: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h.writeUInt32BE(length, 0);
  h[4] = kind;
  h[5] = 0;
  h.writeUInt16BE(handlerIndex, 6);
  return h;
}

/** The bytes of records, for tests and for the writer. */
export function encodeRecords(records: readonly ChannelRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    if (r.kind === 'message') {
      parts.push(header(KIND_MESSAGE, r.handlerIndex, r.msg.length), r.msg);
    } else {
      const p = Buffer.allocUnsafe(4);
      p.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(r.timeoutMs))), 0);
      parts.push(header(KIND_STOP, 0, 4), p);
    }
  }
  return Buffer.concat(parts);
}

/**
 * Supervisor side. Records are queued and written once per turn. `writableLength`
 * tells the supervisor how much the worker has not read yet (backpressure).
 */
export class ChannelWriter {
  /** Payloads queued this turn; `handlers[i]` is the handler index of `payloads[i]`, -1 for a ready-made record. */
  private payloads: Buffer[] = [];
  private handlers: number[] = [];
  private size = 0;
  private scheduled = false;
  private closed = false;

  constructor(private readonly socket: Socket) {}

  /** Bytes accepted but not yet taken by the worker (queued here or in the socket). */
  get backlog(): number {
    return this.size + this.socket.writableLength;
  }

  message(handlerIndex: number, msg: Buffer): void {
    if (this.closed) return;
    // No header Buffer per message: headers are written straight into the turn's one buffer.
    this.payloads.push(msg);
    this.handlers.push(handlerIndex);
    this.size += HEADER_BYTES + msg.length;
    this.schedule();
  }

  stop(timeoutMs: number): void {
    if (this.closed) return;
    const rec = encodeRecords([{ kind: 'stop', timeoutMs }]);
    this.payloads.push(rec);
    this.handlers.push(-1);
    this.size += rec.length;
    this.schedule();
  }

  /** Write what is queued now (used right before closing). */
  flushNow(): void {
    this.flush();
  }

  close(): void {
    this.flush();
    this.closed = true;
    this.socket.end();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.payloads.length === 0 || this.closed) return;
    const data = Buffer.allocUnsafe(this.size);
    let pos = 0;
    for (let i = 0; i < this.payloads.length; i++) {
      const p = this.payloads[i]!;
      const h = this.handlers[i]!;
      if (h >= 0) {
        data.writeUInt32BE(p.length, pos);
        data[pos + 4] = KIND_MESSAGE;
        data[pos + 5] = 0;
        data.writeUInt16BE(h, pos + 6);
        pos += HEADER_BYTES;
      }
      pos += p.copy(data, pos);
    }
    this.payloads = [];
    this.handlers = [];
    this.size = 0;
    if (!this.socket.destroyed) this.socket.write(data);
  };
}

/** Worker side: turns the byte stream back into records. Throws on a corrupt stream. */
export class ChannelDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Feed one chunk; returns the records it completed, in order. */
  push(chunk: Buffer): ChannelRecord[] {
    const out: ChannelRecord[] = [];
    let buf: Buffer;
    if (this.buffered === 0) {
      buf = chunk;
    } else {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      const need = this.needed();
      if (need === null || this.buffered < need) return out;
      buf = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
    }
    let pos = 0;
    while (buf.length - pos >= HEADER_BYTES) {
      const len = buf.readUInt32BE(pos);
      if (len > MAX_RECORD_BYTES) throw new Error(`channel record of ${len} bytes: stream corrupt`);
      const end = pos + HEADER_BYTES + len;
      if (end > buf.length) break;
      const kind = buf[pos + 4];
      const payload = buf.subarray(pos + HEADER_BYTES, end);
      if (kind === KIND_MESSAGE) {
        out.push({ kind: 'message', handlerIndex: buf.readUInt16BE(pos + 6), msg: payload });
      } else if (kind === KIND_STOP && len === 4) {
        out.push({ kind: 'stop', timeoutMs: payload.readUInt32BE(0) });
      } else {
        throw new Error(`channel record kind ${String(kind)} with ${len} bytes: stream corrupt`);
      }
      pos = end;
    }
    if (pos < buf.length) {
      this.chunks = [buf.subarray(pos)];
      this.buffered = buf.length - pos;
    }
    return out;
  }

  /** Bytes held back waiting for the rest of a record. */
  get pending(): number {
    return this.buffered;
  }

  /** Total bytes the record at the head of the buffer needs, or null until its header is complete. */
  private needed(): number | null {
    if (this.buffered < HEADER_BYTES) return null;
    if (this.chunks[0]!.length < HEADER_BYTES) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return HEADER_BYTES + this.chunks[0]!.readUInt32BE(0);
  }
}
