/**
 * SIGTERM on the real daemon: in-flight requests finish, new ones get 503, exit 0
 * within drain_timeout, pid file removed; a second signal exits at once.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request } from '../harness/http-client.js';
import { waitFor } from '../harness/wait.js';
import { Daemon, gwToml, startWorld, type World } from './support.js';

describe('stop (SIGTERM)', () => {
  const worlds: World[] = [];
  const daemons: Daemon[] = [];

  after(async () => {
    for (const d of daemons) await d.kill();
    for (const w of worlds) await w.stop();
  });

  test('slow in-flight requests complete, new ones are refused with 503, exit 0 within the drain timeout', async () => {
    const world = await startWorld();
    worlds.push(world);
    const daemon = await Daemon.start(world, gwToml(world, { workers: 2, drainTimeout: '4s' }));
    daemons.push(daemon);
    assert.ok(existsSync(world.pidFile), 'pid file written');

    const slow = [0, 1, 2, 3].map((i) => request(`${world.m2.url}/slow/1200?n=${i}`, { timeoutMs: 10_000 }));
    await waitFor(() => world.upA.requests.filter((r) => r.url.startsWith('/slow/')).length === 4, 5_000, 10, 'upstream has the 4 slow requests');
    const t0 = Date.now();
    daemon.signal('SIGTERM');
    await daemon.waitForLog((l) => l.message === 'draining', 2_000, 'draining');

    const refused = await request(`${world.m2.url}/echo/new`, { timeoutMs: 5_000 });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.connection, 'close');
    assert.ok(!world.upA.requests.some((r) => r.url === '/echo/new'), 'the refused request never reached the upstream');

    const done = await Promise.all(slow);
    for (const r of done) {
      assert.equal(r.status, 200);
      assert.match(r.body.toString(), /^slow 1200/);
    }
    const { code, signal } = await daemon.exited;
    const elapsed = Date.now() - t0;
    assert.equal(signal, null);
    assert.equal(code, 0, daemon.dump());
    assert.ok(elapsed < 4_000, `exited ${elapsed} ms after SIGTERM (drain timeout 4 s)`);
    assert.ok(!existsSync(world.pidFile), 'pid file removed');
    assert.ok(daemon.logs.some((l) => l.message === 'stopped' && l.code === 0));
  });

  test('a second signal while draining exits at once', async () => {
    const world = await startWorld();
    worlds.push(world);
    const daemon = await Daemon.start(world, gwToml(world, { workers: 1, drainTimeout: '20s' }));
    daemons.push(daemon);
    const hung = request(`${world.m2.url}/hang`, { timeoutMs: 10_000 }).catch((err: Error) => err);
    await waitFor(() => world.upA.requests.some((r) => r.url === '/hang'), 5_000, 10, 'upstream has the request');
    daemon.signal('SIGTERM');
    await daemon.waitForLog((l) => l.message === 'draining', 2_000, 'draining');
    const t0 = Date.now();
    daemon.signal('SIGINT');
    const { code } = await daemon.exited;
    assert.equal(code, 1);
    assert.ok(Date.now() - t0 < 2_000, 'did not wait for the 20 s drain');
    await hung;
  });
});
