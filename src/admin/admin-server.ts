/**
 * The admin HTTP listener (off unless [admin] listen is set; loopback only unless
 * allow_remote, see config/read-admin.ts):
 *   GET /healthz  200 while the process runs
 *   GET /readyz   200 when every handler socket is connected and every upstream has a
 *                 healthy server; else 503 with the reasons as JSON
 *   GET /metrics  Prometheus text, aggregated over the supervisor and its workers
 *   GET /status   JSON for `m2gw status` (workers, pids, upstream health, last reload result)
 * With a token configured every endpoint, /healthz included, needs `Authorization: Bearer
 * <token>`; anything else is 401 before the path is even looked at.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.js';
import type { RenderedMetrics } from '../metrics/supervisor-metrics.js';
import type { Readiness, StatusReport } from './status.js';

export interface AdminProvider {
  status(): Promise<StatusReport>;
  readiness(): Promise<Readiness>;
  metrics(): Promise<RenderedMetrics>;
}

export interface AdminServer {
  /** "host:port" actually bound (the port is real even when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

export function splitHostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  let host = listen.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(listen.slice(colon + 1)) };
}

export interface AdminServerOptions {
  /** Bearer token every request must carry; null: none (loopback only, config enforces it). */
  readonly token?: string | null;
}

/**
 * Whether the request carries `Authorization: Bearer <token>`. Compared in constant time: both
 * sides are hashed first, so neither the length nor a common prefix shows in the timing.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  const given = createHash('sha256').update(m === null ? '' : m[1]!).digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}

export async function startAdminServer(
  listen: string,
  provider: AdminProvider,
  /** A getter: the supervisor's logger is replaced (and the old one closed) by every reload. */
  log: () => Logger,
  opts: AdminServerOptions = {},
): Promise<AdminServer> {
  const token = opts.token ?? null;
  const server = http.createServer((req, res) => {
    if (token !== null && !bearerMatches(req.headers.authorization, token)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="m2gw admin"');
      send(res, 401, 'text/plain; charset=utf-8', 'unauthorized: send Authorization: Bearer <token>\n');
      return;
    }
    void handle(req, res, provider).catch((err: unknown) => {
      log().error('admin request failed', { path: req.url, error: String(err) });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  // The admin port is for local tools and scrapers: do not let a stuck client pin the process.
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 10_000;
  const { host, port } = splitHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const address = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, provider: AdminProvider): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    return send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
  }
  switch (path) {
    case '/healthz':
      return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
    case '/readyz': {
      const r = await provider.readiness();
      return send(res, r.ready ? 200 : 503, 'application/json', JSON.stringify(r) + '\n');
    }
    case '/metrics': {
      const m = await provider.metrics();
      return send(res, 200, m.contentType, m.text);
    }
    case '/status':
      return send(res, 200, 'application/json', JSON.stringify(await provider.status(), null, 2) + '\n');
    default:
      return send(res, 404, 'text/plain; charset=utf-8', 'not found: try /healthz /readyz /metrics /status\n');
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
