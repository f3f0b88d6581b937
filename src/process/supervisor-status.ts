/**
 * What the admin listener asks the supervisor: status, readiness, metrics. Workers
 * are asked over IPC (in parallel, each with a short timeout) so a stuck worker
 * shows up as "not answering" rather than hanging the endpoint.
 */
import type { AdminProvider } from '../admin/admin-server.js';
import { mergeUpstreamHealth, type Readiness, type ReloadResult, type StatusReport, type WorkerReport } from '../admin/status.js';
import type { Config } from '../config/schema.js';
import type { RenderedMetrics, SupervisorMetrics } from '../metrics/supervisor-metrics.js';
import type { UpstreamHealth } from '../upstream/upstream.js';
import { VERSION } from '../version.js';
import type { ConnectionOwners } from './connection-owners.js';
import type { LiveHandlers } from './live-handlers.js';
import type { PullLending } from './pull-lending.js';
import type { WorkerStatus } from './messages.js';
import type { WorkerHandle } from './worker-handle.js';
import type { WorkerPool } from './worker-pool.js';

const QUERY_TIMEOUT_MS = 1_000;

/** What the status endpoints read of the supervisor (which passes itself). */
export interface SupervisorView {
  readonly file: string;
  readonly state: string;
  readonly config: Config;
  readonly startedAt: number;
  readonly generation: number;
  readonly reloadCount: number;
  readonly lastReload: ReloadResult | null;
  readonly restartCount: number;
  readonly owners: ConnectionOwners;
  readonly handlers: LiveHandlers;
  readonly pool: WorkerPool;
  readonly workers: ReadonlyMap<number, WorkerHandle>;
  readonly metrics: SupervisorMetrics;
  readonly lending: PullLending;
}

export class SupervisorStatus implements AdminProvider {
  constructor(private readonly sup: SupervisorView) {}

  async status(): Promise<StatusReport> {
    const sup = this.sup;
    const answers = await this.askAll();
    const workers: WorkerReport[] = answers.map(({ w, s }) => ({
      id: w.id,
      pid: w.pid,
      generation: w.generation,
      state: w.state,
      uptimeSeconds: Math.round((Date.now() - w.startedAt) / 1000),
      connections: sup.owners.ownedBy(w.id),
      inFlight: s?.inFlight ?? null,
      connected: s?.connected ?? null,
    }));
    return {
      pid: process.pid,
      version: VERSION,
      config: sup.file,
      state: sup.state,
      uptimeSeconds: Math.round((Date.now() - sup.startedAt) / 1000),
      generation: sup.generation,
      reloads: sup.reloadCount,
      lastReload: sup.lastReload,
      workerRestarts: sup.restartCount,
      inFlight: answers.reduce((n, a) => n + (a.s?.inFlight ?? 0), 0),
      connections: sup.owners.connectionCount,
      handlers: sup.handlers.list().map((h) => ({
        sendSpec: h.config.sendSpec,
        recvSpec: h.config.recvSpec,
        pullConnected: h.socket.isPulling,
        pullLentTo: sup.lending.holderOf(h.id),
        subscribed: h.socket.isSubscribed,
        flowControl: h.watch.flowControl,
        sharedSocket: h.watch.shared,
        orphanControls: h.watch.orphans,
        ...(h.removing ? { removing: true } : {}),
      })),
      workers,
      sparePid: sup.pool.spare?.pid ?? null,
      upstreams: this.upstreams(answers),
    };
  }

  async readiness(): Promise<Readiness> {
    const sup = this.sup;
    const reasons: string[] = [];
    if (sup.state === 'starting' || sup.state === 'stopping') reasons.push(`m2gw is ${sup.state}`);
    for (const h of sup.handlers.list()) {
      // A handler a reload removed is only finishing its connections.
      if (h.removing) continue;
      if (!h.socket.isPulling) reasons.push(`handler ${h.config.sendSpec}: not connected to Mongrel2`);
      if (!h.socket.isSubscribed) reasons.push(`handler ${h.config.recvSpec}: Mongrel2 has not subscribed`);
      const shared = h.watch.shared;
      if (shared) reasons.push(shared);
    }
    const answers = (await this.askAll()).filter(({ w }) => w.generation === sup.generation && w.state === 'active');
    if (answers.length === 0) reasons.push('no worker is ready');
    for (const { w, s } of answers) {
      if (s === null) reasons.push(`worker ${w.id} (pid ${w.pid}) is not answering`);
      else if (!s.connected) reasons.push(`worker ${w.id} (pid ${w.pid}): reply socket not subscribed by Mongrel2`);
    }
    for (const u of this.upstreams(answers)) {
      if (!u.healthy) reasons.push(`upstream ${u.name}: no healthy server`);
    }
    return { ready: reasons.length === 0, reasons };
  }

  async metrics(): Promise<RenderedMetrics> {
    const workers = [...this.sup.workers.values()];
    const json = await Promise.all(workers.map((w) => w.query('metrics', QUERY_TIMEOUT_MS)));
    return this.sup.metrics.render(json.filter((j) => j !== null));
  }

  private async askAll(): Promise<Array<{ w: WorkerHandle; s: WorkerStatus | null }>> {
    const workers = [...this.sup.workers.values()];
    const statuses = await Promise.all(workers.map((w) => w.query('status', QUERY_TIMEOUT_MS)));
    return workers.map((w, i) => ({ w, s: asWorkerStatus(statuses[i]) }));
  }

  /** Upstream health as the current generation sees it. */
  private upstreams(answers: ReadonlyArray<{ w: WorkerHandle; s: WorkerStatus | null }>): UpstreamHealth[] {
    const current = answers.filter(({ w, s }) => s !== null && w.generation === this.sup.generation);
    return mergeUpstreamHealth(current.map(({ s }) => s!.upstreams));
  }
}

function asWorkerStatus(v: unknown): WorkerStatus | null {
  if (typeof v !== 'object' || v === null) return null;
  const s = v as Partial<WorkerStatus>;
  return typeof s.inFlight === 'number' && Array.isArray(s.upstreams) ? (v as WorkerStatus) : null;
}
