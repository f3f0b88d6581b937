/**
 * [gateway], [admin], [log], [[handler]] and [[route]]: each read with defaults from
 * schema.ts applied, problems filed under the key the user wrote.
 */
import { DEFAULTS, type GatewaySection, type HandlerConfig, type LogConfig, type RouteConfig } from './schema.js';
import { checkZmqSpec } from './addresses.js';
import { describeValue } from './units.js';
import type { TableReader } from './table-reader.js';

export function readGateway(t: TableReader | null): GatewaySection {
  const d = DEFAULTS.gateway;
  if (t === null) return { ...d };
  const section: GatewaySection = {
    workers: readWorkers(t) ?? d.workers,
    spareWorker: t.boolean('spare_worker') ?? d.spareWorker,
    drainTimeoutMs: t.duration('drain_timeout', { allowZero: true }) ?? d.drainTimeoutMs,
    pidFile: t.filePath('pid_file') ?? d.pidFile,
    maxInFlight: t.integer('max_in_flight', { min: 1 }) ?? d.maxInFlight,
    maxWebsockets: t.integer('max_websockets', { min: 0 }) ?? d.maxWebsockets,
  };
  t.reportUnknownKeys();
  return section;
}

function readWorkers(t: TableReader): number | 'auto' | undefined {
  const v = t.get('workers');
  if (v === undefined || v === 'auto') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1) return v;
  t.error('workers', `must be "auto" or an integer >= 1, got ${describeValue(v)}`);
  return undefined;
}

export function readLog(t: TableReader | null): LogConfig {
  const d = DEFAULTS.log;
  if (t === null) return { ...d };
  const log: LogConfig = {
    level: t.oneOf('level', ['error', 'warn', 'info', 'debug'] as const) ?? d.level,
    format: t.oneOf('format', ['json', 'text'] as const) ?? d.format,
    file: t.filePath('file') ?? d.file,
    accessLog: t.boolean('access_log') ?? d.accessLog,
  };
  t.reportUnknownKeys();
  return log;
}

export function readHandlers(root: TableReader): HandlerConfig[] {
  const tables = root.tables('handler');
  if (tables === null || tables.length === 0) {
    if (tables !== null || !root.has('handler')) {
      root.error('handler', 'at least one [[handler]] is required (send_spec and recv_spec from mongrel2.conf)');
    }
    return [];
  }
  const handlers = tables.map(readHandler);
  const seen = new Map<string, number>();
  handlers.forEach((h, i) => {
    const t = tables[i];
    if (h === null || t === undefined) return;
    if (h.sendSpec === h.recvSpec) t.error('recv_spec', 'must differ from send_spec (Mongrel2 binds both)');
    const first = seen.get(h.sendSpec);
    if (first !== undefined) t.error('send_spec', `handler[${first}] already uses "${h.sendSpec}"`);
    else seen.set(h.sendSpec, i);
  });
  return handlers.filter((h): h is HandlerConfig => h !== null);
}

function readHandler(t: TableReader): HandlerConfig | null {
  const d = DEFAULTS.handler;
  const spec = (key: 'send_spec' | 'recv_spec', example: string): string | undefined => {
    const v = t.string(key, { required: `Mongrel2's Handler ${key}, e.g. "${example}"` });
    if (v === undefined) return undefined;
    const problem = checkZmqSpec(v);
    if (problem !== null) t.error(key, problem);
    return problem === null ? v : undefined;
  };
  const sendSpec = spec('send_spec', 'tcp://127.0.0.1:9997');
  const recvSpec = spec('recv_spec', 'tcp://127.0.0.1:9996');
  let recvIdent = t.string('recv_ident', { allowEmpty: true }) ?? d.recvIdent;
  if (recvIdent !== '' && !/^[A-Za-z0-9-]+$/.test(recvIdent)) {
    // Replies start with it, and Mongrel2's handler parser drops any reply whose first token is
    // not [A-Za-z0-9-]+ (so its own recv_ident must be such a token to be of any use).
    t.error('recv_ident', `must be letters, digits and "-" only: Mongrel2 drops replies starting with anything else, got "${recvIdent}"`);
    recvIdent = d.recvIdent;
  }
  const chroot = t.filePath('chroot') ?? d.chroot;
  const uploadTempStore = t.string('upload_temp_store') ?? d.uploadTempStore;
  if (!uploadTempStore.startsWith('/') || !uploadTempStore.endsWith('XXXXXX')) {
    t.error('upload_temp_store', `must be Mongrel2's upload.temp_store: an absolute path (inside the chroot) ending in XXXXXX, got "${uploadTempStore}"`);
  }
  const keepAliveMs = t.duration('keepalive', { allowZero: true }) ?? d.keepAliveMs;
  const sendTimeoutMs = t.duration('send_timeout', { allowZero: true }) ?? d.sendTimeoutMs;
  const uploadOwner = t.integer('upload_owner', { min: 0, max: 2 ** 32 - 2 }) ?? d.uploadOwner;
  t.reportUnknownKeys((k) =>
    k === 'send_ident' ? 'is not needed: m2gw takes the sender id from each request (remove it)' : undefined,
  );
  if (sendSpec === undefined || recvSpec === undefined) return null;
  return { sendSpec, recvSpec, recvIdent, chroot, uploadTempStore, keepAliveMs, sendTimeoutMs, ...(uploadOwner !== null ? { uploadOwner } : {}) };
}

/** Routes are checked against the upstream names; `upstreams` holds every name defined (even invalid ones). */
export function readRoutes(root: TableReader, upstreams: ReadonlySet<string>): RouteConfig[] {
  const tables = root.tables('route');
  if (tables === null) {
    if (!root.has('route')) root.warn('route', 'no [[route]] is defined: every request will get 404');
    return [];
  }
  const routes: RouteConfig[] = [];
  const seen = new Map<string, number>();
  tables.forEach((t, i) => {
    const r = readRoute(t, upstreams);
    if (r === null) return;
    const id = `${r.host ?? ''} ${r.prefix}`;
    const first = seen.get(id);
    if (first !== undefined) {
      const on = r.host === null ? 'any host' : `host "${r.host}"`;
      t.error('prefix', `duplicate route: route[${first}] already has prefix "${r.prefix}" on ${on}`);
    } else {
      seen.set(id, i);
    }
    routes.push(r);
  });
  return routes;
}

function readRoute(t: TableReader, upstreams: ReadonlySet<string>): RouteConfig | null {
  const d = DEFAULTS.route;
  let prefix = t.string('prefix', { required: 'the path prefix to match, e.g. "/" or "/app/"' });
  if (prefix !== undefined && !prefix.startsWith('/')) {
    t.error('prefix', `must start with "/", got "${prefix}"`);
    prefix = undefined;
  } else if (prefix !== undefined && /[\s?#]/.test(prefix)) {
    t.error('prefix', `must be a plain path (no spaces, "?" or "#"), got "${prefix}"`);
    prefix = undefined;
  }
  const host = t.string('host');
  const badHost = host !== undefined && /[\s/]/.test(host);
  if (badHost) t.error('host', `must be a host name such as "example.com", got "${host}"`);
  let upstream = t.string('upstream', { required: 'the name of an [upstream.NAME] table' });
  if (upstream !== undefined && !upstreams.has(upstream)) {
    const known = upstreamList(upstreams);
    t.error('upstream', `no upstream named "${upstream}" (defined: ${known === '' ? 'none' : known})`);
    upstream = undefined;
  }
  const route = {
    host: host === undefined ? null : host.toLowerCase(),
    stripPrefix: t.boolean('strip_prefix') ?? d.stripPrefix,
    maxBodyBytes: t.size('max_body') ?? d.maxBodyBytes,
    preserveHost: t.boolean('preserve_host') ?? d.preserveHost,
    websocket: t.boolean('websocket') ?? d.websocket,
  };
  t.reportUnknownKeys();
  if (prefix === undefined || upstream === undefined || badHost) return null;
  return { prefix, upstream, ...route };
}

const listed = new WeakMap<ReadonlySet<string>, string>();

/**
 * A few of the names, built once per set: every route naming an unknown upstream lists them, and
 * listing all of them each time was quadratic in the file.
 */
function upstreamList(upstreams: ReadonlySet<string>): string {
  let text = listed.get(upstreams);
  if (text === undefined) {
    const shown: string[] = [];
    for (const n of upstreams) {
      if (shown.length === 10) break;
      shown.push(`"${n}"`);
    }
    text = shown.join(', ') + (upstreams.size > 10 ? ` and ${upstreams.size - 10} more` : '');
    listed.set(upstreams, text);
  }
  return text;
}
