/**
 * What `/status` returns and `m2gw status` prints.
 */
import type { UpstreamHealth } from '../upstream/upstream.js';

export interface WorkerReport {
  readonly id: number;
  readonly pid: number;
  readonly generation: number;
  /** starting | active | retiring | stopping */
  readonly state: string;
  readonly uptimeSeconds: number;
  /** Connections the supervisor routes to this worker. */
  readonly connections: number;
  /** Null when the worker did not answer in time. */
  readonly inFlight: number | null;
  readonly connected: boolean | null;
}

export interface HandlerReport {
  readonly sendSpec: string;
  readonly recvSpec: string;
  /** The supervisor's PULL has a connection to Mongrel2. */
  readonly pullConnected: boolean;
  /** The supervisor's XPUB has Mongrel2's subscription. */
  readonly subscribed: boolean;
  /** Mongrel2's download.flow_control as requests show it (DOWNLOAD_CREDITS); null before any request. */
  readonly flowControl: boolean | null;
  /** Why the handler socket looks shared with another gateway, or null. */
  readonly sharedSocket: string | null;
  /** Control messages for connections this m2gw never saw. */
  readonly orphanControls: number;
  /** The worker that reads this PULL itself (process/pull-lending.ts), or null: the supervisor does. */
  readonly pullLentTo: number | null;
  /** Removed by a reload, finishing its connections before it disconnects. */
  readonly removing?: boolean;
}

export interface StatusReport {
  readonly pid: number;
  readonly version: string;
  readonly config: string;
  /** running | reloading | stopping */
  readonly state: string;
  readonly uptimeSeconds: number;
  readonly generation: number;
  readonly reloads: number;
  /** The latest SIGHUP's outcome (null before the first). */
  readonly lastReload: ReloadResult | null;
  readonly workerRestarts: number;
  readonly inFlight: number;
  readonly connections: number;
  readonly handlers: readonly HandlerReport[];
  readonly workers: readonly WorkerReport[];
  /** A pre-forked worker waiting to replace a dead one or start a new generation fast. */
  readonly sparePid: number | null;
  /** Per upstream, summed over the current generation's workers. */
  readonly upstreams: readonly UpstreamHealth[];
}

export interface ReloadResult {
  /** ISO time the reload finished. */
  readonly at: string;
  readonly result: 'ok' | 'invalid' | 'failed';
  readonly message: string;
}

export interface Readiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

/** Sum each upstream's health over workers (each worker has its own pools). */
export function mergeUpstreamHealth(perWorker: ReadonlyArray<readonly UpstreamHealth[]>): UpstreamHealth[] {
  const byName = new Map<string, UpstreamHealth>();
  for (const list of perWorker) {
    for (const h of list) {
      const prev = byName.get(h.name);
      if (!prev) {
        byName.set(h.name, { ...h, servers: h.servers.map((s) => ({ ...s })), connections: { ...h.connections } });
        continue;
      }
      const servers = prev.servers.map((s) => ({
        address: s.address,
        // A server counts as healthy when some worker can use it.
        healthy: s.healthy || h.servers.some((o) => o.address === s.address && o.healthy),
      }));
      byName.set(h.name, {
        name: h.name,
        type: h.type,
        healthy: prev.healthy || h.healthy,
        servers,
        inFlight: prev.inFlight + h.inFlight,
        queued: prev.queued + h.queued,
        connections: {
          busy: prev.connections.busy + h.connections.busy,
          idle: prev.connections.idle + h.connections.idle,
          max: prev.connections.max + h.connections.max,
        },
      });
    }
  }
  return [...byName.values()];
}

export function formatDuration(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts: string[] = [];
  if (d > 0) parts.push(`${d}d`);
  if (d > 0 || h > 0) parts.push(`${h}h`);
  if (d > 0 || h > 0 || m > 0) parts.push(`${m}m`);
  parts.push(`${s % 60}s`);
  return parts.join(' ');
}

/** Human-readable status for `m2gw status`. */
export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  lines.push(`m2gw ${r.version}  pid ${r.pid}  ${r.state}  up ${formatDuration(r.uptimeSeconds)}`);
  lines.push(`config ${r.config}  generation ${r.generation}  reloads ${r.reloads}  worker restarts ${r.workerRestarts}`);
  lines.push(`in flight ${r.inFlight}  connections ${r.connections}`);
  lines.push('');
  lines.push('handlers:');
  for (const h of r.handlers) {
    const pull = h.pullConnected ? `connected${h.pullLentTo !== null ? ` (read by worker ${h.pullLentTo})` : ''}` : 'DISCONNECTED';
    lines.push(`  ${h.sendSpec} / ${h.recvSpec}  pull ${pull}  pub ${h.subscribed ? 'subscribed' : 'NOT SUBSCRIBED'}`);
    if (h.flowControl === false) {
      lines.push('    download.flow_control is OFF in Mongrel2 (no DOWNLOAD_CREDITS): slow clients cost memory; set "download.flow_control": 1');
    }
    if (h.sharedSocket !== null) lines.push(`    SHARED SOCKET: ${h.sharedSocket}`);
  }
  lines.push('');
  lines.push('workers:');
  lines.push('  ID   PID      GEN  STATE     UPTIME        IN-FLIGHT  CONNS');
  for (const w of r.workers) {
    lines.push(
      `  ${pad(w.id, 4)} ${pad(w.pid, 8)} ${pad(w.generation, 4)} ${pad(w.state, 9)} ${pad(formatDuration(w.uptimeSeconds), 13)} ${pad(w.inFlight ?? '?', 10)} ${w.connections}`,
    );
  }
  if (r.sparePid !== null) lines.push(`  (spare worker pid ${r.sparePid}, ready to replace one)`);
  lines.push('');
  lines.push('upstreams:');
  for (const u of r.upstreams) {
    const servers = u.servers.map((s) => `${s.address}${s.healthy ? '' : ' (down)'}`).join(', ');
    lines.push(
      `  ${u.name} (${u.type}) ${u.healthy ? 'healthy' : 'UNHEALTHY'}  in flight ${u.inFlight}  queued ${u.queued}  ` +
        `connections busy ${u.connections.busy} idle ${u.connections.idle} max ${u.connections.max}`,
    );
    lines.push(`    ${servers}`);
  }
  return lines.join('\n');
}

function pad(v: string | number, width: number): string {
  return String(v).padEnd(width);
}
