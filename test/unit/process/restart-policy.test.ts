/** Backoff and crash-loop detection for dead workers; what a reload may not change. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HandlerConfig } from '../../../src/config/schema.js';
import { planHandlers } from '../../../src/process/reload-config.js';
import { RestartPolicy } from '../../../src/process/restart-policy.js';

test('delays double from 100 ms, capped, and five deaths within 30 s are a crash loop', () => {
  const p = new RestartPolicy();
  assert.equal(p.crashed(0), 100);
  assert.equal(p.crashed(1_000), 200);
  assert.equal(p.crashed(2_000), 400);
  assert.equal(p.crashed(3_000), 800);
  assert.equal(p.crashed(4_000), null, 'fifth death within 30 s');
});

test('deaths spread out are not a loop, and the delay falls back after a quiet window', () => {
  const p = new RestartPolicy({ maxDelayMs: 1_000 });
  const delays: Array<number | null> = [];
  for (let i = 0; i < 10; i++) delays.push(p.crashed(i * 8_000));
  assert.ok(delays.every((d) => d !== null), 'at most 4 within any 30 s');
  assert.equal(Math.max(...(delays as number[])), 1_000, 'capped');
  assert.equal(p.crashed(200_000), 100, 'quiet for longer than the window: back to the minimum');
  assert.equal(p.recent(200_000), 1);
});

test('a reload maps handlers by their sockets: kept, added, removed, changed (remove + add)', () => {
  const h = (send: number, recv: number, recvIdent = ''): HandlerConfig => ({
    sendSpec: `tcp://127.0.0.1:${send}`,
    recvSpec: `tcp://127.0.0.1:${recv}`,
    recvIdent,
    chroot: '/a',
    uploadTempStore: '/tmp/upload.XXXXXX',
    keepAliveMs: 20_000,
    sendTimeoutMs: 60_000,
  });
  let next = 10;
  const running = [
    { id: 0, config: h(1, 2) },
    { id: 1, config: h(3, 4) },
    { id: 2, config: h(5, 6) },
  ];
  // Reordered, chroot changed on the first, the second gone, the third changed, one new.
  const plan = planHandlers(running, [h(7, 8), h(5, 6, 'x'), { ...h(1, 2), chroot: '/b' }], () => next++);
  assert.deepEqual(plan.ids, [10, 11, 0]);
  assert.deepEqual(plan.added.map((a) => [a.id, a.config.sendSpec]), [
    [10, 'tcp://127.0.0.1:7'],
    [11, 'tcp://127.0.0.1:5'],
  ]);
  assert.deepEqual(plan.removed, [{ id: 1 }, { id: 2 }]);
  const same = planHandlers(running, running.map((r) => r.config), () => next++);
  assert.deepEqual(same, { ids: [0, 1, 2], added: [], removed: [] });
});
