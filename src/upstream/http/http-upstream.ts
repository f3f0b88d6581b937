/**
 * HTTP upstream: round-robin across servers, a server that refuses connections leaves the
 * rotation for fail_timeout. Two clients per server:
 * - requests without a body or with one in memory, to http:// servers, go over m2gw's direct
 *   client (pool.ts, connection.ts, direct-attempt.ts): nearly all traffic, at about half of
 *   undici's cost per request (bench/README.md, "What each change bought");
 * - uploads streamed from a file or from the client, WebSocket upgrades and https:// servers
 *   go over one undici Pool per server, whose body pumping, upgrade and TLS handling are
 *   worth their cost there (undici-attempt.ts). `connections` bounds each client separately.
 */
import type { Pool } from 'undici';
import type { HttpUpstreamConfig } from '../../config/schema.js';
import { UpstreamError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { ResponseSink, Upstream, UpstreamHealth, UpstreamRequest } from '../upstream.js';
import { DirectAttempt, type DirectHost, type DirectServer } from './direct-attempt.js';
import { HttpPool } from './pool.js';
import { undici, UndiciAttempt, type UndiciHost, type UndiciServer } from './undici-attempt.js';

type Server = UndiciServer;

export function createHttpUpstream(cfg: HttpUpstreamConfig, logger: Logger): Upstream {
  return new HttpUpstream(cfg, logger);
}

class HttpUpstream implements Upstream, DirectHost, UndiciHost {
  readonly name: string;
  readonly type = 'http' as const;
  private readonly cfg: HttpUpstreamConfig;
  private readonly log: Logger;
  private readonly servers: Server[];
  private next = 0;
  private inFlight = 0;
  closed = false;

  constructor(cfg: HttpUpstreamConfig, logger: Logger) {
    this.cfg = cfg;
    this.name = cfg.name;
    this.log = logger;
    const timeouts = {
      connectTimeoutMs: cfg.connectTimeoutMs,
      responseTimeoutMs: cfg.responseTimeoutMs,
      idleTimeoutMs: cfg.idleTimeoutMs,
      keepAliveTimeoutMs: cfg.keepAliveTimeoutMs,
    };
    this.servers = cfg.urls.map((u) => {
      const url = new URL(u);
      // IPv6 literals come bracketed in URL.hostname; net.connect wants them bare.
      const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      return {
        origin: url.origin,
        basePath: url.pathname.replace(/\/+$/, ''),
        hostHeader: url.host,
        downUntil: 0,
        direct: url.protocol === 'http:' ? new HttpPool(host, Number(url.port || 80), cfg.connections, timeouts) : null,
        pool: null,
      };
    });
    // Every request to an https:// server goes through undici: load it now, not on a request.
    for (const s of this.servers) if (s.direct === null) this.undiciPool(s);
  }

  /** The server's undici Pool, made (and undici loaded) the first time one is needed. */
  undiciPool(server: Server): Pool {
    const cfg = this.cfg;
    server.pool ??= new (undici().Pool)(server.origin, {
      connections: cfg.connections,
      pipelining: 1,
      keepAliveTimeout: cfg.keepAliveTimeoutMs,
      connect: { timeout: cfg.connectTimeoutMs },
      headersTimeout: cfg.responseTimeoutMs,
      bodyTimeout: cfg.idleTimeoutMs,
    });
    return server.pool;
  }

  forward(req: UpstreamRequest, sink: ResponseSink): void {
    if (this.closed) {
      sink.onResponseError(new UpstreamError('M2GW_SHUTTING_DOWN', `upstream ${this.name} is closed`, 'connect'));
      return;
    }
    this.inFlight++;
    const server = this.pick(null);
    const body = req.body;
    if (server.direct !== null && req.upgrade === undefined && (body === null || body.kind === 'buffer')) {
      new DirectAttempt(this, req, sink, body === null || body.data.length === 0 ? null : body.data).run(server);
    } else {
      new UndiciAttempt(this, req, sink).run(server);
    }
  }

  viaUndici(req: UpstreamRequest, sink: ResponseSink, server: DirectServer, attempts: number): void {
    new UndiciAttempt(this, req, sink, attempts).run(server as Server);
  }

  get retries(): number {
    return this.cfg.retries;
  }

  sinkError(err: unknown): void {
    this.log.error('response sink threw (a bug): the request was ended', { upstream: this.name, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  }

  /** Round-robin over servers in rotation; if all are out, the one that comes back soonest. */
  pick(exclude: DirectServer | null): Server {
    const now = Date.now();
    const n = this.servers.length;
    for (let i = 0; i < n; i++) {
      const s = this.servers[(this.next + i) % n]!;
      if (s.downUntil <= now && s !== exclude) {
        this.next = (this.next + i + 1) % n;
        return s;
      }
    }
    let best = this.servers[0]!;
    for (const s of this.servers) if (s !== exclude && s.downUntil < best.downUntil) best = s;
    return best;
  }

  markDown(server: DirectServer, err: Error): void {
    if (server.downUntil <= Date.now()) {
      this.log.warn('upstream server out of rotation', { upstream: this.name, server: server.origin, for_ms: this.cfg.failTimeoutMs, error: err.message });
    }
    server.downUntil = Date.now() + this.cfg.failTimeoutMs;
  }

  markUp(server: DirectServer): void {
    if (server.downUntil !== 0) {
      server.downUntil = 0;
      this.log.info('upstream server back in rotation', { upstream: this.name, server: server.origin });
    }
  }

  get config(): HttpUpstreamConfig {
    return this.cfg;
  }

  get serverCount(): number {
    return this.servers.length;
  }

  done(): void {
    this.inFlight--;
  }

  health(): UpstreamHealth {
    const now = Date.now();
    let busy = 0;
    let idle = 0;
    let queued = 0;
    for (const s of this.servers) {
      if (s.pool !== null) {
        const st = s.pool.stats;
        busy += st.running;
        idle += Math.max(0, st.connected - st.running);
        queued += st.pending;
      }
      if (s.direct !== null) {
        const d = s.direct.stats;
        busy += d.busy;
        idle += d.idle;
        queued += d.queued;
      }
    }
    const servers = this.servers.map((s) => ({ address: s.origin, healthy: s.downUntil <= now }));
    return {
      name: this.name,
      type: 'http',
      healthy: servers.some((s) => s.healthy),
      servers,
      inFlight: this.inFlight,
      queued,
      // Up to `connections` per server for each client (direct and undici).
      connections: { busy, idle, max: this.servers.reduce((n, s) => n + this.cfg.connections * (s.direct !== null ? 2 : 1), 0) },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.servers.flatMap((s) => [s.pool?.close().catch(() => undefined), s.direct?.close()]));
  }

  async destroy(): Promise<void> {
    this.closed = true;
    for (const s of this.servers) s.direct?.destroy();
    await Promise.all(this.servers.map((s) => s.pool?.destroy().catch(() => undefined)));
  }
}
