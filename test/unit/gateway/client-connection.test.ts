import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection, HIGH_WATER, LOW_WATER, type FlushScheduler } from '../../../src/gateway/client-connection.js';
import { parseReply } from '../../../src/mongrel2/reply.js';

/** Records frames; flushes synchronously when asked so tests control time. */
function harness(): { conn: ClientConnection; frames: Buffer[]; flush: () => void; scheduled: () => number } {
  const frames: Buffer[] = [];
  let pending = 0;
  const sched: FlushScheduler = { schedule: () => void pending++ };
  const conn = new ClientConnection('0:7', '7', { send: (f) => frames.push(f) }, 'uuid-1', sched);
  return {
    conn,
    frames,
    flush: () => {
      pending = 0;
      conn.flush();
    },
    scheduled: () => pending,
  };
}

const payloads = (frames: Buffer[]): Buffer[] => frames.map((f) => parseReply(f).payload);

test('metered: never more unacknowledged bytes than the DOWNLOAD_CREDITS window', () => {
  const h = harness();
  h.conn.window = 100_000;
  h.conn.write(Buffer.alloc(250_000, 1));
  h.flush();
  assert.equal(h.frames.length, 1);
  assert.equal(payloads(h.frames)[0]!.length, 100_000);
  h.flush();
  assert.equal(h.frames.length, 1, 'no credits, nothing more');
  h.conn.credit(60_000);
  h.flush();
  assert.equal(payloads(h.frames)[1]!.length, 60_000);
  h.conn.credit(100_000);
  h.flush();
  const total = payloads(h.frames).reduce((n, p) => n + p.length, 0);
  assert.equal(total, 250_000);
});

test('metered: a sliver of room is not worth a message', () => {
  const h = harness();
  h.conn.window = 100_000;
  h.conn.write(Buffer.alloc(100_000));
  h.flush();
  h.conn.write(Buffer.alloc(50_000));
  h.conn.credit(1_000);
  h.flush();
  assert.equal(h.frames.length, 1);
});

test('unmetered: small pieces are coalesced, a forced flush sends them as one message', () => {
  const h = harness();
  h.conn.write(Buffer.from('a'));
  h.conn.write(Buffer.from('b'));
  h.flush();
  assert.equal(h.frames.length, 0, 'held for company');
  h.conn.flushSoon();
  h.flush();
  assert.deepEqual(payloads(h.frames), [Buffer.from('ab')]);
});

test('unmetered: large bodies go out at once in big messages', () => {
  const h = harness();
  h.conn.write(Buffer.alloc(5 * 1024 * 1024));
  h.flush();
  assert.ok(h.frames.length <= 3, `${h.frames.length} messages`);
  assert.equal(payloads(h.frames).reduce((n, p) => n + p.length, 0), 5 * 1024 * 1024);
});

test('close message follows every queued byte, then nothing more is sent', () => {
  const h = harness();
  h.conn.window = 10_000;
  let closed = 0;
  h.conn.onClosed = () => closed++;
  h.conn.write(Buffer.alloc(15_000));
  h.conn.close();
  h.flush();
  assert.equal(closed, 0, 'close waits for the data');
  h.conn.credit(10_000);
  h.flush();
  const last = parseReply(h.frames.at(-1)!);
  assert.equal(last.payload.length, 0, 'close message is an empty payload');
  assert.equal(closed, 1);
  h.conn.write(Buffer.from('late'));
  h.flush();
  assert.equal(parseReply(h.frames.at(-1)!).payload.length, 0);
});

test('drain waiters fire once the queue is under LOW_WATER', () => {
  const h = harness();
  h.conn.window = LOW_WATER;
  h.conn.write(Buffer.alloc(HIGH_WATER + 1));
  let drained = 0;
  h.conn.whenDrained(() => drained++);
  h.flush();
  assert.equal(drained, 0);
  for (let i = 0; i < 10 && drained === 0; i++) {
    h.conn.credit(LOW_WATER);
    h.flush();
  }
  assert.equal(drained, 1);
});

test('abandon drops everything queued', () => {
  const h = harness();
  h.conn.window = 10;
  h.conn.write(Buffer.alloc(100_000));
  h.conn.abandon();
  h.conn.credit(1_000_000);
  h.flush();
  assert.equal(h.frames.length, 0);
});
