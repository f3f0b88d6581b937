/**
 * SIGHUP on the real daemon: zero-loss reloads under load, route changes taking
 * effect, retired workers going away, and an invalid config leaving the old one
 * serving.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import { request } from '../harness/http-client.js';
import { patternBytes } from '../harness/upstream-http.js';
import { sleep, waitFor } from '../harness/wait.js';
import { Daemon, gwToml, startLoad, startWorld, type World } from './support.js';

describe('reload (SIGHUP)', () => {
  let world: World;
  let daemon: Daemon;

  before(async () => {
    world = await startWorld();
    daemon = await Daemon.start(world, gwToml(world, { workers: 2, probe: 'a' }));
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  /** Which upstream served GET /probe/echo/<tag>. */
  async function probe(tag: string): Promise<'a' | 'b'> {
    const res = await request(`${world.m2.url}/probe/echo/${tag}`);
    assert.equal(res.status, 200, `probe ${tag}: ${res.body.toString()}`);
    const inA = world.upA.requests.some((r) => r.url === `/echo/${tag}`);
    const inB = world.upB.requests.some((r) => r.url === `/echo/${tag}`);
    assert.ok(inA !== inB, `probe ${tag} reached exactly one upstream`);
    return inA ? 'a' : 'b';
  }

  test('10 reloads in a row under load: no request fails, each route change takes effect', async () => {
    assert.equal(await probe('before'), 'a');
    const load = startLoad(world.m2.url, 4, '/echo/load');
    try {
      await sleep(300);
      for (let i = 1; i <= 10; i++) {
        const want = i % 2 === 1 ? 'b' : 'a';
        await fsp.writeFile(world.configFile, gwToml(world, { workers: 2, probe: want }));
        const mark = daemon.logs.length;
        daemon.signal('SIGHUP');
        await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reloaded:'), 10_000, `reload ${i}`);
        assert.equal(await probe(`after-${i}`), want, `route after reload ${i}`);
        await sleep(150);
      }
      await sleep(300);
    } finally {
      await load.stop();
    }
    const result = load.result;
    assert.deepEqual(result.errors, [], `failed requests: ${JSON.stringify(result.statuses)}`);
    assert.equal(result.failed, 0);
    assert.ok(result.ok > 200, `load actually ran (${result.ok} requests)`);

    // Every retired worker hands over its connections and exits; only generation 11 is left.
    const status = (await waitFor(
      async () => {
        const s = await daemon.status();
        return s.workers.length === 2 && s.workers.every((w) => w.generation === 11) ? s : null;
      },
      10_000,
      50,
      'only the newest generation left',
    ))!;
    assert.equal(status.reloads, 10);
    assert.equal(status.lastReload?.result, 'ok');
    const exits = daemon.logs.filter((l) => l.message === 'worker exited');
    assert.equal(exits.length, 20, 'each of the 20 retired workers exited cleanly');
    assert.ok(!daemon.logs.some((l) => l.message === 'worker died'), 'no worker died');
  });

  test('an invalid config is refused with its problems logged; the old one keeps serving', async () => {
    const before = await daemon.status();
    const good = await fsp.readFile(world.configFile, 'utf8');
    // Line 3 of the generated file is `workers = 2`.
    const lines = good.split('\n');
    assert.match(lines[2]!, /^workers = /);
    lines[2] = 'workers = "lots"';
    await fsp.writeFile(world.configFile, lines.join('\n'));
    const mark = daemon.logs.length;
    daemon.signal('SIGHUP');
    const refused = await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reload refused'), 5_000, 'reload refused');
    assert.match(refused.message, /keeping the running config/);
    const problem = daemon.logs.slice(mark).find((l) => l.message === 'config problem');
    assert.ok(problem, daemon.dump());
    assert.match(String(problem.problem), /gw\.toml:3: gateway\.workers: must be "auto" or an integer >= 1/);

    const res = await request(`${world.m2.url}/echo/still-serving`);
    assert.equal(res.status, 200);
    const after = await daemon.status();
    assert.equal(after.generation, before.generation, 'no new generation');
    assert.deepEqual(
      after.workers.map((w) => w.pid).sort(),
      before.workers.map((w) => w.pid).sort(),
      'same workers',
    );
    assert.equal(after.lastReload?.result, 'invalid');
    await fsp.writeFile(world.configFile, good);
  });
});

describe('reload: a kept-alive connection handed to the new generation', () => {
  let world: World;
  let daemon: Daemon;

  before(async () => {
    world = await startWorld();
    daemon = await Daemon.start(world, gwToml(world, { workers: 1 }));
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  test('a large download on it after the reload still follows Mongrel2 flow control', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(`${world.m2.url}/bytes/1048576`, { agent });
      assert.equal(first.status, 200);
      assert.equal(first.body.length, 1048576);
      const mark = daemon.logs.length;
      daemon.signal('SIGHUP');
      await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reloaded:'), 10_000, 'reload');
      await waitFor(async () => (await daemon.status()).workers.every((w) => w.generation === 2), 5_000, 20, 'old generation gone');
      // The connection moved: the new worker never saw its first request (the only one with DOWNLOAD_CREDITS).
      const second = await request(`${world.m2.url}/bytes/1048576`, { agent });
      assert.equal(second.status, 200);
      assert.equal(second.body.length, 1048576);
      assert.ok(second.reusedSocket && second.localPort === first.localPort, 'same client connection');
      assert.ok(second.body.equals(patternBytes(1048576)));
    } finally {
      agent.destroy();
    }
  });
});
