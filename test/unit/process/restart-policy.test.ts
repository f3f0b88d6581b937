/** Backoff and crash-loop detection for dead workers; what a reload may not change. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HandlerConfig } from '../../../src/config/schema.js';
import { handlerChange } from '../../../src/process/reload-config.js';
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

test('a reload may change everything about a handler but its sockets', () => {
  const h: HandlerConfig = { sendSpec: 'tcp://127.0.0.1:1', recvSpec: 'tcp://127.0.0.1:2', recvIdent: '', chroot: '/a', uploadTempStore: '/tmp/upload.XXXXXX', keepAliveMs: 20_000 };
  assert.equal(handlerChange([h], [{ ...h, chroot: '/b' }]), null);
  assert.match(handlerChange([h], [{ ...h, sendSpec: 'tcp://127.0.0.1:3' }]) ?? '', /handler 1: send_spec changed/);
  assert.match(handlerChange([h], [{ ...h, recvIdent: 'x' }]) ?? '', /recv_ident changed/);
  assert.match(handlerChange([h], [h, h]) ?? '', /number of \[\[handler\]\] sections changed \(1 → 2\)/);
});
