/**
 * [upstream.NAME] tables, http or fastcgi, plus the sizing warnings that compare a
 * fastcgi upstream with its PHP-FPM pool.
 */
import fs from 'node:fs';
import { DEFAULTS, type FastcgiUpstreamConfig, type HttpUpstreamConfig, type UpstreamConfig } from './schema.js';
import { checkHttpUrl, normaliseFastcgiAddress } from './addresses.js';
import { readFpmPool } from './fpm-pool.js';
import type { TableReader } from './table-reader.js';

const HTTP_KEYS = [
  'type', 'url', 'urls', 'connections', 'connect_timeout', 'response_timeout', 'idle_timeout',
  'keepalive_timeout', 'fail_timeout', 'retries', 'websocket_ping_interval', 'websocket_max_message',
  'websocket_idle_timeout',
] as const;
const FASTCGI_KEYS = [
  'type', 'address', 'document_root', 'index', 'front_controller', 'serve_static', 'deny', 'max_connections',
  'pipeline', 'queue_timeout', 'queue_size', 'retries', 'connect_timeout', 'response_timeout', 'idle_timeout', 'params',
  'script_extension', 'fpm_pool_config',
] as const;

const NAME = /^[A-Za-z0-9_-]+$/;

export interface UpstreamsRead {
  /** Only the upstreams that validated. */
  readonly upstreams: Record<string, UpstreamConfig>;
  /** Every name defined, valid or not, so routes to a broken upstream do not also report "unknown upstream". */
  readonly names: ReadonlySet<string>;
}

export function readUpstreams(root: TableReader): UpstreamsRead {
  const entries: [string, UpstreamConfig][] = [];
  const names = new Set<string>();
  const section = root.table('upstream');
  if (section === null) return { upstreams: {}, names };
  for (const name of Object.keys(section.raw)) {
    section.allow(name);
    names.add(name);
    if (!NAME.test(name)) {
      section.error(name, `upstream names may use only letters, digits, "_" and "-", got "${name}"`);
    }
    const t = section.table(name);
    if (t === null) continue;
    const u = readUpstream(t, name);
    if (u !== null && NAME.test(name)) entries.push([name, u]);
  }
  warnSharedFpmPools(section, entries);
  return { upstreams: Object.fromEntries(entries), names };
}

/**
 * Every kept-alive FastCGI connection pins a PHP-FPM child, so upstreams that share one
 * pool (same address) together hold up to the sum of their max_connections children.
 */
function warnSharedFpmPools(section: TableReader, entries: ReadonlyArray<[string, UpstreamConfig]>): void {
  const byAddress = new Map<string, Array<[string, number]>>();
  for (const [name, u] of entries) {
    if (u.type !== 'fastcgi') continue;
    const list = byAddress.get(u.address) ?? [];
    list.push([name, u.maxConnections]);
    byAddress.set(u.address, list);
  }
  for (const [address, list] of byAddress) {
    if (list.length < 2) continue;
    const sum = list.reduce((n, [, c]) => n + c, 0);
    const [last] = list[list.length - 1]!;
    section.warn(
      last,
      `upstreams ${list.map(([n]) => n).join(', ')} share the PHP-FPM pool at ${address}: ` +
        `together they keep up to ${sum} connections, each pinning a child; keep ${sum} ≤ pm.max_children`,
    );
  }
}

function readUpstream(t: TableReader, name: string): UpstreamConfig | null {
  const type = t.oneOf('type', ['http', 'fastcgi'] as const);
  if (type === undefined) {
    if (!t.has('type')) t.error('type', 'is required: "http" or "fastcgi"');
    // Without a type we cannot tell which keys belong; judging them would only add noise.
    t.allow(...HTTP_KEYS, ...FASTCGI_KEYS);
    t.reportUnknownKeys();
    return null;
  }
  const u = type === 'http' ? readHttp(t, name) : readFastcgi(t, name);
  const other: readonly string[] = type === 'http' ? FASTCGI_KEYS : HTTP_KEYS;
  t.reportUnknownKeys((k) =>
    other.includes(k) ? `is a ${type === 'http' ? 'fastcgi' : 'http'} setting; this upstream has type = "${type}"` : undefined,
  );
  return u;
}

function readHttp(t: TableReader, name: string): HttpUpstreamConfig | null {
  const d = DEFAULTS.http;
  const urls = readUrls(t);
  const rest = {
    connections: t.integer('connections', { min: 1 }) ?? d.connections,
    connectTimeoutMs: t.duration('connect_timeout') ?? d.connectTimeoutMs,
    responseTimeoutMs: t.duration('response_timeout') ?? d.responseTimeoutMs,
    idleTimeoutMs: t.duration('idle_timeout') ?? d.idleTimeoutMs,
    keepAliveTimeoutMs: t.duration('keepalive_timeout') ?? d.keepAliveTimeoutMs,
    failTimeoutMs: t.duration('fail_timeout', { allowZero: true }) ?? d.failTimeoutMs,
    retries: t.integer('retries', { min: 0 }) ?? d.retries,
    websocketPingIntervalMs: t.duration('websocket_ping_interval') ?? d.websocketPingIntervalMs,
    websocketMaxMessageBytes: t.size('websocket_max_message') ?? d.websocketMaxMessageBytes,
    websocketIdleTimeoutMs: t.duration('websocket_idle_timeout') ?? d.websocketIdleTimeoutMs,
  };
  return urls === null ? null : { type: 'http', name, urls, ...rest };
}

function readUrls(t: TableReader): string[] | null {
  const hasUrl = t.has('url');
  const hasUrls = t.has('urls');
  const url = t.string('url');
  const urls = t.stringArray('urls');
  if (hasUrl && hasUrls) {
    t.error('urls', 'give either url or urls, not both');
    return null;
  }
  if (!hasUrl && !hasUrls) {
    t.error('url', 'is required: the server\'s base URL, e.g. "http://127.0.0.1:3000" (or urls = [...] for several)');
    return null;
  }
  if (hasUrl) {
    if (url === undefined) return null;
    const problem = checkHttpUrl(url);
    if (problem !== null) t.error('url', problem);
    return problem === null ? [url] : null;
  }
  if (urls === undefined) return null;
  if (urls.length === 0) {
    t.error('urls', 'must list at least one URL');
    return null;
  }
  let ok = true;
  const seen = new Set<string>();
  urls.forEach((u, i) => {
    const problem = checkHttpUrl(u) ?? (seen.has(u) ? `"${u}" is listed twice` : null);
    seen.add(u);
    if (problem !== null) {
      t.ctx.problems.error(`${t.keyPath('urls')}[${i}]`, problem);
      ok = false;
    }
  });
  return ok ? urls : null;
}

function readFastcgi(t: TableReader, name: string): FastcgiUpstreamConfig | null {
  const d = DEFAULTS.fastcgi;
  let address: string | undefined;
  const rawAddress = t.string('address', { required: '"host:port" or "unix:/path/to/php-fpm.sock"' });
  if (rawAddress !== undefined) {
    const r = normaliseFastcgiAddress(rawAddress, t.ctx.baseDir);
    if ('problem' in r) t.error('address', r.problem);
    else address = r.address;
  }
  const documentRoot = t.filePath('document_root', { required: 'the directory PHP scripts are served from' });
  if (documentRoot !== undefined) checkDocumentRoot(t, documentRoot);

  const index = t.string('index') ?? d.index;
  if (index.includes('/')) t.error('index', `must be a file name without "/", got "${index}"`);
  const scriptExtension = t.string('script_extension') ?? d.scriptExtension;
  if (!scriptExtension.startsWith('.')) t.error('script_extension', `must start with ".", e.g. ".php", got "${scriptExtension}"`);
  const deny = t.stringArray('deny') ?? [...d.deny];
  deny.forEach((p, i) => {
    if (!p.startsWith('/')) t.ctx.problems.error(`${t.keyPath('deny')}[${i}]`, `must start with "/" (relative to document_root), got "${p}"`);
  });

  const u = {
    type: 'fastcgi' as const,
    name,
    index,
    frontController: t.string('front_controller') ?? d.frontController,
    serveStatic: t.boolean('serve_static') ?? d.serveStatic,
    deny,
    maxConnections: t.integer('max_connections', { min: 1 }) ?? d.maxConnections,
    pipeline: t.integer('pipeline', { min: 1 }) ?? d.pipeline,
    queueTimeoutMs: t.duration('queue_timeout', { allowZero: true }) ?? d.queueTimeoutMs,
    queueSize: t.integer('queue_size', { min: 0 }) ?? d.queueSize,
    retries: t.integer('retries', { min: 0 }) ?? d.retries,
    connectTimeoutMs: t.duration('connect_timeout') ?? d.connectTimeoutMs,
    responseTimeoutMs: t.duration('response_timeout') ?? d.responseTimeoutMs,
    idleTimeoutMs: t.duration('idle_timeout') ?? d.idleTimeoutMs,
    params: t.stringMap('params') ?? {},
    scriptExtension,
  };
  const pool = t.filePath('fpm_pool_config');
  if (pool !== undefined) checkFpmPool(t, pool, u.maxConnections, u.pipeline);
  if (address === undefined || documentRoot === undefined) return null;
  return { ...u, address, documentRoot };
}

function checkDocumentRoot(t: TableReader, dir: string): void {
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(dir);
  } catch {
    t.warn('document_root', `${dir} does not exist (yet?)`);
    return;
  }
  if (!stat.isDirectory()) t.warn('document_root', `${dir} is not a directory`);
}

function checkFpmPool(t: TableReader, file: string, maxConnections: number, pipeline: number): void {
  const pool = readFpmPool(file);
  if (pool.kind === 'missing') {
    t.warn('fpm_pool_config', `${file} does not exist: cannot compare max_connections with pm.max_children`);
    return;
  }
  if (pool.kind === 'unreadable') {
    t.warn('fpm_pool_config', `cannot read ${file}: ${pool.message}`);
    return;
  }
  if (pool.maxChildren === null) {
    const what = pool.raw === null ? 'has no pm.max_children' : `has pm.max_children = ${pool.raw}, not a number`;
    t.warn('fpm_pool_config', `${file} ${what}: cannot compare it with max_connections`);
    return;
  }
  // A pipelined connection still occupies exactly one child, so the bound is max_connections × 1.
  if (maxConnections > pool.maxChildren) {
    const key = t.has('max_connections') ? 'max_connections' : 'fpm_pool_config';
    const pipelined =
      pipeline > 1 ? ` (pipeline = ${pipeline} does not raise the need: requests written ahead wait on the same child)` : '';
    t.warn(
      key,
      `max_connections = ${maxConnections} but ${file} has pm.max_children = ${pool.maxChildren}: ` +
        `a held keep-alive connection pins a PHP-FPM child: keep max_connections ≤ pm.max_children${pipelined}`,
    );
  }
}
