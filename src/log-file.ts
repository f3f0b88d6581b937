/**
 * The file transport of m2gw's loggers: lines batched into one write per 50 ms (or 64 KiB).
 * Apart from log.ts because it is its own concern (buffering, reopening after rotation, the
 * exit hook), which logInfoFast hands access lines to directly.
 */
import fs from 'node:fs';
import path from 'node:path';
import winston from 'winston';
import type TransportStream from 'winston-transport';

/** triple-beam's MESSAGE: the key under which a format leaves the finished line. */
export const MESSAGE = Symbol.for('message');

export type Info = winston.Logform.TransformableInfo & Record<string | symbol, unknown>;

/** winston's transport base class (its typings name it `transport`; the runtime export is `Transport`). */
const Transport = (winston as unknown as { Transport: typeof TransportStream }).Transport;

/** Lines wait at most this long before they are written... */
const FLUSH_MS = 50;
/** ...or until this much is waiting. */
const FLUSH_BYTES = 64 * 1024;

/**
 * Appends lines to a file in batches: what is logged within FLUSH_MS (or up to FLUSH_BYTES)
 * leaves in one write, so a busy gateway pays one system call for many access lines instead
 * of one per line. Synchronous on purpose: a regular file write lands in the page cache, so
 * it is short; and a disk that stalls then slows the process down instead of letting lines
 * pile up in memory without bound. Lines still waiting when the process exits are written by
 * the exit hook, so the last lines (the "stopped" record) survive process.exit().
 */
export class LineFileTransport extends Transport {
  readonly filename: string;
  private fd: number;
  /**
   * Lines waiting, already encoded. Each line is copied in as it is logged, not joined as a
   * string at flush: a string of ~50 ms of lines outlives young-generation collections, so
   * V8 copied (then promoted) every line of it, a large share of what a busy worker's
   * scavenges had to move (bench/README.md, "where the time goes").
   */
  private readonly buf = Buffer.allocUnsafeSlow(FLUSH_BYTES);
  private used = 0;
  private timer: NodeJS.Timeout | null = null;
  private shut = false;
  private readonly onExit = (): void => this.flush();

  constructor(filename: string) {
    super();
    this.filename = filename;
    fs.mkdirSync(path.dirname(filename), { recursive: true });
    this.fd = fs.openSync(filename, 'a');
    process.on('exit', this.onExit);
  }

  override log(info: Info, next: () => void): void {
    this.writeLine(info[MESSAGE] as string);
    next();
  }

  /** Append one finished line (logInfoFast hands access lines over here directly). */
  writeLine(text: string): void {
    if (this.shut) return;
    // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4): room for
    // `text.length * 3 + 1` means the line and its newline fit, and only near the end of the
    // buffer is the exact size worth counting.
    if (this.used + text.length * 3 + 1 > this.buf.length) {
      const size = Buffer.byteLength(text, 'utf8') + 1;
      if (this.used + size > this.buf.length) {
        this.flush();
        if (size > this.buf.length) {
          this.writeOut(Buffer.from(text + '\n', 'utf8'));
          return;
        }
      }
    }
    this.used += this.buf.write(text, this.used, 'utf8');
    this.buf[this.used++] = 0x0a;
    this.timer ??= setTimeout(this.flushSoon, FLUSH_MS).unref();
  }

  /**
   * Open the file again under its name (it was moved away): later lines go to the new file.
   * The new file is opened before the old one is let go: if it cannot be (logrotate's olddir
   * took the directory, EACCES, EMFILE), lines keep going to the old file rather than nowhere,
   * and the error is returned for the caller to log there; the next SIGUSR1 tries again.
   * Throwing instead would escape the SIGUSR1 handler and end the process.
   */
  reopen(): Error | null {
    if (this.shut) return null;
    let fd: number;
    try {
      fd = fs.openSync(this.filename, 'a');
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
    this.flush();
    const old = this.fd;
    this.fd = fd;
    fs.closeSync(old);
    return null;
  }

  override close(): void {
    if (this.shut) return;
    this.flush();
    this.shut = true;
    process.off('exit', this.onExit);
    fs.closeSync(this.fd);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.close();
    cb();
  }

  private readonly flushSoon = (): void => {
    this.timer = null;
    this.flush();
  };

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.used === 0 || this.shut) return;
    const used = this.used;
    this.used = 0;
    // Synchronous, so the buffer is free again when this returns.
    this.writeOut(this.buf.subarray(0, used));
  }

  private writeOut(data: Buffer): void {
    let off = 0;
    try {
      while (off < data.length) off += fs.writeSync(this.fd, data, off, data.length - off);
    } catch (err) {
      // Nowhere better to say it: the log file itself is what failed.
      process.stderr.write(`m2gw: cannot write log file ${this.filename}: ${String(err)}\n`);
    }
  }
}
