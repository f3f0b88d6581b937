/**
 * The bench's summary of repeated runs: the row is the median-throughput run, and the tails
 * of every run are kept beside it and compared by the median of rounds (bench/lib/ratios.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Measurement } from '../../../bench/lib/measure.js';
import { latencyNotes } from '../../../bench/lib/ratios.js';
import { aggregate, medianOf, newResults, type Results } from '../../../bench/lib/report.js';

function run(variant: string, rps: number, p50: number, p99: number, scenario = 'php'): Measurement {
  return {
    scenario,
    variant,
    url: 'http://x/',
    requestsPerSec: rps,
    requests: rps * 10,
    latencyP50Ms: p50,
    latencyP99Ms: p99,
    latencyMaxMs: p99 * 2,
    transferMiBPerSec: 1,
    errors: 0,
    errorDetail: '',
    cpuSeconds: {},
    cpuUsPerRequest: {},
    otherLoadPct: 0,
  };
}

function results(ms: Measurement[]): Results {
  const r = newResults('', {}, {});
  r.measurements.push(...ms);
  r.summary = aggregate(ms);
  return r;
}

test('medianOf: odd and even counts, input order does not matter', () => {
  assert.equal(medianOf([3, 1, 2]), 2);
  assert.equal(medianOf([4, 1, 3, 2]), 2.5);
  assert.equal(medianOf([7]), 7);
});

test('aggregate: the row is the median-throughput run; every run’s latency and its medians ride along', () => {
  // Rounds interleaved as the bench runs them: m2gw, nginx, m2gw, nginx, ...
  const ms = [run('m2gw-pipeline-4', 11660, 4.1, 7.28), run('m2gw-pipeline-4', 11957, 4.1, 7.25), run('m2gw-pipeline-4', 11724, 3.9, 14.4)];
  const [s] = aggregate(ms);
  assert.ok(s);
  assert.equal(s.requestsPerSec, 11724);
  assert.equal(s.latencyP99Ms, 14.4, 'the row keeps its own run’s p99');
  assert.deepEqual(s.runs, [11660, 11957, 11724]);
  assert.deepEqual(s.p99Runs, [7.28, 7.25, 14.4]);
  assert.equal(s.p99MedianMs, 7.28);
  assert.equal(s.p50MedianMs, 4.1);
});

test('latencyNotes: PHP p99 against nginx by the median of rounds, and round by round', () => {
  const r = results([
    run('nginx-fastcgi', 9412, 5.1, 7.72),
    run('m2gw-pipeline-4', 11660, 4.1, 7.28),
    run('nginx-fastcgi', 9435, 5.2, 7.52),
    run('m2gw-pipeline-4', 11957, 4.1, 7.25),
    run('nginx-fastcgi', 10040, 4.9, 6.23),
    run('m2gw-pipeline-4', 11724, 3.9, 14.4),
  ]);
  latencyNotes(r);
  assert.equal(r.notes.length, 1);
  assert.match(r.notes[0]!, /^php p99 m2gw-pipeline-4 against nginx-fastcgi, median of rounds: 7\.28 vs 7\.52 ms \(target: no higher\) {2}ok; no higher in 2 rounds of 3/);
});

test('latencyNotes: a higher median is flagged, and p50 is checked against the build before', () => {
  const r = results([
    run('m2gw', 18000, 2.6, 9.0, 'hello'),
    run('m2gw-before', 10000, 4.5, 8.8, 'hello'),
    run('m2gw', 18100, 2.7, 9.5, 'hello'),
    run('m2gw-before', 10100, 4.4, 8.0, 'hello'),
  ]);
  latencyNotes(r);
  assert.equal(r.notes.length, 2);
  assert.match(r.notes[0]!, /^hello p50 m2gw against m2gw-before, median of rounds: 2\.65 vs 4\.45 ms .* ok; no higher in 2 rounds of 2/);
  assert.match(r.notes[1]!, /^hello p99 m2gw against m2gw-before, median of rounds: 9\.25 vs 8\.40 ms .* HIGHER; no higher in 0 rounds of 2/);
});
