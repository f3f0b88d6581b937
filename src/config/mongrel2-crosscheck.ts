/**
 * gw.toml against Mongrel2's compiled config: every way the two can disagree, filed
 * under the gw.toml key (and so its line) that would have to change. Pure: both
 * configs are already read.
 *
 * Why each check matters (all of these fail silently at run time):
 * - handler specs: Mongrel2 PUSHes requests to send_spec and nobody PULLs them; the
 *   browser hangs. recv_spec/recv_ident: replies are published where Mongrel2 does not
 *   listen (or filtered out by its subscription), so again the browser hangs.
 * - chroot / upload.temp_store: Mongrel2 names upload files by its temp_store inside its
 *   chroot; m2gw only reads files that fit its own template under its chroot, so any
 *   difference turns every large upload into an error.
 * - download.flow_control off: Mongrel2 drops a slow client with more than 16 queued
 *   replies, and m2gw cannot see how fast clients read.
 * - limits.content_length without upload.temp_store: Mongrel2 refuses larger bodies
 *   itself, so a route's max_body above it is never reached.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import type { KeyLines } from './key-lines.js';
import type { Mongrel2Db, Mongrel2Handler, Mongrel2Route } from './mongrel2-db.js';
import { Problems } from './problems.js';
import type { Config, HandlerConfig } from './schema.js';

/** Mongrel2's defaults when a setting is absent (src/setting.h, 1.12). */
const M2_CONTENT_LENGTH_DEFAULT = 20 * 1024;

export function crossCheckMongrel2(config: Config, m2: Mongrel2Db, lines: KeyLines | null): ConfigProblem[] {
  const problems = new Problems(lines);
  const served = new Set<Mongrel2Handler>();
  config.handlers.forEach((h, i) => {
    const match = checkHandlerSpecs(h, i, m2, problems);
    if (match !== null) {
      served.add(match);
      checkServedHandler(h, i, match, m2, problems);
    }
  });
  for (const r of m2.routes) {
    if (r.targetType !== 'handler' || r.handler === null || served.has(r.handler)) continue;
    problems.warn(
      'handler',
      `Mongrel2 sends ${describeRoute(r)} to the Handler with send_spec "${r.handler.sendSpec}", recv_spec "${r.handler.recvSpec}", ` +
        'which no [[handler]] here serves: those requests hang unless another program serves that Handler',
    );
  }
  checkSettings(config, m2, problems);
  return problems.sorted();
}

/** The Mongrel2 Handler this [[handler]] talks to, or null (with the problem filed). */
function checkHandlerSpecs(h: HandlerConfig, i: number, m2: Mongrel2Db, problems: Problems): Mongrel2Handler | null {
  const key = `handler[${i}]`;
  const bySend = m2.handlers.filter((m) => specMatches(m.sendSpec, h.sendSpec));
  if (bySend.length === 0) {
    problems.error(
      `${key}.send_spec`,
      `no Mongrel2 Handler has send_spec "${h.sendSpec}" (${listHandlers(m2)}): m2gw would wait for requests that never come`,
    );
    return null;
  }
  const match = bySend.find((m) => specMatches(m.recvSpec, h.recvSpec));
  if (match === undefined) {
    const theirs = bySend.map((m) => `"${m.recvSpec}"`).join(', ');
    problems.error(
      `${key}.recv_spec`,
      `Mongrel2's Handler with send_spec "${h.sendSpec}" has recv_spec ${theirs}: replies would never reach Mongrel2 and clients hang`,
    );
    return null;
  }
  if (match.recvIdent !== h.recvIdent) {
    problems.error(
      `${key}.recv_ident`,
      `is "${h.recvIdent}" but Mongrel2's Handler has recv_ident "${match.recvIdent}": Mongrel2 would drop every reply`,
    );
  }
  return match;
}

function checkServedHandler(h: HandlerConfig, i: number, match: Mongrel2Handler, m2: Mongrel2Db, problems: Problems): void {
  const key = `handler[${i}]`;
  const routes = m2.routes.filter((r) => r.handler === match);
  if (routes.length === 0) {
    problems.warn(key, `no Mongrel2 route sends requests to the Handler with send_spec "${h.sendSpec}"`);
  }
  const servers = [...new Set(routes.map((r) => r.server))];
  for (const s of servers) {
    const relative = !path.isAbsolute(s.chroot);
    // mongrel2 is normally started from the directory that holds its config.sqlite.
    const hostPath = path.resolve(path.dirname(m2.file), s.chroot);
    if (samePath(hostPath, h.chroot)) continue;
    const where = relative ? ` (taken from the directory of ${path.basename(m2.file)}: ${hostPath})` : '';
    const message = `is "${h.chroot}" but Mongrel2 server "${s.name || s.uuid}" has chroot "${s.chroot}"${where}: upload files would not be found`;
    if (relative) problems.warn(`${key}.chroot`, `${message} (fine only if mongrel2 runs from ${h.chroot})`);
    else problems.error(`${key}.chroot`, message);
  }
  const store = m2.settings.get('upload.temp_store');
  if (store === undefined || store === '') return;
  if (store !== h.uploadTempStore) {
    problems.error(
      `${key}.upload_temp_store`,
      `is "${h.uploadTempStore}" but Mongrel2's upload.temp_store is "${store}": m2gw would refuse every upload file as not Mongrel2's`,
    );
  } else if (servers.length > 0) {
    const dir = path.join(h.chroot, path.dirname(store));
    if (!isDirectory(dir)) problems.warn(`${key}.upload_temp_store`, `${dir} does not exist: Mongrel2 cannot write upload files there`);
  }
}

function checkSettings(config: Config, m2: Mongrel2Db, problems: Problems): void {
  const flow = m2.settings.get('download.flow_control');
  if (flow === undefined || Number(flow) === 0) {
    problems.warn(
      'handler',
      `Mongrel2's download.flow_control is ${flow === undefined ? 'not set (off)' : `"${flow}" (off)`}: set "download.flow_control": 1 ` +
        'in mongrel2.conf, or Mongrel2 drops slow clients with more than 16 queued replies and m2gw cannot pace them',
    );
  }
  const store = m2.settings.get('upload.temp_store');
  if (store !== undefined && store !== '') return;
  const limitText = m2.settings.get('limits.content_length');
  const limit = limitText === undefined ? M2_CONTENT_LENGTH_DEFAULT : Number(limitText);
  if (!Number.isFinite(limit)) return;
  config.routes.forEach((r, i) => {
    if (r.maxBodyBytes <= limit) return;
    problems.warn(
      `route[${i}].max_body`,
      `is ${formatSize(r.maxBodyBytes)} but Mongrel2 refuses bodies over limits.content_length = ${limit} bytes itself ` +
        '(no upload.temp_store is set): set upload.temp_store in mongrel2.conf, or lower max_body',
    );
  });
}

/**
 * Does Mongrel2's bind spec accept m2gw's connect spec? A bind on "*" or 0.0.0.0 takes
 * any address of the port; loopback names are one host.
 */
export function specMatches(bindSpec: string, connectSpec: string): boolean {
  if (bindSpec === connectSpec) return true;
  const b = tcpParts(bindSpec);
  const c = tcpParts(connectSpec);
  if (b === null || c === null || b.port !== c.port) return false;
  if (b.host === '*' || b.host === '0.0.0.0' || b.host === '[::]' || b.host === '::') return true;
  return isLoopback(b.host) && isLoopback(c.host);
}

function tcpParts(spec: string): { host: string; port: string } | null {
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(spec);
  return m ? { host: (m[1] ?? '').toLowerCase(), port: m[2] ?? '' } : null;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** 104857600 → "100MiB"; sizes that are no whole unit stay in bytes. */
function formatSize(bytes: number): string {
  for (const [unit, size] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes} bytes`;
}

function samePath(a: string, b: string): boolean {
  return path.resolve(a) === path.resolve(b);
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function listHandlers(m2: Mongrel2Db): string {
  if (m2.handlers.length === 0) return 'it has no Handler at all';
  return `its Handlers: ${m2.handlers.map((m) => `"${m.sendSpec}"`).join(', ')}`;
}

function describeRoute(r: Mongrel2Route): string {
  return `route "${r.path}" of host "${r.hostName}" (server "${r.server.name || r.server.uuid}")`;
}
