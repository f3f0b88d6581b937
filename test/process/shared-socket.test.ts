/**
 * Issue 9 item 5: two m2gw daemons PULLing from one Mongrel2 send_spec. Mongrel2 round-robins
 * every message between them, so each sees credits and disconnects for connections the other
 * answers. Each must say so: an error log naming the handler, /readyz failing with the reason,
 * /status, and the orphan-control metric.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { request } from '../harness/http-client.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';
import { Daemon, gwToml, metricValue, parsePrometheus, startWorld, type World } from './support.js';

describe('two gateways on one handler socket', () => {
  let world: World;
  let a: Daemon;
  let b: Daemon;
  let stopLoad = false;
  let load: Promise<void> = Promise.resolve();

  before(async () => {
    world = await startWorld();
    a = await Daemon.start(world, gwToml(world, { workers: 1 }));
    // The second daemon: same handler, its own admin port, pid file and config file.
    const other: World = { ...world, adminPort: await freePort(), configFile: path.join(world.dir, 'gw-b.toml'), pidFile: path.join(world.dir, 'b.pid') };
    b = await Daemon.start(other, gwToml(other, { workers: 1 }));
    // Downloads with flow control on: each makes Mongrel2 send a stream of credits, half to the wrong daemon.
    load = (async () => {
      while (!stopLoad) {
        await Promise.all(Array.from({ length: 4 }, () => request(`${world.m2.url}/bytes/400000`, { timeoutMs: 2_000 }).catch(() => undefined)));
      }
    })();
  });

  after(async () => {
    stopLoad = true;
    await load;
    await a?.kill();
    await b?.kill();
    await world?.stop();
  });

  test('both detect it: error log, /readyz 503 with the reason, /status, metric', async () => {
    for (const d of [a, b]) {
      const ready = await waitFor(
        async () => {
          const r = await d.admin('/readyz');
          return r.status === 503 && /another process probably PULLs from the same send_spec/.test(r.body) ? r : null;
        },
        60_000,
        250,
        'readyz 503 naming the shared socket',
      );
      assert.match(ready!.body, new RegExp(world.m2.handlers[0]!.sendSpec.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
      const err = await d.waitForLog((l) => l.level === 'error' && l.message === 'handler socket looks shared with another gateway', 5_000, 'the error log');
      assert.equal(err.handler, world.m2.handlers[0]!.sendSpec);
      const status = await d.status();
      assert.match(status.handlers[0]!.sharedSocket ?? '', /give each gateway its own Mongrel2 Handler/);
      assert.ok(status.handlers[0]!.orphanControls > 0);
      const metrics = parsePrometheus((await d.admin('/metrics')).body);
      const n = metricValue(metrics.samples, 'm2gw_orphan_control_messages_total', { handler: world.m2.handlers[0]!.sendSpec });
      assert.ok(n > 0, `metric ${n}`);
    }
  });
});
