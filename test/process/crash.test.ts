/**
 * A worker killed with SIGKILL: replaced fast, failures bounded by what it held,
 * everything fine afterwards; a crash loop ends the daemon with exit 1.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from '../harness/http-client.js';
import { sleep, waitFor } from '../harness/wait.js';
import { Daemon, gwToml, metricValue, parsePrometheus, startLoad, startWorld, type World } from './support.js';

describe('worker crash', () => {
  const worlds: World[] = [];
  const daemons: Daemon[] = [];

  after(async () => {
    for (const d of daemons) await d.kill();
    for (const w of worlds) await w.stop();
  });

  test('kill -9 of a worker under load: replaced within a second, failures at most its connections, then all succeed', async () => {
    const world = await startWorld();
    worlds.push(world);
    const daemon = await Daemon.start(world, gwToml(world, { workers: 2 }));
    daemons.push(daemon);

    const load = startLoad(world.m2.url, 4, '/echo/load');
    let failedBefore = 0;
    let failedAtReplacement = 0;
    let okAtReplacement = 0;
    let held = 0;
    try {
      await waitFor(
        async () => {
          const s = await daemon.status();
          return s.workers.every((w) => w.connections > 0) && s.sparePid !== null;
        },
        5_000,
        20,
        'both workers hold connections, and the spare is up',
      );
      const before = await daemon.status();
      const victim = before.workers[0]!;
      const survivor = before.workers[1]!;
      // Clients of the victim may fail (their connection is closed); nobody else may.
      held = victim.connections;
      failedBefore = load.result.failed;
      const t0 = Date.now();
      process.kill(victim.pid, 'SIGKILL');
      // "Replaced" = the new worker is ready and takes connections: the supervisor logs that moment.
      const replaced = await daemon.waitForLog((l) => l.message === 'worker replaced', 3_000, 'worker replaced');
      const replacedMs = Date.parse(String(replaced.timestamp)) - t0;
      assert.ok(replacedMs < 1_000, `replaced after ${replacedMs} ms`);
      const after = (await waitFor(
        async () => {
          const s = await daemon.status();
          return s.workers.length === 2 && s.workers.every((w) => w.state === 'active' && w.pid !== victim.pid) ? s : null;
        },
        3_000,
        10,
        'status shows the replacement',
      ))!;
      assert.ok(after.workers.some((w) => w.pid === replaced.pid), 'status lists the replacement');
      assert.equal(replaced.pid, before.sparePid, 'the spare took over');
      assert.ok(after.workers.some((w) => w.pid === survivor.pid), 'the other worker untouched');
      assert.equal(after.workerRestarts, 1);
      const died = daemon.logs.find((l) => l.message === 'worker died');
      assert.ok(died, daemon.dump());
      assert.equal(died.signal, 'SIGKILL');
      assert.equal(died.pid, victim.pid);
      await sleep(300);
      failedAtReplacement = load.result.failed;
      okAtReplacement = load.result.ok;
      await sleep(1_000);
    } finally {
      await load.stop();
    }
    const result = load.result;
    assert.ok(failedAtReplacement - failedBefore <= held, `${failedAtReplacement - failedBefore} failures, victim held ${held} connection(s): ${result.errors.join('; ')}`);
    assert.equal(result.failed, failedAtReplacement, `failures after the replacement: ${result.errors.join('; ')}`);
    assert.ok(result.ok - okAtReplacement > 50, 'load kept going after the replacement');

    for (let i = 0; i < 10; i++) {
      const r = await request(`${world.m2.url}/echo/after-${i}`);
      assert.equal(r.status, 200);
    }
    const m = parsePrometheus((await daemon.admin('/metrics')).body);
    assert.equal(metricValue(m.samples, 'm2gw_worker_restarts_total'), 1);
  });

  test('a crash loop ends the daemon with exit code 1', async () => {
    const world = await startWorld();
    worlds.push(world);
    const daemon = await Daemon.start(world, gwToml(world, { workers: 1 }));
    daemons.push(daemon);
    const killed = new Set<number>();
    const deadline = Date.now() + 15_000;
    while (daemon.exitCode === undefined && Date.now() < deadline) {
      const s = await daemon.status().catch(() => null);
      for (const w of s?.workers ?? []) {
        if (!killed.has(w.pid) && w.pid > 0) {
          killed.add(w.pid);
          process.kill(w.pid, 'SIGKILL');
        }
      }
      await sleep(20);
    }
    const { code } = await daemon.exited;
    assert.equal(code, 1);
    assert.equal(killed.size, 5, 'five deaths');
    assert.ok(daemon.logs.some((l) => /^fatal: crash loop/.test(l.message)), daemon.dump());
  });
});
