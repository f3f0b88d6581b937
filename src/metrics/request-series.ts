/**
 * The per-request series (requests, bytes, duration) counted in plain maps and shown to
 * prom-client only when it collects (a scrape, a worker's final report).
 *
 * Why: prom-client validates and hashes the label object on every inc() and observe();
 * for the three calls of every request that measured 2–4 µs, a few percent of a request's
 * whole cost. Counted here, a request costs a map lookup and an add. The exported series
 * are the same: names, labels, buckets and values, rendered and aggregated by prom-client's
 * Registry like its own metrics (test/unit/metrics/request-series.test.ts compares them).
 */
import { Counter, type Histogram, type Registry } from 'prom-client';

interface Tallied {
  readonly labels: Record<string, string>;
  n: number;
}

/** A prom-client Counter whose increments are summed here and added to it at collect time. */
export class TalliedCounter {
  private readonly pending = new Map<string, Tallied>();

  constructor(opts: { name: string; help: string; labelNames: readonly string[]; registers: Registry[] }) {
    const pending = this.pending;
    new Counter({
      ...opts,
      labelNames: [...opts.labelNames],
      collect() {
        for (const t of pending.values()) {
          if (t.n > 0) this.inc(t.labels, t.n);
          t.n = 0;
        }
      },
    });
  }

  /** `key` must identify `labels()` (the label values joined); labels() runs once per series. */
  inc(key: string, labels: () => Record<string, string>, n = 1): void {
    let t = this.pending.get(key);
    if (t === undefined) this.pending.set(key, (t = { labels: labels(), n: 0 }));
    t.n += n;
  }
}

interface Observed {
  readonly labels: Record<string, string>;
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: number[];
  sum: number;
  count: number;
}

interface SeriesValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
}

/**
 * A histogram with prom-client's metric interface (get, getForPromString, reset), registered
 * in a prom-client Registry: it renders and aggregates exactly like prom-client's Histogram
 * (the same series, labels and values), while observe() is a map lookup and two adds.
 */
export class LocalHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly series = new Map<string, Observed>();
  private readonly bounds: readonly number[];

  constructor(opts: { name: string; help: string; buckets: readonly number[]; registers: Registry[] }) {
    this.name = opts.name;
    this.help = opts.help;
    this.bounds = [...opts.buckets].sort((a, b) => a - b);
    // prom-client's Registry only calls get()/getForPromString()/reset() on what it holds.
    for (const r of opts.registers) r.registerMetric(this as unknown as Histogram);
  }

  /** `key` must identify `labels()` (the label values joined); labels() runs once per series. */
  observe(key: string, labels: () => Record<string, string>, value: number): void {
    let s = this.series.get(key);
    if (s === undefined) this.series.set(key, (s = { labels: labels(), counts: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 }));
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  reset(): void {
    this.series.clear();
  }

  /** As prom-client's Histogram.get(): every label on each value (for JSON and aggregation). */
  get(): { name: string; help: string; type: string; aggregator: string; values: SeriesValue[] } {
    return this.render(true);
  }

  /** As prom-client's getForPromString(): `le` apart from the series labels (text exposition). */
  getForPromString(): { name: string; help: string; type: string; aggregator: string; values: SeriesValue[] } {
    return this.render(false);
  }

  private render(splay: boolean): { name: string; help: string; type: string; aggregator: string; values: SeriesValue[] } {
    const values: SeriesValue[] = [];
    const bucket = `${this.name}_bucket`;
    const value = (le: number | string | null, v: number, metricName: string, labels: Record<string, string>): SeriesValue =>
      splay
        ? { labels: le === null ? { ...labels } : { le, ...labels }, value: v, metricName }
        : { labels: le === null ? {} : { le }, sharedLabels: labels, value: v, metricName };
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        acc += s.counts[i]!;
        values.push(value(this.bounds[i]!, acc, bucket, s.labels));
      }
      values.push(value('+Inf', s.count, bucket, s.labels));
      values.push(value(null, s.sum, `${this.name}_sum`, s.labels));
      values.push(value(null, s.count, `${this.name}_count`, s.labels));
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
