/**
 * Sends a request body kept in a file (a Mongrel2 async upload) as STDIN records, one record
 * per read, pausing the file while the socket's buffer is full: memory stays bounded whatever
 * the size. Ends with the empty STDIN record once exactly `length` bytes went out.
 */
import fs from 'node:fs';
import type net from 'node:net';
import { HEADER_LEN, RecordType, STDIN_CHUNK, endOfStdin, paddingFor, writeHeader } from './records.js';

export interface StdinFileEvents {
  /** Every byte and the terminator are written (queued on the socket). */
  done(): void;
  /** The file could not be read, or did not hold `length` bytes. */
  failed(err: Error): void;
}

export interface StdinFileStream {
  destroy(): void;
}

export function streamFileAsStdin(
  socket: net.Socket,
  recordId: number,
  path: string,
  length: number,
  events: StdinFileEvents,
): StdinFileStream {
  if (length === 0) {
    socket.write(endOfStdin(recordId));
    events.done();
    return { destroy() {} };
  }
  // A read never exceeds one record's payload.
  const rs = fs.createReadStream(path, { start: 0, end: length - 1, highWaterMark: STDIN_CHUNK });
  let sent = 0;
  let over = false;
  const resume = (): void => {
    if (!over) rs.resume();
  };
  rs.on('data', (chunk: Buffer | string) => {
    const data = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    sent += data.length;
    const pad = paddingFor(data.length);
    const header = Buffer.alloc(HEADER_LEN + pad);
    writeHeader(header, 0, RecordType.STDIN, recordId, data.length, pad);
    socket.cork();
    socket.write(header.subarray(0, HEADER_LEN));
    let ok = socket.write(data);
    if (pad > 0) ok = socket.write(header.subarray(HEADER_LEN));
    socket.uncork();
    if (!ok && !socket.destroyed) {
      rs.pause();
      socket.once('drain', resume);
    }
  });
  rs.on('end', () => {
    if (over) return;
    over = true;
    if (sent !== length) {
      events.failed(new Error(`request body file has ${sent} of ${length} bytes`));
      return;
    }
    socket.write(endOfStdin(recordId));
    events.done();
  });
  rs.on('error', (err) => {
    if (over) return;
    over = true;
    events.failed(err);
  });
  return {
    destroy() {
      over = true;
      socket.removeListener('drain', resume);
      rs.destroy();
    },
  };
}
