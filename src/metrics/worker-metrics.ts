/**
 * Prometheus metrics of one gateway process (a worker, or the single-process
 * gateway). Each process keeps its own registry; the supervisor aggregates them
 * (aggregate.ts). Names and help texts come from names.ts so that the supervisor's
 * own series (503s it answers itself, bad frames it drops) merge with the workers'.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { GatewayHooks, RequestDoneInfo } from '../gateway/gateway.js';
import type { UpstreamHealth } from '../upstream/upstream.js';
import { limitHitCounts, warningCounts } from './limit-hits.js';
import { DURATION_BUCKETS, METRIC } from './names.js';
import { LocalHistogram, TalliedCounter } from './request-series.js';

export interface GatewayGauges {
  inFlight(): number;
  connections(): number;
  upstreams(): readonly UpstreamHealth[];
}

export interface ProcessMetrics {
  readonly registry: Registry;
  readonly hooks: GatewayHooks;
  /** For the supervisor's own answers (it counts them as requests too). */
  requestDone(info: Pick<RequestDoneInfo, 'route' | 'upstream' | 'status' | 'durationMs' | 'errorCode'>): void;
}

export function createProcessMetrics(gauges: GatewayGauges | null): ProcessMetrics {
  const registry = new Registry();
  const registers = [registry];
  // The three series every request touches are counted outside prom-client (request-series.ts).
  const requests = new TalliedCounter({ ...METRIC.requests, labelNames: ['route', 'status', 'upstream'], registers });
  const duration = new LocalHistogram({ ...METRIC.duration, buckets: DURATION_BUCKETS, registers });
  const bytes = new TalliedCounter({ ...METRIC.bytes, labelNames: ['route', 'upstream'], registers });
  const errors = new Counter({ ...METRIC.upstreamErrors, labelNames: ['upstream', 'code'] as const, registers });
  const aborts = new Counter({ ...METRIC.disconnectAborts, registers });
  const badFrames = new Counter({ ...METRIC.badFrames, registers });
  const wsOpen = new Gauge({ ...METRIC.websockets, registers });
  const wsMessages = new Counter({ ...METRIC.websocketMessages, labelNames: ['direction'] as const, registers });
  const wsBytes = new Counter({ ...METRIC.websocketBytes, labelNames: ['direction'] as const, registers });
  const wsCloses = new Counter({ ...METRIC.websocketCloses, labelNames: ['code', 'side'] as const, registers });
  // Process-wide tallies kept where the caps are (limit-hits.ts), read at scrape time.
  const fromTally = (def: { name: string; help: string }, label: string, read: () => ReadonlyMap<string, number>): void => {
    new Counter({
      ...def,
      labelNames: [label],
      registers,
      collect() {
        this.reset();
        for (const [key, n] of read()) this.inc({ [label]: key }, n);
      },
    });
  };
  fromTally(METRIC.limitHits, 'limit', limitHitCounts);
  fromTally(METRIC.warnings, 'kind', warningCounts);

  if (gauges) {
    new Gauge({
      ...METRIC.inFlight,
      registers,
      collect() {
        this.set(gauges.inFlight());
      },
    });
    new Gauge({
      ...METRIC.connections,
      registers,
      collect() {
        this.set(gauges.connections());
      },
    });
    const upstreamGauge = (def: { name: string; help: string }, read: (h: UpstreamHealth) => number): void => {
      new Gauge({
        ...def,
        labelNames: ['upstream'] as const,
        registers,
        collect() {
          this.reset();
          for (const h of gauges.upstreams()) this.set({ upstream: h.name }, read(h));
        },
      });
    };
    upstreamGauge(METRIC.upstreamInFlight, (h) => h.inFlight);
    upstreamGauge(METRIC.upstreamQueue, (h) => h.queued);
    upstreamGauge(METRIC.upstreamHealthyServers, (h) => h.servers.filter((s) => s.healthy).length);
    new Gauge({
      ...METRIC.upstreamPool,
      labelNames: ['upstream', 'state'] as const,
      registers,
      collect() {
        this.reset();
        for (const h of gauges.upstreams()) {
          this.set({ upstream: h.name, state: 'busy' }, h.connections.busy);
          this.set({ upstream: h.name, state: 'idle' }, h.connections.idle);
          this.set({ upstream: h.name, state: 'max' }, h.connections.max);
        }
      },
    });
  }

  const requestDone: ProcessMetrics['requestDone'] = (info) => {
    const route = info.route;
    const upstream = info.upstream;
    const series = route + '\u0000' + upstream;
    requests.inc(series + '\u0000' + info.status, () => ({ route, status: String(info.status), upstream }));
    duration.observe(series, () => ({ route, upstream }), info.durationMs / 1000);
    if (info.errorCode !== null) errors.inc({ upstream: info.upstream, code: info.errorCode });
  };

  const hooks: GatewayHooks = {
    onRequestDone(info) {
      requestDone(info);
      if (info.bytes > 0) bytes.inc(info.route + '\u0000' + info.upstream, () => ({ route: info.route, upstream: info.upstream }), info.bytes);
    },
    onDisconnectAbort() {
      aborts.inc();
    },
    onBadFrame() {
      badFrames.inc();
    },
    onWebSocketOpened() {
      wsOpen.inc();
    },
    onWebSocketMessage(direction, n) {
      const label = direction === 'to-upstream' ? 'to_upstream' : 'to_client';
      // Client messages arrive whole (one call each); upstream payload arrives in pieces,
      // so to_client messages are counted from the report at the end.
      if (direction === 'to-upstream') wsMessages.inc({ direction: label });
      if (n > 0) wsBytes.inc({ direction: label }, n);
    },
    onWebSocketEnded(r) {
      if (r.status !== 101) {
        requestDone({ route: '-', upstream: r.upstream, status: r.status, durationMs: r.durationMs, errorCode: r.error?.code ?? null });
        return;
      }
      wsOpen.dec();
      if (r.messagesToClient > 0) wsMessages.inc({ direction: 'to_client' }, r.messagesToClient);
      wsCloses.inc({ code: String(r.closeCode ?? 1006), side: r.closedBy ?? 'm2gw' });
    },
  };
  return { registry, hooks, requestDone };
}
