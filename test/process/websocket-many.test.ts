/**
 * 1,000 WebSockets open at once through Mongrel2 and one m2gw worker: all stay usable,
 * and the worker's memory per idle connection is measured (reported as a test
 * diagnostic and in the closing note). Needs ~4,000 file descriptors in this process
 * tree (clients, app sockets, Mongrel2's and m2gw's): `ulimit -n` must allow it.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type WebSocket from 'ws';
import { sleep, waitFor } from '../harness/wait.js';
import { connect, nextMessage, startWsUpstream, wsUrl, type WsUpstream } from '../integration/websocket-support.js';
import { Daemon, gwToml, startWorld, type World } from './support.js';

const COUNT = 1000;

async function rssOf(pid: number): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!m) throw new Error('no VmRSS');
  return Number(m[1]) * 1024;
}

describe(`${COUNT} concurrent WebSockets`, () => {
  let world: World;
  let app: WsUpstream;
  let daemon: Daemon;

  before(async () => {
    world = await startWorld();
    app = await startWsUpstream();
    daemon = await Daemon.start(
      world,
      gwToml(world, {
        workers: 1,
        extra: `
[upstream.ws]
type = "http"
url = "${app.url}"

[[route]]
prefix = "/ws/"
upstream = "ws"
`,
      }),
    );
  });

  after(async () => {
    await daemon?.kill();
    await app?.stop();
    await world?.stop();
  });

  test('all open and usable; memory per idle connection measured', async (t) => {
    const status = await daemon.status();
    const pid = status.workers[0]!.pid;
    // Warm up (JIT, pools, first-connection allocations) before the baseline.
    const warm = await Promise.all(Array.from({ length: 20 }, () => connect(wsUrl(world.m2.url, '/ws/echo'))));
    for (const ws of warm) {
      ws.send('warm');
      await nextMessage(ws);
    }
    await sleep(500);
    const before = await rssOf(pid);
    const clients: WebSocket[] = [];
    for (let i = 0; i < COUNT; i += 50) {
      clients.push(...(await Promise.all(Array.from({ length: Math.min(50, COUNT - i) }, () => connect(wsUrl(world.m2.url, '/ws/echo'))))));
    }
    assert.equal(clients.length, COUNT);
    await Promise.all(
      clients.map(async (ws, i) => {
        ws.send(`m${i}`);
        assert.equal((await nextMessage(ws)).data.toString(), `m${i}`);
      }),
    );
    await sleep(1000);
    const open = await rssOf(pid);
    const perConn = (open - before) / COUNT;
    t.diagnostic(`worker RSS ${(before / 1048576).toFixed(1)} MiB → ${(open / 1048576).toFixed(1)} MiB with ${COUNT} more WebSockets: ${(perConn / 1024).toFixed(1)} KiB per connection`);
    process.stderr.write(`websocket-many: RSS per idle WebSocket ${(perConn / 1024).toFixed(1)} KiB (${COUNT} connections)\n`);
    // Generous: a few socket buffers and objects per connection, not whole messages.
    assert.ok(perConn < 128 * 1024, `${perConn} bytes per connection`);
    // Each is still live after the measurement.
    await Promise.all(
      clients.slice(0, 100).map(async (ws, i) => {
        ws.send(`again${i}`);
        assert.equal((await nextMessage(ws)).data.toString(), `again${i}`);
      }),
    );
    for (const ws of [...clients, ...warm]) ws.terminate();
    await waitFor(async () => (await daemon.admin('/metrics')).body.includes('m2gw_websocket_connections 0'), 15_000, 100, 'every WebSocket closed in m2gw');
  });
});
