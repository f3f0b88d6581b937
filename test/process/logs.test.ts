/**
 * SIGUSR1 reopens the log file in the supervisor and in every worker (logrotate
 * moves the file away, then signals).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { request } from '../harness/http-client.js';
import { waitFor } from '../harness/wait.js';
import { Daemon, gwToml, startWorld, type LogRecord, type World } from './support.js';

async function records(file: string): Promise<LogRecord[]> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LogRecord);
}

describe('log files', () => {
  let world: World;
  let daemon: Daemon;
  let logFile: string;

  before(async () => {
    world = await startWorld();
    logFile = path.join(world.dir, 'm2gw.log');
    daemon = await Daemon.start(world, gwToml(world, { workers: 2, logFile, accessLog: true }), { logFile: true });
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  test('SIGUSR1: the supervisor and every worker write to a new file after the old one was moved away', async () => {
    const status = await daemon.status();
    const workerPids = status.workers.map((w) => w.pid);
    // Every worker has written to the first file (an access line each, from new connections).
    await waitFor(
      async () => {
        await request(`${world.m2.url}/echo/before`);
        const pids = new Set((await records(logFile)).filter((r) => r.type === 'access').map((r) => r.pid));
        return workerPids.every((p) => pids.has(p));
      },
      5_000,
      0,
      'access lines from both workers',
    );
    const rotated = `${logFile}.1`;
    await fsp.rename(logFile, rotated);
    daemon.signal('SIGUSR1');
    await waitFor(() => existsSync(logFile), 3_000, 20, 'a new log file');
    // New lines go to the new file, from every process.
    await waitFor(
      async () => {
        await request(`${world.m2.url}/echo/after`);
        const pids = new Set((await records(logFile)).filter((r) => r.type === 'access').map((r) => r.pid));
        return workerPids.every((p) => pids.has(p));
      },
      5_000,
      0,
      'access lines from both workers in the new file',
    );
    assert.ok(
      (await records(logFile)).some((r) => r.message === 'log files reopened' && r.pid === daemon.pid),
      'the supervisor writes to the new file too',
    );
    const sizeBefore = (await fsp.stat(rotated)).size;
    await request(`${world.m2.url}/echo/more`);
    await waitFor(async () => (await records(logFile)).some((r) => r.path === '/echo/more'), 3_000, 20, 'access line for /echo/more');
    assert.equal((await fsp.stat(rotated)).size, sizeBefore, 'nothing more written to the moved file');
  });
});
