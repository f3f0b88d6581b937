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
