/**
 * The per-request series counted outside prom-client must export exactly what
 * prom-client's own Counter and Histogram would: text exposition, JSON, aggregation.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { LocalHistogram, TalliedCounter } from '../../../src/metrics/request-series.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVATIONS: Array<[string, string, number, number]> = [
  ['/a/', 'app', 0.0005, 200],
  ['/a/', 'app', 0.001, 200],
  ['/a/', 'app', 0.05, 502],
  ['/b/', 'php', 3, 200],
  ['/a/', 'app', 0.2, 200],
];

function reference(): Registry {
  const registry = new Registry();
  const h = new Histogram({ name: 'd', help: 'duration', labelNames: ['route', 'upstream'], buckets: BUCKETS, registers: [registry] });
  const c = new Counter({ name: 'r', help: 'requests', labelNames: ['route', 'status', 'upstream'], registers: [registry] });
  for (const [route, upstream, v, status] of OBSERVATIONS) {
    h.observe({ route, upstream }, v);
    c.inc({ route, status: String(status), upstream });
  }
  return registry;
}

function ours(): Registry {
  const registry = new Registry();
  const h = new LocalHistogram({ name: 'd', help: 'duration', buckets: BUCKETS, registers: [registry] });
  const c = new TalliedCounter({ name: 'r', help: 'requests', labelNames: ['route', 'status', 'upstream'], registers: [registry] });
  for (const [route, upstream, v, status] of OBSERVATIONS) {
    h.observe(`${route} ${upstream}`, () => ({ route, upstream }), v);
    c.inc(`${route} ${upstream} ${status}`, () => ({ route, status: String(status), upstream }));
  }
  return registry;
}

describe('request series', () => {
  test('text exposition is identical to prom-client', async () => {
    assert.equal(await ours().metrics(), await reference().metrics());
  });

  test('JSON is identical, and so is the aggregate of two processes', async () => {
    const a = await ours().getMetricsAsJSON();
    const b = await reference().getMetricsAsJSON();
    assert.deepEqual(a, b.map((m) => ({ ...m, values: m.values.map((v) => { const { exemplar: _e, ...rest } = v as typeof v & { exemplar?: unknown }; return rest; }) })));
    const aggOurs = await AggregatorRegistry.aggregate([a, await ours().getMetricsAsJSON()]).metrics();
    const aggRef = await AggregatorRegistry.aggregate([b, await reference().getMetricsAsJSON()]).metrics();
    assert.equal(aggOurs, aggRef);
  });

  test('counters keep counting across collections', async () => {
    const registry = new Registry();
    const c = new TalliedCounter({ name: 'r', help: 'requests', labelNames: ['route'], registers: [registry] });
    c.inc('x', () => ({ route: 'x' }), 2);
    await registry.metrics();
    c.inc('x', () => ({ route: 'x' }), 3);
    assert.match(await registry.metrics(), /^r\{route="x"\} 5$/m);
  });
});
