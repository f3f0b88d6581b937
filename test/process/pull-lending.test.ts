/**
 * PULL lending (src/process/pull-lending.ts): with one worker, the worker reads the
 * handler's PULL itself. Requests, flow control and the supervisor's view of connections
 * as without it; reloads, a worker killed, Mongrel2 restarted and a stop all take the
 * PULL back (or reconnect it) and lose no request that was not in a dead worker's hands.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { request } from '../harness/http-client.js';
import { startMongrel2 } from '../harness/mongrel2.js';
import { patternBytes, startHttpUpstream } from '../harness/upstream-http.js';
import { sleep, waitFor } from '../harness/wait.js';
import { Daemon, gwToml, startLoad, startWorld, worldAround, type World } from './support.js';

/**
 * The id of the worker reading the handler's PULL, once it is lent to the only active worker
 * (other than `not`: right after a signal the status may still show the worker it was lent to).
 */
async function lentToActive(d: Daemon, what: string, timeoutMs = 5_000, not?: number): Promise<number> {
  const s = await waitFor(
    async () => {
      const st = await d.status();
      const active = st.workers.filter((w) => w.state === 'active');
      return active.length === 1 && st.workers.length === 1 && st.handlers[0]!.pullLentTo === active[0]!.id && active[0]!.id !== not ? st : null;
    },
    timeoutMs,
    20,
    what,
  );
  return s!.handlers[0]!.pullLentTo!;
}

describe('PULL lending (one worker)', () => {
  const worlds: World[] = [];
  const daemons: Daemon[] = [];

  after(async () => {
    for (const d of daemons) await d.kill();
    for (const w of worlds) await w.stop();
  });

  async function start(extra: Parameters<typeof gwToml>[1] = {}): Promise<{ world: World; daemon: Daemon }> {
    const world = await startWorld();
    worlds.push(world);
    const daemon = await Daemon.start(world, gwToml(world, { workers: 1, ...extra }));
    daemons.push(daemon);
    return { world, daemon };
  }

  test('the worker reads the PULL; requests, downloads under flow control and the connection table as before', async () => {
    const { world, daemon } = await start();
    const id = await lentToActive(daemon, 'PULL lent after start');
    const load = startLoad(world.m2.url, 3, '/echo/lent');
    await sleep(500);
    // The supervisor still knows every connection (reported by the worker).
    const during = await daemon.status();
    assert.ok(during.connections >= 3, `connections ${during.connections}`);
    // Several MiB with download.flow_control on: every credits message takes the lent path.
    const size = 3 * 1024 * 1024 + 7;
    const big = await request(`${world.m2.url}/bytes/${size}`, { timeoutMs: 20_000 });
    assert.equal(big.status, 200);
    assert.ok(big.body.equals(patternBytes(size)), 'body intact');
    const result = await load.stop();
    assert.equal(result.failed, 0, result.errors.join('; '));
    assert.ok(result.ok > 50, `only ${result.ok} requests`);
    const after = await daemon.status();
    assert.equal(after.handlers[0]!.orphanControls, 0, 'no control message was taken for an unknown connection');
    assert.equal(after.handlers[0]!.flowControl, true);
    assert.equal(after.handlers[0]!.pullLentTo, id);
  });

  test('reloads under load: the PULL comes back before each switch, no request fails, the new worker borrows it', async () => {
    const { world, daemon } = await start();
    const first = await lentToActive(daemon, 'lent after start');
    const load = startLoad(world.m2.url, 4, '/echo/reload');
    let last = first;
    for (let i = 0; i < 3; i++) {
      const n = daemon.logs.length;
      await fsp.writeFile(world.configFile, gwToml(world, { workers: 1, probe: i % 2 === 0 ? 'b' : 'a' }));
      daemon.signal('SIGHUP');
      await waitFor(() => daemon.logsSince(n).some((l) => /^reloaded/.test(l.message)), 15_000, 20, `reload ${i + 1}`);
      const next = await lentToActive(daemon, `lent to the new generation after reload ${i + 1}`, 15_000);
      assert.notEqual(next, last, 'a new worker holds it');
      last = next;
    }
    const result = await load.stop();
    assert.equal(result.failed, 0, result.errors.join('; '));
    assert.ok(result.ok > 100, `only ${result.ok} requests`);
    // The last reload pointed /probe/ at upstream b: the new worker serves it.
    const r = await request(`${world.m2.url}/probe/echo/x`);
    assert.equal(r.status, 200);
    assert.equal(world.upB.requests.at(-1)?.url, '/echo/x');
  });

  test('kill -9 of the worker holding the PULL: reconnected and lent to the replacement; then every request succeeds', async () => {
    const { world, daemon } = await start();
    const victim = await lentToActive(daemon, 'lent after start');
    const victimPid = (await daemon.status()).workers[0]!.pid;
    const load = startLoad(world.m2.url, 3, '/echo/crash');
    await sleep(300);
    process.kill(victimPid, 'SIGKILL');
    await daemon.waitForLog((l) => l.message === 'worker replaced', 5_000, 'worker replaced');
    const next = await lentToActive(daemon, 'lent to the replacement', 10_000, victim);
    assert.notEqual(next, victim);
    const result = await load.stop();
    // Requests the dead worker had read, or Mongrel2 had written to its socket, are lost
    // with it: at most one per client here (each client has one request in flight).
    assert.ok(result.failed <= 3, `${result.failed} failures: ${result.errors.join('; ')}`);
    for (let i = 0; i < 20; i++) assert.equal((await request(`${world.m2.url}/echo/after-${i}`)).status, 200);
  });

  test('the worker stopped behind the supervisor\'s back (SIGTERM to it alone): it gives the PULL back first; at most a 503 and a close per client, none hangs', async () => {
    const { world, daemon } = await start();
    const first = await lentToActive(daemon, 'lent after start');
    const pid = (await daemon.status()).workers[0]!.pid;
    const load = startLoad(world.m2.url, 3, '/echo/self-stop');
    await sleep(300);
    process.kill(pid, 'SIGTERM');
    const next = await lentToActive(daemon, 'lent to the replacement', 10_000, first).catch(async (err: unknown) => {
      await load.stop();
      throw err;
    });
    assert.notEqual(next, first);
    await sleep(300);
    const result = await load.stop();
    // The PULL came back rather than dying with the worker.
    assert.ok(!daemon.logs.some((l) => l.message === 'lent handler socket lost with the worker: reconnecting'), daemon.dump());
    // A draining worker answers new requests 503 (closing that connection), and its kept-alive
    // connections are closed when it exits (as without lending). A client's reconnection made
    // while the worker still read the PULL is one of those: at most two failures per client
    // (a 503, then the close), none hangs.
    assert.ok(result.failed <= 6, `${result.failed} failures: ${result.errors.join('; ')}`);
    for (let i = 0; i < 10; i++) assert.equal((await request(`${world.m2.url}/echo/after-${i}`)).status, 200);
  });

  test('Mongrel2 restarted: the worker reports the PULL lost, the supervisor reconnects and lends it again', async () => {
    const { world, daemon } = await start();
    const id = await lentToActive(daemon, 'lent after start');
    const m2 = world.m2;
    const port = Number(new URL(m2.url).port);
    const h = m2.handlers[0]!;
    await m2.stop();
    const again = await startMongrel2({ handlers: [{ name: 'gw', sendSpec: h.sendSpec, recvSpec: h.recvSpec }], routes: [{ path: '/', handler: 'gw' }], port });
    try {
      await daemon.waitForLog((l) => l.message === 'lent handler socket lost with the worker: reconnecting', 10_000, 'PULL reported lost');
      const results = await Promise.all(Array.from({ length: 10 }, (_, k) => request(`${again.url}/echo/again-${k}`, { timeoutMs: 10_000 })));
      results.forEach((r, k) => assert.equal(r.status, 200, `request ${k}`));
      assert.equal(await lentToActive(daemon, 'lent again', 10_000), id);
    } finally {
      await again.stop();
    }
  });

  test('ipc:// handler sockets: the unix-socket PULL is lent and taken back the same way', async () => {
    const up = await startHttpUpstream();
    const m2 = await startMongrel2({
      handlers: [{ name: 'gw', sendSpec: 'ipc://run/m2gw-send', recvSpec: 'ipc://run/m2gw-recv' }],
      routes: [{ path: '/', handler: 'gw' }],
    });
    const world = await worldAround(m2, up, up);
    worlds.push(world);
    const toml = (probe: string): string => `[gateway]
workers = 1
pid_file = "${world.pidFile}"
[admin]
listen = "127.0.0.1:${world.adminPort}"
[log]
level = "info"
access_log = false
[[handler]]
send_spec = "ipc://${m2.dir}/run/m2gw-send"
recv_spec = "ipc://${m2.dir}/run/m2gw-recv"
chroot = "${m2.chroot}"
[upstream.a]
type = "http"
url = "${up.url}"
[[route]]
prefix = "/${probe}/"
upstream = "a"
strip_prefix = true
[[route]]
prefix = "/"
upstream = "a"
`;
    const daemon = await Daemon.start(world, toml('one'));
    daemons.push(daemon);
    const first = await lentToActive(daemon, 'the ipc PULL lent after start', 10_000);
    const load = startLoad(m2.url, 3, '/echo/ipc');
    await sleep(300);
    const n = daemon.logs.length;
    await fsp.writeFile(world.configFile, toml('two'));
    daemon.signal('SIGHUP');
    await waitFor(() => daemon.logsSince(n).some((l) => /^reloaded/.test(l.message)), 15_000, 20, 'reload');
    assert.notEqual(await lentToActive(daemon, 'lent to the new worker', 15_000, first), first);
    const result = await load.stop();
    assert.equal(result.failed, 0, result.errors.join('; '));
    assert.ok(result.ok > 50, `only ${result.ok} requests`);
    assert.equal((await request(`${m2.url}/two/echo/x`)).status, 200);
  });

  test('SIGTERM while lent: the PULL comes back, the request in flight finishes, exit 0', async () => {
    const { world, daemon } = await start({ drainTimeout: '10s' });
    await lentToActive(daemon, 'lent after start');
    const slow = request(`${world.m2.url}/slow/600`, { timeoutMs: 10_000 });
    await waitFor(() => world.upA.requests.some((r) => r.url === '/slow/600'), 5_000, 10, 'upstream has the request');
    daemon.signal('SIGTERM');
    const r = await slow;
    assert.equal(r.status, 200);
    const { code } = await daemon.exited;
    assert.equal(code, 0, daemon.dump());
  });
});
