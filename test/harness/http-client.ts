/**
 * HTTP clients for tests: a node:http request with full response details, a raw
 * socket exchange for wire-level checks (HTTP/1.0, pipelining, who closes), and a
 * rate-limited reader to play a slow client.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export type RequestBody = Buffer | string | AsyncIterable<Buffer> | Readable;

export interface RequestOptions {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  /** A Buffer/string is sent with Content-Length; an iterable or stream is sent chunked unless a length header is given. */
  body?: RequestBody;
  timeoutMs?: number;
  /** Default: a fresh connection per request (agent: false). Pass a keep-alive Agent to reuse. */
  agent?: http.Agent | false;
}

export interface HttpResponse {
  status: number;
  statusMessage: string;
  httpVersion: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  trailers: NodeJS.Dict<string>;
  body: Buffer;
  /** The client socket's local port: equal ports mean a reused connection. */
  localPort: number;
  remotePort: number;
  /** True when the agent reused a kept-alive socket for this request. */
  reusedSocket: boolean;
  /** ms from sending to the end of the body. */
  elapsedMs: number;
}

export function request(url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...opts.headers };
    const body = opts.body;
    if ((Buffer.isBuffer(body) || typeof body === 'string') && !hasHeader(headers, 'content-length')) {
      headers['content-length'] = Buffer.byteLength(body);
    }
    const req = http.request(url, { method: opts.method ?? 'GET', headers, agent: opts.agent ?? false });
    const timer = setTimeout(() => req.destroy(new Error(`request ${opts.method ?? 'GET'} ${url} timed out after ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      reject(err);
    };
    req.once('error', fail);
    req.once('response', (res) => {
      const socket = res.socket;
      const localPort = socket?.localPort ?? 0;
      const remotePort = socket?.remotePort ?? 0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', fail);
      res.once('end', () => {
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          httpVersion: res.httpVersion,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          trailers: res.trailers,
          body: Buffer.concat(chunks),
          localPort,
          remotePort,
          reusedSocket: req.reusedSocket,
          elapsedMs: Date.now() - t0,
        });
      });
    });
    if (body === undefined) {
      req.end();
    } else if (Buffer.isBuffer(body) || typeof body === 'string') {
      req.end(body);
    } else {
      const source = body instanceof Readable ? body : Readable.from(body);
      pipeline(source, req).catch((err: Error) => req.destroy(err));
    }
  });
}

function hasHeader(headers: http.OutgoingHttpHeaders, name: string): boolean {
  return Object.keys(headers).some((k) => k.toLowerCase() === name);
}

export interface RawRequestOptions {
  /** 'close': read until the server closes; a number: until that many ms pass without data. Default 'close'. */
  readUntil?: 'close' | number;
  /** Overall limit; with 'close' exceeding it rejects (the server did not close). Default 5000. */
  timeoutMs?: number;
  host?: string;
}

export class RawRequestTimeout extends Error {
  constructor(
    message: string,
    readonly partial: Buffer,
  ) {
    super(message);
    this.name = 'RawRequestTimeout';
  }
}

/** Writes `raw` to a fresh TCP connection and returns every byte the server sent back. */
export function rawRequest(port: number, raw: Buffer | string, opts: RawRequestOptions = {}): Promise<Buffer> {
  const until = opts.readUntil ?? 'close';
  const timeoutMs = opts.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host: opts.host ?? '127.0.0.1', port });
    let idleTimer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      clearTimeout(idleTimer);
      sock.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const armIdle = (): void => {
      if (typeof until !== 'number') return;
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => finish(), until);
    };
    const overall = setTimeout(() => {
      const partial = Buffer.concat(chunks);
      const what = until === 'close' ? 'server did not close the connection' : 'data kept arriving';
      finish(new RawRequestTimeout(`rawRequest: ${what} within ${timeoutMs} ms; got ${partial.length} bytes:\n${partial.toString('latin1').slice(0, 2000)}`, partial));
    }, timeoutMs);
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      armIdle();
    });
    sock.once('connect', () => {
      sock.write(raw);
      armIdle();
    });
    // A reset after the response was read still counts as "closed".
    sock.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' && chunks.length > 0 ? finish() : finish(err)));
    sock.once('end', () => finish());
    sock.once('close', () => finish());
  });
}

export interface SlowReadResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** ms from sending the request to the end of the body. */
  elapsedMs: number;
  /** ms from sending the request to the first body byte (or the end, for an empty body). */
  firstByteMs: number;
}

/**
 * GETs `url` and consumes the body at no more than `bytesPerSecond` on average: after each
 * chunk the response is paused until the byte count is back within budget. The kernel
 * still buffers ahead of us (socket buffers cannot be shrunk from Node), so the server sees
 * the limit once those buffers are full.
 */
export function slowReader(url: string, bytesPerSecond: number, opts: { timeoutMs?: number; headers?: http.OutgoingHttpHeaders } = {}): Promise<SlowReadResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: opts.headers ?? {} });
    const timer = setTimeout(() => req.destroy(new Error(`slowReader ${url} timed out after ${timeoutMs} ms`)), timeoutMs);
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      let start = 0;
      let firstByteMs = -1;
      res.on('data', (c: Buffer) => {
        const now = Date.now();
        if (firstByteMs < 0) {
          firstByteMs = now - t0;
          start = now;
        }
        chunks.push(c);
        received += c.length;
        const dueAt = start + (received / bytesPerSecond) * 1000;
        if (dueAt > now) {
          res.pause();
          setTimeout(() => res.resume(), dueAt - now);
        }
      });
      res.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.once('end', () => {
        clearTimeout(timer);
        const elapsedMs = Date.now() - t0;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), elapsedMs, firstByteMs: firstByteMs < 0 ? elapsedMs : firstByteMs });
      });
    });
  });
}

/** Hex SHA-256 of bytes (a string is hashed as UTF-8). */
export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hex SHA-256 of a file's contents, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
