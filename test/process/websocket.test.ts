/**
 * WebSockets through the real daemon (supervisor + 2 workers): every frame of a
 * connection reaches the worker that owns it, and a reload leaves open WebSockets with
 * their old worker (HTTP reloads meanwhile) until drain_timeout, then 1001.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type WebSocket from 'ws';
import { request } from '../harness/http-client.js';
import { sleep, waitFor } from '../harness/wait.js';
import { closeOf, connect, nextMessage, startWsUpstream, wsUrl, type WsUpstream } from '../integration/websocket-support.js';
import { Daemon, gwToml, startWorld, type World } from './support.js';

describe('WebSockets under the process manager', () => {
  let world: World;
  let app: WsUpstream;
  let daemon: Daemon;
  const toml = (probe: 'a' | 'b'): string =>
    gwToml(world, {
      workers: 2,
      drainTimeout: '2s',
      accessLog: true,
      probe,
      extra: `
[upstream.ws]
type = "http"
url = "${app.url}"

[[route]]
prefix = "/ws/"
upstream = "ws"
`,
    });

  before(async () => {
    world = await startWorld();
    app = await startWsUpstream();
    daemon = await Daemon.start(world, toml('a'));
  });

  after(async () => {
    await daemon?.kill();
    await app?.stop();
    await world?.stop();
  });

  async function echo(ws: WebSocket, text: string): Promise<void> {
    ws.send(text);
    assert.equal((await nextMessage(ws)).data.toString(), text);
  }

  test('two workers: every message of a WebSocket reaches the worker that owns it', async () => {
    const clients = await Promise.all(Array.from({ length: 16 }, (_, i) => connect(wsUrl(world.m2.url, `/ws/echo?c=${i}`))));
    await Promise.all(
      clients.map(async (ws, i) => {
        for (let n = 0; n < 20; n++) await echo(ws, `c${i}-m${n}`);
      }),
    );
    await Promise.all(clients.map(async (ws) => {
      const closed = closeOf(ws);
      ws.close(1000, 'done');
      await closed;
    }));
    const lines = await waitFor(() => {
      const l = daemon.logs.filter((r) => r.type === 'websocket' && String(r.path).startsWith('/ws/echo?c='));
      return l.length === 16 ? l : null;
    }, 10_000, 50, '16 websocket access lines');
    for (const l of lines!) {
      assert.equal(l.messages_in, 20, `${String(l.path)}: one worker saw every message`);
      assert.equal(l.messages_out, 20);
      assert.equal(l.close_code, 1000);
    }
    assert.equal(new Set(lines!.map((l) => l.pid)).size, 2, 'both workers carried WebSockets');
  });

  test('reload: open WebSockets stay with the old worker, HTTP reloads at once; 1001 after drain_timeout', async () => {
    const old = await Promise.all(Array.from({ length: 4 }, (_, i) => connect(wsUrl(world.m2.url, `/ws/echo?old=${i}`))));
    for (const ws of old) await echo(ws, 'before');
    const closes = old.map((ws) => closeOf(ws));
    const mark = daemon.logs.length;
    await import('node:fs/promises').then((fs) => fs.writeFile(world.configFile, toml('b')));
    const t0 = Date.now();
    daemon.signal('SIGHUP');
    await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reloaded:'), 10_000, 'reloaded');
    // HTTP goes to the new generation at once.
    const res = await request(`${world.m2.url}/probe/echo/after-reload`);
    assert.equal(res.status, 200);
    assert.ok(world.upB.requests.some((r) => r.url === '/echo/after-reload'), 'the new route served the request');
    // The old WebSockets still work, and so does a new one.
    for (const ws of old) await echo(ws, 'after reload');
    const fresh = await connect(wsUrl(world.m2.url, '/ws/echo?fresh=1'));
    await echo(fresh, 'new generation');
    // drain_timeout (2 s) later the old worker closes them: 1001.
    const results = await Promise.all(closes);
    const elapsed = Date.now() - t0;
    for (const r of results) assert.deepEqual(r, { code: 1001, reason: 'server going away' });
    assert.ok(elapsed >= 1_500, `closed after ${elapsed} ms, not before drain_timeout`);
    assert.ok(elapsed < 8_000, `closed after ${elapsed} ms`);
    // The new generation's WebSocket is untouched.
    await echo(fresh, 'still here');

    // SIGTERM does the same to the rest: 1001, then the daemon exits.
    const freshClosed = closeOf(fresh);
    daemon.signal('SIGTERM');
    assert.equal((await freshClosed).code, 1001);
    const exit = await daemon.exited;
    assert.equal(exit.code, 0);
    await sleep(10);
  });
});
