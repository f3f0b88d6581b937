/**
 * `[gateway] spare_worker = false`: no pre-forked worker is kept, a crashed worker is still
 * replaced (by a fresh fork), and a reload turns the spare on and off.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { request } from '../harness/http-client.js';
import { sleep, waitFor } from '../harness/wait.js';
import { Daemon, gwToml, startWorld, type World } from './support.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('spare worker', () => {
  const worlds: World[] = [];
  const daemons: Daemon[] = [];

  after(async () => {
    for (const d of daemons) await d.kill();
    for (const w of worlds) await w.stop();
  });

  test('spare_worker = false: no spare, a crashed worker is replaced by a fresh fork; reload turns the spare on, then off', async () => {
    const world = await startWorld();
    worlds.push(world);
    const daemon = await Daemon.start(world, gwToml(world, { workers: 1, spareWorker: false }));
    daemons.push(daemon);

    // The pool would fork a spare 1 s after a worker starts: wait past that.
    await sleep(1_500);
    const first = await daemon.status();
    assert.equal(first.sparePid, null, 'no spare');
    assert.equal(first.workers.length, 1);
    const victim = first.workers[0]!.pid;

    process.kill(victim, 'SIGKILL');
    const replaced = await daemon.waitForLog((l) => l.message === 'worker replaced', 10_000, 'worker replaced');
    assert.notEqual(replaced.pid, victim);
    for (let i = 0; i < 5; i++) assert.equal((await request(`${world.m2.url}/echo/after-crash-${i}`)).status, 200);
    await sleep(1_500);
    assert.equal((await daemon.status()).sparePid, null, 'still no spare after the replacement');

    const reload = async (spareWorker: boolean, n: number): Promise<void> => {
      const mark = daemon.logs.length;
      await fsp.writeFile(world.configFile, gwToml(world, { workers: 1, spareWorker }));
      daemon.signal('SIGHUP');
      await waitFor(() => daemon.logsSince(mark).some((l) => /^reloaded/.test(l.message)), 15_000, 20, `reload ${n}`);
    };

    await reload(true, 1);
    const on = await waitFor(async () => (await daemon.status()).sparePid, 10_000, 50, 'a spare after spare_worker = true');
    assert.ok(on !== null && alive(on), 'the spare runs');

    // The reload's new generation takes the spare as its worker; none is forked after it.
    await reload(false, 2);
    await waitFor(async () => (await daemon.status()).workers.some((w) => w.pid === on && w.state === 'active'), 10_000, 50, 'the spare became the new worker');
    await sleep(1_500);
    const off = await daemon.status();
    assert.equal(off.sparePid, null, 'no new spare after spare_worker = false');
    assert.ok(!daemon.logs.some((l) => l.message === 'spare worker exited'), daemon.dump());
    for (let i = 0; i < 5; i++) assert.equal((await request(`${world.m2.url}/echo/after-reload-${i}`)).status, 200);
  });
});
