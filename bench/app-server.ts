/**
 * The HTTP app every route of the benchmark ends at (m2gw, Mongrel2's Proxy, nginx).
 * Its own process so its CPU is accounted apart. Answers by the last path segment,
 * so "/gw/hello", "/proxy/hello" and "/hello" are the same resource:
 *   GET  …/hello            14 bytes, Content-Length
 *   GET  …/1m               1 MiB, Content-Length, one write
 *   GET  …/stream?bytes=N   N bytes, Content-Length, written in 256 KiB pieces with backpressure
 *   POST …/sink             discards the body, answers {"bytes": <count>}
 * Prints {"port": N} on stdout once listening.
 *
 * Usage: node dist/bench/app-server.js [--port 0]
 */
import http from 'node:http';

const HELLO = Buffer.from('Hello, world!\n');
const MIB = Buffer.alloc(1 << 20, 'x');
// The same Buffer is written again and again; that is safe because it is never modified.
const PIECE = Buffer.alloc(256 * 1024, 'y');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

function stream(res: http.ServerResponse, total: number): void {
  let left = total;
  const pump = (): void => {
    while (left > 0) {
      const piece = left >= PIECE.length ? PIECE : PIECE.subarray(0, left);
      left -= piece.length;
      if (!res.write(piece)) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  res.once('close', () => {
    left = 0;
  });
  pump();
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const pathname = q >= 0 ? url.slice(0, q) : url;
  const leaf = pathname.slice(pathname.lastIndexOf('/') + 1);
  switch (leaf) {
    case 'hello':
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length });
      res.end(HELLO);
      return;
    case '1m':
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': MIB.length });
      res.end(MIB);
      return;
    case 'stream': {
      const bytes = Number(new URLSearchParams(q >= 0 ? url.slice(q + 1) : '').get('bytes') ?? '0');
      if (!Number.isSafeInteger(bytes) || bytes < 0) {
        res.writeHead(400).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes });
      stream(res, bytes);
      return;
    }
    case 'sink': {
      let count = 0;
      req.on('data', (c: Buffer) => {
        count += c.length;
      });
      req.on('end', () => {
        const body = JSON.stringify({ bytes: count });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    default:
      res.writeHead(404, { 'Content-Length': 0 }).end();
  }
});
// Proxies keep upstream connections for a long time; node's 5 s default would make
// them reconnect between the warm-up and the measurement.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.requestTimeout = 0;
server.listen(Number(arg('--port', '0')), '127.0.0.1', () => {
  const addr = server.address();
  if (addr && typeof addr === 'object') process.stdout.write(JSON.stringify({ port: addr.port }) + '\n');
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
