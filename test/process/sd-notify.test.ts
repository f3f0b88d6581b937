/**
 * systemd readiness protocol: with NOTIFY_SOCKET set, the supervisor runs
 * `systemd-notify --pid=<itself> READY=1` once serving, RELOADING=1 then READY=1
 * around a reload, STOPPING=1 on SIGTERM. A stand-in systemd-notify first on PATH
 * records the calls (the real one needs a service manager to talk to).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { waitFor } from '../harness/wait.js';
import { Daemon, gwToml, startWorld, type World } from './support.js';

describe('systemd notifications', () => {
  let world: World;
  let daemon: Daemon;
  let calls: string;

  before(async () => {
    world = await startWorld();
    calls = path.join(world.dir, 'notify-calls');
    const fake = path.join(world.dir, 'systemd-notify');
    await writeFile(
      fake,
      `#!${process.execPath}\nrequire('fs').appendFileSync(${JSON.stringify(calls)}, process.argv.slice(2).join(' ') + ' NOTIFY_SOCKET=' + process.env.NOTIFY_SOCKET + '\\n');\n`,
    );
    await chmod(fake, 0o755);
    const env = { ...process.env, PATH: `${world.dir}:${process.env.PATH ?? ''}`, NOTIFY_SOCKET: '/run/fake-notify' };
    daemon = await Daemon.start(world, gwToml(world, { workers: 1 }), { env });
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  const lines = async (): Promise<string[]> => (await readFile(calls, 'utf8').catch(() => '')).split('\n').filter(Boolean);

  test('READY=1 after start, RELOADING=1 / READY=1 around a reload, STOPPING=1 on stop', async () => {
    const pid = daemon.pid;
    await waitFor(async () => (await lines()).length === 1, 3_000, 20, 'READY=1');
    assert.match((await lines())[0]!, new RegExp(`^--pid=${pid} READY=1 STATUS=serving with 1 worker\\(s\\) NOTIFY_SOCKET=/run/fake-notify$`));
    daemon.signal('SIGHUP');
    await waitFor(async () => (await lines()).length === 3, 10_000, 20, 'reload notifications');
    const [, reloading, ready] = await lines();
    assert.match(reloading!, new RegExp(`^--pid=${pid} RELOADING=1 MONOTONIC_USEC=\\d+ `));
    assert.match(ready!, new RegExp(`^--pid=${pid} READY=1 `));
    daemon.signal('SIGTERM');
    assert.equal((await daemon.exited).code, 0);
    const all = await lines();
    assert.equal(all.length, 4);
    assert.match(all[3]!, new RegExp(`^--pid=${pid} STOPPING=1 `));
  });
});
