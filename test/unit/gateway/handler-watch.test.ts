import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandlerWatch } from '../../../src/gateway/handler-watch.js';

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_700_000_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('flow control: false on a first request without DOWNLOAD_CREDITS, true once one has it', () => {
  const w = new HandlerWatch('tcp://x:1', null);
  assert.equal(w.flowControl, null);
  w.newConnection(false);
  assert.equal(w.flowControl, false);
  w.newConnection(true);
  assert.equal(w.flowControl, true);
  w.newConnection(false);
  assert.equal(w.flowControl, true, 'a handed-over connection does not turn it off again');
});

test('a burst of orphan control messages is not a shared socket; a steady rate is, and it clears', () => {
  const c = clock();
  const w = new HandlerWatch('tcp://x:1', null, c.now);
  // A restart: 50 orphans within one second.
  for (let i = 0; i < 50; i++) w.orphanControl('credits', String(i));
  assert.equal(w.shared, null);
  assert.equal(w.orphans, 50);
  c.advance(40_000);
  // Steady: 3 per second for 10 seconds.
  for (let s = 0; s < 10; s++) {
    for (let i = 0; i < 3; i++) w.orphanControl('credits', `${s}-${i}`);
    c.advance(1000);
  }
  assert.match(w.shared ?? '', /tcp:\/\/x:1.*another process probably PULLs from the same send_spec/);
  c.advance(61_000);
  assert.equal(w.shared, null, 'cleared after a quiet minute');
});

test('late control messages for connections we dropped recently do not count', () => {
  const c = clock();
  const w = new HandlerWatch('tcp://x:1', null, c.now);
  for (let s = 0; s < 20; s++) {
    w.forget(String(s));
    w.orphanControl('credits', String(s));
    w.orphanControl('disconnect', String(s));
    c.advance(1000);
  }
  assert.equal(w.orphans, 0);
  assert.equal(w.shared, null);
});

test('forget stays cheap at its cap: closes arriving faster than ids expire never rescan the whole map', () => {
  const c = clock();
  const w = new HandlerWatch('tcp://x:1', null, c.now);
  // 100,000 closes within 15 s (all still young), then 20,000 more: before, each of these
  // walked the full map (~1 ms apiece, ~20 s in all).
  for (let i = 0; i < 100_000; i++) w.forget(`a${i}`);
  const t0 = performance.now();
  for (let i = 0; i < 20_000; i++) w.forget(`b${i}`);
  const ms = performance.now() - t0;
  assert.ok(ms < 2_000, `20,000 forgets at the cap took ${ms.toFixed(0)} ms`);
  // The newest are still known; the oldest made room for them and are only counted if late.
  w.orphanControl('credits', 'b19999');
  assert.equal(w.orphans, 0);
  w.orphanControl('credits', 'a0');
  assert.equal(w.orphans, 1);
});

test('forgotten ids expire after 15 s, oldest first, and a re-forgotten id moves to the back', () => {
  const c = clock();
  const w = new HandlerWatch('tcp://x:1', null, c.now);
  w.forget('1');
  w.forget('2');
  c.advance(10_000);
  w.forget('1'); // reused id closed again: fresh
  c.advance(6_000);
  for (let i = 0; i < 60_000; i++) w.forget(`x${i}`); // past half the cap: pruning runs
  w.orphanControl('credits', 'y'); // prune() runs on every orphan
  w.orphanControl('credits', '2');
  assert.equal(w.orphans, 2, '"2" (16 s old) has expired');
  w.orphanControl('credits', '1');
  assert.equal(w.orphans, 2, '"1" was forgotten again 6 s ago: still known');
});
