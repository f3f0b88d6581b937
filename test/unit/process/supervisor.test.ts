/**
 * The supervisor's own handling of reloads and failures, driven on a Supervisor that is
 * constructed but not started: its pool's map and events are the real ones, its workers stubs
 * (the windows tested here, such as a worker dying between two awaits, cannot be produced for
 * real). Real forks are in test/process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../../src/config/load.js';
import { Supervisor } from '../../../src/process/supervisor.js';
import type { WorkerHandle } from '../../../src/process/worker-handle.js';
import { waitFor } from '../../harness/wait.js';
import { minimalConfigText } from './minimal-config.js';

const toml = (extra = ''): string => minimalConfigText('workers = 1\nspare_worker = false', extra);

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-sup-test-'));
}

function supervisor(dir: string, text: string): Supervisor {
  const file = path.join(dir, 'm2gw.toml');
  fs.writeFileSync(file, text);
  const { config } = parseConfigText(text, file);
  if (!config) throw new Error('test config invalid');
  return new Supervisor(file, text, config);
}

interface StubOptions {
  query?: () => Promise<unknown>;
}

/** Stands in for a WorkerHandle: what the supervisor calls of one, recording what it is sent. */
function stubWorker(sup: Supervisor, id: number, generation: number, opts: StubOptions = {}): WorkerHandle & { delivered: string[] } {
  const delivered: string[] = [];
  const w = {
    id,
    generation,
    state: 'active',
    expectedExit: false,
    pid: 10_000 + id,
    startedAt: Date.now(),
    delivered,
    get alive(): boolean {
      return w.state !== 'exited';
    },
    deliver: (_h: number, msg: Buffer) => void delivered.push(msg.toString().split(' ')[1]!),
    retire: () => void (w.state = 'retiring'),
    stop: () => void (w.state = 'stopping'),
    kill: () => undefined,
    lendPull: () => false,
    returnPull: () => undefined,
    reopenLogs: () => undefined,
    query: opts.query ?? (() => Promise.resolve(null)),
  };
  const handle = w as unknown as WorkerHandle & { delivered: string[] };
  sup.pool.workers.set(id, handle);
  return handle;
}

test('after a reload, the handler watch and the admin listener log to the new logger (was: the closed one, lines lost)', async () => {
  const dir = tempDir();
  try {
    const logFile = path.join(dir, 'm2gw.log');
    const sup = supervisor(dir, toml(`[log]\nlevel = "info"\nformat = "json"\nfile = "${logFile}"\n[admin]\nlisten = "127.0.0.1:0"\n`));
    const admin = sup['admin'];
    await admin.start(sup.config);
    assert.ok(admin.address, 'admin listener started');
    stubWorker(sup, 1, 1, { query: () => Promise.reject(new Error('query exploded')) });
    // What a successful reload does to the logger (the kept handler and the admin listener stay).
    sup['applyLogConfig'](sup.config);
    sup.handlers.get(0)!.watch.newConnection(false);
    const res = await fetch(`http://${admin.address!}/status`);
    assert.equal(res.status, 500);
    await admin.close();
    sup.log.close();
    const messages = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { message: string }).message);
    assert.ok(messages.some((m) => m.startsWith('requests arrive without DOWNLOAD_CREDITS')), messages.join('\n'));
    assert.ok(messages.includes('admin request failed'), messages.join('\n'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a new worker that dies after it was ready but before the switch fails the reload: the old generation keeps the new connections', async () => {
  const dir = tempDir();
  try {
    const sup = supervisor(dir, toml());
    sup.state = 'running';
    sup.generation = 1;
    const old = stubWorker(sup, 1, 1);
    sup.owners.add(old, true);
    const events = sup['poolEvents']();
    let fresh: WorkerHandle | null = null;
    sup.pool.startGeneration = (generation) => {
      fresh = stubWorker(sup, 2, generation);
      return Promise.resolve([fresh]);
    };
    const reclaimAll = sup.lending.reclaimAll.bind(sup.lending);
    sup.lending.reclaimAll = async () => {
      // Ready (startGeneration resolved), then gone: what WorkerPool.onExit reports, no waiter left.
      fresh!.state = 'exited';
      sup.pool.workers.delete(fresh!.id);
      events.onExit(fresh!, null, 'SIGKILL', false);
      return reclaimAll();
    };
    await sup.reload();
    assert.equal(sup.lastReload?.result, 'failed');
    assert.match(sup.lastReload.message, /died before the switch/);
    assert.equal(sup.generation, 1, 'no switch');
    assert.equal(sup.state, 'running');
    const req = (id: number): Buffer => Buffer.from(`uuid ${id} /x 22:{"PATH":"/x","METHOD":"GET"},0:,`);
    for (const id of [1, 2, 3]) sup.owners.deliver(0, req(id));
    assert.deepEqual(old.delivered, ['1', '2', '3']);
    assert.equal(old.state, 'active', 'not retired');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('at start-up, a worker that dies after it was ready but before start() goes on is never handed connections: they wait for its replacement', async () => {
  const dir = tempDir();
  const signals = ['SIGHUP', 'SIGTERM', 'SIGINT', 'SIGUSR1'] as const;
  const listenersBefore = new Map(signals.map((s) => [s, process.listeners(s)]));
  try {
    const sup = supervisor(dir, toml(`[log]\nlevel = "error"\nfile = "${path.join(dir, 'm2gw.log')}"\n`));
    const events = sup['poolEvents']();
    let dead: (WorkerHandle & { delivered: string[] }) | null = null;
    sup.pool.startGeneration = (generation) => {
      dead = stubWorker(sup, 1, generation);
      // Ready (startGeneration resolves with it), then gone before start() resumes: what
      // WorkerPool.onExit reports for a worker no longer starting.
      dead.state = 'exited';
      sup.pool.workers.delete(dead.id);
      events.onExit(dead, null, 'SIGKILL', false);
      return Promise.resolve([dead]);
    };
    const spawned: number[] = [];
    sup.pool.spawn = ((generation: number) => {
      spawned.push(generation);
      return stubWorker(sup, 2, generation);
    }) as typeof sup.pool.spawn;
    sup.handlers.connect = () => Promise.resolve();
    await sup.start();
    assert.equal(sup.state, 'running');
    const req = (id: number): Buffer => Buffer.from(`uuid ${id} /x 22:{"PATH":"/x","METHOD":"GET"},0:,`);
    for (const id of [1, 2]) sup.owners.deliver(0, req(id));
    assert.deepEqual(dead!.delivered, [], 'nothing for the dead worker');
    assert.equal(sup.owners.parkedCount, 2, 'new connections wait');
    // The crash policy forks a replacement after its delay; once ready it gets the waiting ones.
    await waitFor(() => spawned.length === 1, 5_000, 10, 'a replacement forked');
    const replacement = sup.pool.workers.get(2) as WorkerHandle & { delivered: string[] };
    events.onReplacementReady(replacement);
    assert.deepEqual(replacement.delivered, ['1', '2']);
    sup['lending'].stop().catch(() => undefined);
    sup.log.close();
  } finally {
    for (const s of signals) for (const l of process.listeners(s)) if (!listenersBefore.get(s)!.includes(l)) process.off(s, l);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a reload that moves the admin listener to a busy address keeps the old listener and reports the reload as failed', async () => {
  const dir = tempDir();
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  try {
    const logFile = path.join(dir, 'm2gw.log');
    const logToml = `[log]\nlevel = "info"\nformat = "json"\nfile = "${logFile}"\n`;
    const sup = supervisor(dir, toml(`${logToml}[admin]\nlisten = "127.0.0.1:0"\n`));
    sup.state = 'running';
    sup.generation = 1;
    const admin = sup['admin'];
    await admin.start(sup.config);
    const before = admin.address;
    assert.ok(before);
    sup.owners.add(stubWorker(sup, 1, 1), true);
    sup.pool.startGeneration = (generation) => Promise.resolve([stubWorker(sup, 2, generation)]);
    const port = (busy.address() as net.AddressInfo).port;
    fs.writeFileSync(sup.file, toml(`${logToml}[admin]\nlisten = "127.0.0.1:${port}"\n`));
    await sup.reload();
    assert.equal(sup.generation, 2, 'the rest of the reload applied');
    assert.equal(sup.lastReload?.result, 'failed');
    assert.match(sup.lastReload.message, /could not move to 127\.0\.0\.1:\d+ .*still on/);
    assert.equal(admin.address, before);
    assert.equal((await fetch(`http://${before}/healthz`)).status, 200);
    await admin.close();
    sup.log.close();
  } finally {
    busy.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a replacement whose fork throws (ENOMEM, EMFILE) is logged and retried after the restart delay; the supervisor stays up', async () => {
  const dir = tempDir();
  const execArgv = [...process.execArgv];
  try {
    const logFile = path.join(dir, 'm2gw.log');
    const sup = supervisor(dir, toml(`[log]\nlevel = "info"\nformat = "json"\nfile = "${logFile}"\n`));
    sup.state = 'running';
    sup.generation = 1;
    process.execArgv.push('--invalid\0');
    sup['replaceCrashed']();
    // After 100 ms, then 200 ms more: each attempt counted, none thrown out of its timer.
    await waitFor(() => sup.restartCount >= 3, 5_000, 10, 'two retries after the first attempt');
    sup.state = 'stopping';
    sup.log.close();
    const messages = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { message: string }).message);
    assert.ok(messages.filter((m) => m === 'worker could not be forked').length >= 2, messages.join('\n'));
    assert.equal(sup.pool.workers.size, 0);
  } finally {
    process.execArgv.splice(0, process.execArgv.length, ...execArgv);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
