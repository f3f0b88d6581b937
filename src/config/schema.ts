/**
 * The validated, frozen shape of a gw.toml. TOML keys are snake_case (as users
 * write them); these types are what the rest of the code reads. Durations are in
 * milliseconds, sizes in bytes. Defaults live in one place: DEFAULTS below.
 */

export interface HandlerConfig {
  /** Mongrel2's send_spec (Mongrel2 binds a PUSH, m2gw connects a PULL). */
  readonly sendSpec: string;
  /** Mongrel2's recv_spec (Mongrel2 binds a SUB, m2gw connects a PUB). */
  readonly recvSpec: string;
  /** Mongrel2's recv_ident; replies are prefixed with it when non-empty so only this server takes them. */
  readonly recvIdent: string;
  /** Host path of the Mongrel2 chroot: async-upload paths are resolved under it. */
  readonly chroot: string;
  /**
   * Mongrel2's upload.temp_store template (chroot-relative, ends in XXXXXX). Upload paths
   * that could not have come from it are refused: clients can send x-mongrel2-upload-* headers.
   */
  readonly uploadTempStore: string;
  /**
   * Quiet time after which an open request sends Mongrel2 `["ctl", {"keep-alive": 1}]`, so
   * long polls and SSE outlive its limits.min_ping. Must be below that min_ping; 0 = never.
   */
  readonly keepAliveMs: number;
  /**
   * With download.flow_control: how long a client whose response is open may leave the bytes
   * sent to it unread (no credits back) before it is dropped and its upstream let go (nginx's
   * send_timeout). 0 = never.
   */
  readonly sendTimeoutMs: number;
  /**
   * The uid Mongrel2 writes upload files as, when set; otherwise a file must be owned by the
   * chroot directory's owner (whom Mongrel2 started as root runs as) or by m2gw's own uid.
   */
  readonly uploadOwner?: number | null;
}

export interface HttpUpstreamConfig {
  readonly type: 'http';
  readonly name: string;
  /** Base URLs (scheme://host:port, optional path prefix). One or more. */
  readonly urls: readonly string[];
  /** Connections per server. */
  readonly connections: number;
  readonly connectTimeoutMs: number;
  /** Until the response head arrives (then 504). */
  readonly responseTimeoutMs: number;
  /** Longest silence while a body streams. */
  readonly idleTimeoutMs: number;
  /** How long a kept-alive idle upstream connection is kept. */
  readonly keepAliveTimeoutMs: number;
  /** A server that failed to connect is out of rotation this long. */
  readonly failTimeoutMs: number;
  /** Retries on another server, for what upstream/lifecycle.ts allows (a connect failure). */
  readonly retries: number;
  /** A WebSocket client silent this long is pinged; no pong within as long again: close 1001. */
  readonly websocketPingIntervalMs: number;
  /** Largest WebSocket message either way (1009 beyond). Also bounds the bytes queued toward the upstream. */
  readonly websocketMaxMessageBytes: number;
  /** No message either way for this long: close 1001. */
  readonly websocketIdleTimeoutMs: number;
}

export interface FastcgiUpstreamConfig {
  readonly type: 'fastcgi';
  readonly name: string;
  /** "host:port" or "unix:/path/to.sock". */
  readonly address: string;
  readonly documentRoot: string;
  readonly index: string;
  readonly frontController: string | null;
  readonly serveStatic: boolean;
  /** Path prefixes (relative to document_root, starting with '/') never served nor executed. */
  readonly deny: readonly string[];
  readonly maxConnections: number;
  /** Requests written ahead onto a busy kept-alive connection (1 = strictly one at a time). */
  readonly pipeline: number;
  readonly queueTimeoutMs: number;
  /** Longest wait queue before 503. */
  readonly queueSize: number;
  /** Retries on a new connection, for what upstream/lifecycle.ts allows. */
  readonly retries: number;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly params: Readonly<Record<string, string>>;
  /** Only files with this extension are executed (default ".php"). */
  readonly scriptExtension: string;
}

export type UpstreamConfig = HttpUpstreamConfig | FastcgiUpstreamConfig;

export interface RouteConfig {
  readonly prefix: string;
  /** Match only this Host (case-insensitive, port ignored); null = any host. */
  readonly host: string | null;
  readonly upstream: string;
  readonly stripPrefix: boolean;
  readonly maxBodyBytes: number;
  /** Keep the client's Host header toward HTTP upstreams (default true). */
  readonly preserveHost: boolean;
  /** Carry WebSocket handshakes to the upstream (default true); false: refuse them with 400. */
  readonly websocket: boolean;
}

export interface LogConfig {
  readonly level: 'error' | 'warn' | 'info' | 'debug';
  readonly format: 'json' | 'text';
  /** Log file path; null = stdout. Reopened on SIGUSR1. */
  readonly file: string | null;
  readonly accessLog: boolean;
}

export interface GatewaySection {
  readonly workers: number | 'auto';
  /**
   * Keep one pre-forked worker with its code loaded, so a crashed worker's replacement or a
   * reload's new generation starts in milliseconds instead of ~0.3 s. Costs ~70 MiB of RSS.
   */
  readonly spareWorker: boolean;
  readonly drainTimeoutMs: number;
  readonly pidFile: string | null;
  /** Most requests in flight per process before new ones get 503. */
  readonly maxInFlight: number;
  /** Most open WebSockets per process before new handshakes get 503. */
  readonly maxWebsockets: number;
}

export interface AdminConfig {
  readonly listen: string;
  /** A non-loopback listen was allowed explicitly (a token is then required). */
  readonly allowRemote: boolean;
  /** Bearer token every admin request must carry (from token or token_file), or null. */
  readonly token: string | null;
}

export interface Config {
  /** Absolute path of the file it came from. */
  readonly file: string;
  readonly handlers: readonly HandlerConfig[];
  readonly upstreams: Readonly<Record<string, UpstreamConfig>>;
  readonly routes: readonly RouteConfig[];
  readonly gateway: GatewaySection;
  readonly admin: AdminConfig | null;
  readonly log: LogConfig;
}

export const DEFAULTS = {
  http: {
    connections: 64,
    connectTimeoutMs: 5_000,
    responseTimeoutMs: 60_000,
    idleTimeoutMs: 60_000,
    keepAliveTimeoutMs: 4_000,
    failTimeoutMs: 10_000,
    retries: 1,
    websocketPingIntervalMs: 30_000,
    websocketMaxMessageBytes: 16 * 1024 * 1024,
    websocketIdleTimeoutMs: 3_600_000,
  },
  fastcgi: {
    index: 'index.php',
    frontController: null,
    serveStatic: false,
    deny: [] as string[],
    maxConnections: 8,
    pipeline: 4,
    queueTimeoutMs: 5_000,
    queueSize: 1024,
    retries: 1,
    connectTimeoutMs: 5_000,
    responseTimeoutMs: 60_000,
    idleTimeoutMs: 60_000,
    scriptExtension: '.php',
  },
  route: {
    stripPrefix: false,
    maxBodyBytes: 100 * 1024 * 1024,
    preserveHost: true,
    websocket: true,
  },
  handler: {
    recvIdent: '',
    chroot: '/',
    uploadTempStore: '/tmp/upload.XXXXXX',
    keepAliveMs: 20_000,
    sendTimeoutMs: 60_000,
    uploadOwner: null as number | null,
  },
  gateway: {
    workers: 1 as number | 'auto',
    spareWorker: true,
    drainTimeoutMs: 30_000,
    pidFile: null,
    maxInFlight: 10_000,
    maxWebsockets: 10_000,
  },
  log: {
    level: 'info' as const,
    format: 'json' as const,
    file: null,
    accessLog: true,
  },
} as const;
