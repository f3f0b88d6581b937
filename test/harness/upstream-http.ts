/**
 * A real node:http upstream for tests. It records every request (with its body's
 * length and SHA-256) and every connection close, and has built-in routes for the
 * common cases when no handler is given:
 *
 *   /echo...          200 JSON {method, url, httpVersion, headers, rawHeaders, bodyLength, bodySha256}
 *   /bytes/<n>        n bytes of patternBytes(), with Content-Length
 *   /stream/<n>/<ms>  n chunks "chunk <i>\n", ms apart, chunked
 *   /status/<code>    that status ("status <code>" body unless 204/304)
 *   /cookies          two Set-Cookie headers
 *   /slow/<ms>        "slow <ms>" after ms
 *   /hang             never answers (see `closedAt` on its request record)
 */
import { createHash, type Hash } from 'node:crypto';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface RecordedRequest {
  method: string;
  url: string;
  httpVersion: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  /** Grows while the body arrives; final once `bodyComplete`. */
  bodyLength: number;
  /** SHA-256 of the body; '' until `bodyComplete`. */
  bodySha256: string;
  bodyComplete: boolean;
  /** Client port of the connection it came on (same port = same kept-alive connection). */
  remotePort: number;
  receivedAt: number;
  /** When the response finished or the connection went away, whichever came first. */
  closedAt?: number;
  /** True if the connection closed before the response was finished. */
  aborted: boolean;
}

export interface HttpUpstreamInstance {
  port: number;
  url: string;
  server: http.Server;
  requests: RecordedRequest[];
  /** Connections opened so far. */
  readonly connectionsOpened: number;
  /** Connections closed so far (either side). */
  readonly connectionsClosed: number;
  /** Called with the remote port of each connection as it closes; returns an unsubscribe. */
  onConnectionClose(cb: (remotePort: number) => void): () => void;
  /** Stops listening and destroys every connection, idle or busy. Idempotent. */
  close(): Promise<void>;
}

/** Byte i of /bytes/<n>: a 251-byte cycle, so a shifted or repeated range shows up. */
export function patternBytes(length: number, offset = 0): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = (offset + i) % 251;
  return out;
}

export async function startHttpUpstream(handler?: UpstreamHandler): Promise<HttpUpstreamInstance> {
  const requests: RecordedRequest[] = [];
  const closeListeners = new Set<(remotePort: number) => void>();
  const sockets = new Set<Socket>();
  let opened = 0;
  let closed = 0;
  const route = handler ?? builtInRoutes;

  const server = http.createServer({ keepAlive: true }, (req, res) => {
    const rec: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyLength: 0,
      bodySha256: '',
      bodyComplete: false,
      remotePort: req.socket.remotePort ?? 0,
      receivedAt: Date.now(),
      aborted: false,
    };
    requests.push(rec);
    tapBody(req, rec);
    res.once('close', () => {
      rec.closedAt = Date.now();
      rec.aborted = !res.writableFinished;
    });
    route(req, res);
  });
  // Long enough that a test's pauses never race Node's idle close (default 5 s).
  server.keepAliveTimeout = 60_000;
  server.on('connection', (sock: Socket) => {
    opened++;
    sockets.add(sock);
    const remotePort = sock.remotePort ?? 0;
    sock.once('close', () => {
      sockets.delete(sock);
      closed++;
      for (const cb of closeListeners) cb(remotePort);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | null = null;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    get connectionsOpened() {
      return opened;
    },
    get connectionsClosed() {
      return closed;
    },
    onConnectionClose(cb) {
      closeListeners.add(cb);
      return () => closeListeners.delete(cb);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

/*
 * Hashes the body as the parser hands it to the stream, without reading it: a
 * custom handler may consume the body however and whenever it likes.
 */
function tapBody(req: IncomingMessage, rec: RecordedRequest): void {
  const hash: Hash = createHash('sha256');
  const push = req.push.bind(req);
  req.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk === null) {
      rec.bodySha256 = hash.digest('hex');
      rec.bodyComplete = true;
    } else if (Buffer.isBuffer(chunk)) {
      hash.update(chunk);
      rec.bodyLength += chunk.length;
    }
    return push(chunk, encoding);
  };
}

function builtInRoutes(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://upstream');
  const parts = url.pathname.split('/').filter((p) => p !== '');
  const num = (i: number): number => Number(parts[i]);
  switch (parts[0]) {
    case 'echo':
      return echo(req, res);
    case 'bytes':
      return bytes(req, res, num(1));
    case 'stream':
      req.resume();
      return stream(res, num(1), num(2));
    case 'status':
      return drainThen(req, () => status(res, num(1)));
    case 'cookies':
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/; HttpOnly']);
      return drainThen(req, () => sendText(res, 200, 'cookies\n'));
    case 'slow': {
      const timer = setTimeout(() => sendText(res, 200, `slow ${num(1)}\n`), num(1));
      res.once('close', () => clearTimeout(timer));
      req.resume();
      return;
    }
    case 'hang':
      req.resume();
      return;
    default:
      return drainThen(req, () => sendText(res, 404, `no route ${url.pathname}\n`));
  }
}

function drainThen(req: IncomingMessage, then: () => void): void {
  req.resume();
  if (req.complete) then();
  else req.once('end', then);
}

function sendText(res: ServerResponse, code: number, text: string): void {
  if (res.destroyed) return;
  const body = code === 204 || code === 304 ? '' : text;
  res.writeHead(code, { 'Content-Type': 'text/plain', ...(code === 204 || code === 304 ? {} : { 'Content-Length': Buffer.byteLength(body) }) });
  res.end(body);
}

function echo(req: IncomingMessage, res: ServerResponse): void {
  const hash = createHash('sha256');
  let length = 0;
  req.on('data', (c: Buffer) => {
    hash.update(c);
    length += c.length;
  });
  req.once('end', () => {
    const body = JSON.stringify({
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      bodyLength: length,
      bodySha256: hash.digest('hex'),
    });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
}

const BYTES_CHUNK = 64 * 1024;

function bytes(req: IncomingMessage, res: ServerResponse, n: number): void {
  if (!Number.isInteger(n) || n < 0) return drainThen(req, () => sendText(res, 400, 'bad length\n'));
  drainThen(req, () => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n });
    if (req.method === 'HEAD') return void res.end();
    let sent = 0;
    // Writes with backpressure so a slow client really slows the upstream down.
    const pump = (): void => {
      while (sent < n && !res.destroyed) {
        const len = Math.min(BYTES_CHUNK, n - sent);
        const ok = res.write(patternBytes(len, sent));
        sent += len;
        if (!ok) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  });
}

function stream(res: ServerResponse, n: number, ms: number): void {
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  let i = 0;
  const next = (): void => {
    if (res.destroyed) return;
    if (i >= n) return void res.end();
    res.write(`chunk ${i++}\n`);
    timer = setTimeout(next, ms);
  };
  let timer = setTimeout(next, 0);
  res.once('close', () => clearTimeout(timer));
}

function status(res: ServerResponse, code: number): void {
  if (!Number.isInteger(code) || code < 200 || code > 999) return sendText(res, 400, 'bad status\n');
  sendText(res, code, `status ${code}\n`);
}
