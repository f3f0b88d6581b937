/** Upstream health merged over workers, and the text `m2gw status` prints. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatStatus, mergeUpstreamHealth, type StatusReport } from '../../../src/admin/status.js';
import type { UpstreamHealth } from '../../../src/upstream/upstream.js';

const h = (healthy: [boolean, boolean], busy: number): UpstreamHealth => ({
  name: 'app',
  type: 'http',
  healthy: healthy[0] || healthy[1],
  servers: [
    { address: 'http://a', healthy: healthy[0] },
    { address: 'http://b', healthy: healthy[1] },
  ],
  inFlight: busy,
  queued: 1,
  connections: { busy, idle: 2, max: 64 },
});

test('health is summed over workers; a server is up if any worker can use it', () => {
  const [m] = mergeUpstreamHealth([[h([true, false], 3)], [h([false, false], 4)]]);
  assert.ok(m);
  assert.equal(m.healthy, true);
  assert.deepEqual(m.servers, [
    { address: 'http://a', healthy: true },
    { address: 'http://b', healthy: false },
  ]);
  assert.equal(m.inFlight, 7);
  assert.equal(m.queued, 2);
  assert.deepEqual(m.connections, { busy: 7, idle: 4, max: 128 });
  const [down] = mergeUpstreamHealth([[h([false, false], 0)], [h([false, false], 0)]]);
  assert.equal(down!.healthy, false);
});

test('durations and the status text', () => {
  assert.equal(formatDuration(5), '5s');
  assert.equal(formatDuration(3723), '1h 2m 3s');
  assert.equal(formatDuration(90061), '1d 1h 1m 1s');
  const report: StatusReport = {
    pid: 42,
    version: '1.0.0',
    config: '/etc/m2gw/gw.toml',
    state: 'running',
    uptimeSeconds: 61,
    generation: 3,
    reloads: 2,
    lastReload: null,
    workerRestarts: 1,
    inFlight: 5,
    connections: 9,
    handlers: [{ sendSpec: 'tcp://127.0.0.1:9997', recvSpec: 'tcp://127.0.0.1:9996', pullConnected: true, subscribed: false, flowControl: false, sharedSocket: null, orphanControls: 0, pullLentTo: null }],
    workers: [{ id: 7, pid: 1234, generation: 3, state: 'active', uptimeSeconds: 10, connections: 9, inFlight: 5, connected: true }],
    sparePid: 99,
    upstreams: [h([true, false], 5)],
  };
  const text = formatStatus(report);
  assert.match(text, /pid 42 {2}running {2}up 1m 1s/);
  assert.match(text, /generation 3 {2}reloads 2 {2}worker restarts 1/);
  assert.match(text, /pull connected {2}pub NOT SUBSCRIBED/);
  const lent = formatStatus({ ...report, handlers: [{ ...report.handlers[0]!, pullLentTo: 7 }] });
  assert.match(lent, /pull connected \(read by worker 7\) {2}pub NOT SUBSCRIBED/);
  assert.match(text, /^ {2}7 +1234 +3 +active +10s +5 +9$/m);
  assert.match(text, /app \(http\) healthy {2}in flight 5 {2}queued 1 {2}connections busy 5 idle 2 max 64/);
  assert.match(text, /http:\/\/b \(down\)/);
  assert.match(text, /spare worker pid 99/);
  assert.match(text, /download.flow_control is OFF in Mongrel2/);
});
