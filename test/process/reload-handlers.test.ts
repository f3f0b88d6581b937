/**
 * Issue 9 item 4: [[handler]] sections added, removed and changed by SIGHUP, under load.
 * One Mongrel2 with four Handlers (routes /a/ /b/ /c/ /d/); m2gw starts with A, B, C and
 * reloads to A, C changed (another recv_ident: a remove plus an add on the same send_spec)
 * and D. A keeps serving throughout without a failed request; B's in-flight request ends
 * normally before B disconnects; C and D serve after the reload. Then C is removed and put
 * back while its removal still drains: both PULLs share its send_spec and every request on C
 * is served. With two workers, and with one (the supervisor lends it every handler's PULL:
 * taken back for the reload, lent again after).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { request } from '../harness/http-client.js';
import { allocHandlerSpecs, startMongrel2 } from '../harness/mongrel2.js';
import { startHttpUpstream } from '../harness/upstream-http.js';
import { sleep, waitFor } from '../harness/wait.js';
import { Daemon, startLoad, worldAround, type World } from './support.js';

interface H {
  name: 'a' | 'b' | 'c' | 'd';
  sendSpec: string;
  recvSpec: string;
}

for (const workers of [2, 1]) describe(`reload adds, removes and changes handlers (${workers} worker${workers > 1 ? 's' : ''})`, () => {
  let world: World;
  let handlers: H[];
  let daemon: Daemon;
  /** Started before the world exists: stopped by after() even if the world never came up. */
  let upstreams: Array<{ close(): Promise<void> }> = [];

  function toml(list: Array<{ h: H; recvIdent?: string }>): string {
    const sections = list
      .map(
        ({ h, recvIdent }) => `
[[handler]]
send_spec = "${h.sendSpec}"
recv_spec = "${h.recvSpec}"
recv_ident = "${recvIdent ?? ''}"
chroot = "${world.m2.chroot}"
`,
      )
      .join('');
    const routes = ['a', 'b', 'c', 'd'].map((n) => `\n[[route]]\nprefix = "/${n}/"\nupstream = "a"\nstrip_prefix = true\n`).join('');
    return `[gateway]
workers = ${workers}
drain_timeout = "10s"
pid_file = "${world.pidFile}"
[admin]
listen = "127.0.0.1:${world.adminPort}"
[log]
level = "info"
access_log = false
${sections}
[upstream.a]
type = "http"
url = "${world.upA.url}"
${routes}`;
  }

  before(async () => {
    const specs = await allocHandlerSpecs(4);
    handlers = (['a', 'b', 'c', 'd'] as const).map((name, i) => ({ name, ...specs[i]! }));
    const [upA, upB] = await Promise.all([startHttpUpstream(), startHttpUpstream()]);
    upstreams = [upA!, upB!];
    const m2 = await startMongrel2({
      handlers: handlers.map((h) => ({ name: h.name, sendSpec: h.sendSpec, recvSpec: h.recvSpec })),
      routes: handlers.map((h) => ({ path: `/${h.name}/`, handler: h.name })),
    });
    world = await worldAround(m2, upA!, upB!);
    daemon = await Daemon.start(world, toml([{ h: handlers[0]! }, { h: handlers[1]! }, { h: handlers[2]! }]));
  });

  after(async () => {
    await daemon?.kill();
    if (world) await world.stop();
    else await Promise.all(upstreams.map((u) => u.close()));
  });

  test('A keeps serving with 0 failures; B finishes in-flight then disconnects; C (changed) and D (added) serve', async () => {
    const [a, b, c, d] = handlers as [H, H, H, H];
    for (const n of ['a', 'b', 'c']) assert.equal((await request(`${world.m2.url}/${n}/echo/before`)).status, 200, n);
    if (workers === 1) {
      const lent = await waitFor(async () => ((await daemon.status()).handlers.every((h) => h.pullLentTo !== null) ? true : null), 5_000, 20, 'every PULL lent');
      assert.ok(lent);
    }
    const load = startLoad(world.m2.url, 4, '/a/echo/load');
    try {
      await sleep(300);
      // In flight on B across the reload.
      const slowB = request(`${world.m2.url}/b/slow/1500`, { timeoutMs: 15_000 });
      await waitFor(() => world.upA.requests.some((r) => r.url === '/slow/1500'), 5_000, 10, 'B request reached the upstream');
      await fsp.writeFile(world.configFile, toml([{ h: d }, { h: a }, { h: c, recvIdent: 'c-changed' }]));
      const mark = daemon.logs.length;
      daemon.signal('SIGHUP');
      await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reloaded:'), 15_000, 'reload');
      const slow = await slowB;
      assert.equal(slow.status, 200, 'the in-flight request on the removed handler finished');
      assert.equal(slow.body.toString(), 'slow 1500\n');
      const gone = await daemon.waitForLog(
        (l) => daemon.logs.indexOf(l) >= mark && l.message === 'removed handler disconnected' && l.handler === b.sendSpec,
        15_000,
        'B disconnected',
      );
      assert.equal(gone.connections_left, 0);
      for (const n of ['c', 'd']) {
        const res = await request(`${world.m2.url}/${n}/echo/after`, { timeoutMs: 5_000 });
        assert.equal(res.status, 200, `${n} after the reload: ${res.body.toString()}`);
      }
      await sleep(500);
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.result.errors, [], `failed requests on A: ${JSON.stringify(load.result.statuses)}`);
    assert.ok(load.result.ok > 100, `load actually ran (${load.result.ok} requests)`);
    const status = await waitFor(
      async () => {
        const s = await daemon.status();
        return s.handlers.length === 3 ? s : null;
      },
      15_000,
      100,
      'only the three configured handlers left',
    );
    assert.deepEqual(status!.handlers.map((h) => h.sendSpec).sort(), [a.sendSpec, c.sendSpec, d.sendSpec].sort());
    assert.ok(status!.handlers.every((h) => h.pullConnected && h.subscribed));
    assert.equal((await daemon.admin('/readyz')).status, 200);
    if (workers === 1) {
      const s = await waitFor(
        async () => {
          const st = await daemon.status();
          return st.workers.length === 1 && st.handlers.every((h) => h.pullLentTo === st.workers[0]!.id) ? st : null;
        },
        10_000,
        50,
        'every PULL lent to the new worker',
      );
      assert.equal(s!.generation, 2);
    }
  });

  test('C removed and put back while a request keeps it draining: every request on C served, none refused', async () => {
    const [a, , c, d] = handlers as [H, H, H, H];
    const reload = async (list: Array<{ h: H; recvIdent?: string }>): Promise<void> => {
      await fsp.writeFile(world.configFile, toml(list));
      const mark = daemon.logs.length;
      daemon.signal('SIGHUP');
      await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reloaded:'), 15_000, 'reload');
    };
    const slowC = request(`${world.m2.url}/c/slow/6000`, { timeoutMs: 15_000 });
    await waitFor(() => world.upA.requests.some((r) => r.url === '/slow/6000'), 5_000, 10, 'C request reached the upstream');
    await reload([{ h: d }, { h: a }]);
    await reload([{ h: d }, { h: a }, { h: c, recvIdent: 'c-changed' }]);
    // Mongrel2 alternates between the two PULLs on C's send_spec.
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await request(`${world.m2.url}/c/echo/${i}`, { timeoutMs: 5_000 })).status);
    assert.deepEqual(statuses, Array(8).fill(200));
    assert.equal((await slowC).status, 200, 'the request that kept C draining finished');
  });
});
