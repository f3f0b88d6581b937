/**
 * The supervisor's metrics and the aggregation of everyone's. Workers answer a
 * metrics query with `registry.getMetricsAsJSON()`; the supervisor sums them with
 * its own series via prom-client's AggregatorRegistry.aggregate.
 *
 * Counters must never go down, but workers come and go (reloads, crashes). A worker
 * that exits cleanly sends its final counters and histograms; they are folded into
 * `retired` and added to every later scrape. (A worker killed outright loses what it
 * counted since the last scrape: unavoidable without per-request reporting.)
 */
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { METRIC } from './names.js';
import { createProcessMetrics, type ProcessMetrics } from './worker-metrics.js';

/** One metric as getMetricsAsJSON() gives it (enough structure to filter and aggregate). */
export interface MetricJson {
  readonly name: string;
  readonly type: string;
  readonly values: readonly unknown[];
}

export interface SupervisorGauges {
  workers(): Record<string, number>;
  parked(): number;
  /** Per handler send_spec: control messages for connections never seen (HandlerWatch.orphans). */
  orphanControls(): Record<string, number>;
}

export interface RenderedMetrics {
  readonly contentType: string;
  readonly text: string;
}

export class SupervisorMetrics {
  readonly own: ProcessMetrics;
  private readonly restarts: Counter;
  private readonly reloads: Counter<'result'>;
  private retired: MetricJson[] = [];
  private retiredChain: Promise<void> = Promise.resolve();

  constructor(gauges: SupervisorGauges) {
    this.own = createProcessMetrics(null);
    const registers: Registry[] = [this.own.registry];
    this.restarts = new Counter({ ...METRIC.workerRestarts, registers });
    this.reloads = new Counter({ ...METRIC.reloads, labelNames: ['result'] as const, registers });
    for (const result of ['ok', 'invalid', 'failed']) this.reloads.inc({ result }, 0);
    new Gauge({
      ...METRIC.workers,
      labelNames: ['state'] as const,
      registers,
      collect() {
        this.reset();
        for (const [state, n] of Object.entries(gauges.workers())) this.set({ state }, n);
      },
    });
    new Gauge({
      ...METRIC.parked,
      registers,
      collect() {
        this.set(gauges.parked());
      },
    });
    new Counter({
      ...METRIC.orphanControls,
      labelNames: ['handler'] as const,
      registers,
      collect() {
        // HandlerWatch keeps the running totals; a counter that mirrors them never goes down.
        this.reset();
        for (const [handler, n] of Object.entries(gauges.orphanControls())) this.inc({ handler }, n);
      },
    });
    new Gauge({ ...METRIC.startTime, registers }).set(Math.round(Date.now() / 1000));
  }

  workerRestarted(): void {
    this.restarts.inc();
  }

  reloaded(result: 'ok' | 'invalid' | 'failed'): void {
    this.reloads.inc({ result });
  }

  /** Keep a finished worker's counters and histograms (its gauges end with it). */
  addRetired(json: unknown): Promise<void> {
    const metrics = asMetricJson(json).filter((m) => m.type === 'counter' || m.type === 'histogram');
    if (metrics.length === 0) return this.retiredChain;
    this.retiredChain = this.retiredChain.then(async () => {
      const merged = AggregatorRegistry.aggregate([this.retired, metrics] as object[]);
      this.retired = asMetricJson(await merged.getMetricsAsJSON());
    });
    return this.retiredChain;
  }

  /** Prometheus text for the supervisor, the live workers' JSON, and the retired totals. */
  async render(workers: readonly unknown[]): Promise<RenderedMetrics> {
    await this.retiredChain;
    const all: object[] = [await this.own.registry.getMetricsAsJSON()];
    for (const w of workers) all.push(asMetricJson(w));
    if (this.retired.length > 0) all.push(this.retired);
    const registry = AggregatorRegistry.aggregate(all);
    return { contentType: registry.contentType, text: await registry.metrics() };
  }
}

export function asMetricJson(v: unknown): MetricJson[] {
  if (!Array.isArray(v)) return [];
  return v.filter(
    (m): m is MetricJson =>
      typeof m === 'object' &&
      m !== null &&
      typeof (m as { name?: unknown }).name === 'string' &&
      typeof (m as { type?: unknown }).type === 'string' &&
      Array.isArray((m as { values?: unknown }).values),
  );
}
