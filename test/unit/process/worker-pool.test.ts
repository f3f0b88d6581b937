/**
 * WorkerPool with real forks when forking fails: the two ways Node reports it (an 'error'
 * without 'exit', simulated by a missing node binary as EAGAIN would be; a synchronous throw,
 * simulated by an invalid execArgv as ENOMEM would be) must neither leave a handle that looks
 * alive nor leak the workers forked before it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerPool, type PoolEvents } from '../../../src/process/worker-pool.js';
import { WorkerForkError, type WorkerHandle } from '../../../src/process/worker-handle.js';
import { sleep } from '../../harness/wait.js';
import { minimalConfigText } from './minimal-config.js';

/** A config a worker accepts; its Mongrel2 is not there, so it stays up, never ready. */
const TEXT = minimalConfigText();

interface Recorded {
  exits: Array<{ id: number; code: number | null; signal: NodeJS.Signals | null }>;
  spareExits: number[];
  spareForkFailures: WorkerForkError[];
  replacementsReady: number[];
}

function pool(): { pool: WorkerPool; seen: Recorded } {
  const seen: Recorded = { exits: [], spareExits: [], spareForkFailures: [], replacementsReady: [] };
  const events: PoolEvents = {
    onReplacementReady: (w) => void seen.replacementsReady.push(w.id),
    onFailed: () => undefined,
    onExit: (w, code, signal) => void seen.exits.push({ id: w.id, code, signal }),
    onSpareExit: (w) => void seen.spareExits.push(w.id),
    onSpareForkFailed: (err) => void seen.spareForkFailures.push(err),
    onClosed: () => undefined,
    onBusy: () => undefined,
    onFinalMetrics: () => undefined,
    onCongested: () => undefined,
    onLentReport: () => undefined,
    onPullBack: () => undefined,
  };
  const p = new WorkerPool('/nonexistent/m2gw.toml', events, (ids) => ids.map(() => null), () => true);
  pools.push(p);
  return { pool: p, seen };
}

const pools: WorkerPool[] = [];
after(() => {
  for (const p of pools) {
    p.close();
    for (const w of p.workers.values()) w.kill();
  }
});

function exitedWithin(w: WorkerHandle, ms: number): Promise<boolean> {
  return Promise.race([w.exited.then(() => true), sleep(ms).then(() => false)]);
}

/** Run `fn` with forks failing the way `how` says. */
function withForksFailing<T>(how: 'after' | 'throw', fn: () => T): T {
  const execPath = process.execPath;
  const execArgv = [...process.execArgv];
  if (how === 'after') process.execPath = '/nonexistent/node';
  else process.execArgv.push('--invalid\0');
  try {
    return fn();
  } finally {
    process.execPath = execPath;
    process.execArgv.splice(0, process.execArgv.length, ...execArgv);
  }
}

test('a spare whose fork fails without an exit (EAGAIN, ENOENT) counts as exited, and the next worker is a fresh fork', async () => {
  const { pool: p, seen } = pool();
  const spare = withForksFailing('after', () => p.forkSpare());
  assert.ok(spare);
  assert.ok(await exitedWithin(spare, 5_000), 'the failed spare exits');
  assert.equal(spare.alive, false);
  assert.equal(p.spare, null);
  assert.deepEqual(seen.spareExits, [spare.id]);
  const w = p.spawn(1, TEXT, [0], false);
  assert.notEqual(w, spare);
  assert.ok(w.pid > 0, 'a real process');
  w.expectedExit = true;
  w.kill();
  assert.ok(await exitedWithin(w, 5_000));
});

test('a replacement whose fork fails without an exit is reported as a dead worker, not left "starting"', async () => {
  const { pool: p, seen } = pool();
  const w = withForksFailing('after', () => p.spawn(1, TEXT, [0], false));
  assert.ok(await exitedWithin(w, 5_000), 'the failed replacement exits');
  assert.deepEqual(seen.exits, [{ id: w.id, code: null, signal: null }]);
  assert.equal(p.workers.size, 0);
});

test('a fork that throws (ENOMEM, EMFILE): spawn throws WorkerForkError, the spare is reported, startGeneration kills what it forked before and rejects', async () => {
  const { pool: p, seen } = pool();
  assert.throws(() => withForksFailing('throw', () => p.spawn(1, TEXT, [0], false)), WorkerForkError);
  assert.equal(withForksFailing('throw', () => p.forkSpare()), null);
  assert.equal(seen.spareForkFailures.length, 1);
  assert.ok(seen.spareForkFailures[0] instanceof WorkerForkError);

  // The first worker of the generation is the spare (no fork), the second fork throws.
  const spare = p.forkSpare();
  assert.ok(spare && spare.pid > 0);
  const starting = withForksFailing('throw', () => p.startGeneration(1, TEXT, 2, [0], false));
  await assert.rejects(starting, WorkerForkError);
  assert.ok(await exitedWithin(spare, 5_000), 'the worker forked before the failure is killed');
  assert.equal(p.workers.size, 0);
});

test('a "ready" that arrives after the exit (IPC can trail it) is ignored: a dead worker is never handed connections', async () => {
  const { pool: p, seen } = pool();
  const w = p.spawn(1, TEXT, [0], false);
  w.expectedExit = true;
  w.kill();
  assert.ok(await exitedWithin(w, 5_000));
  w['onMessage']({ t: 'ready' }, null);
  assert.deepEqual(seen.replacementsReady, []);
  assert.equal(w.state, 'exited');
});
