import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection, HIGH_WATER, LOW_WATER, MIN_MESSAGE, RESPONSE_MESSAGE_BUDGET, type FlushScheduler } from '../../../src/gateway/client-connection.js';
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
  h.conn.beginResponse();
  h.conn.write(Buffer.alloc(5 * 1024 * 1024));
  h.flush();
  assert.ok(h.frames.length <= 5, `${h.frames.length} messages`);
  h.conn.flushSoon();
  h.flush();
  assert.equal(payloads(h.frames).reduce((n, p) => n + p.length, 0), 5 * 1024 * 1024);
});

test('unmetered: a response never takes more than the message budget, however it arrives', () => {
  for (const [piece, total] of [[1_000, 30 * 1024 * 1024], [64 * 1024, 100 * 1024 * 1024], [1024 * 1024, 700 * 1024 * 1024]] as const) {
    // Only sizes are kept: the frames of a 700 MiB response would not fit a unit test.
    const sizes: number[] = [];
    const sched: FlushScheduler = { schedule: () => undefined };
    const conn = new ClientConnection('0:7', '7', { send: (f) => sizes.push(parseReply(f).payload.length) }, 'uuid-1', sched);
    conn.keepAliveMs = 0;
    conn.beginResponse();
    conn.write(Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), true);
    conn.flush();
    const body = Buffer.alloc(piece);
    let sent = 0;
    for (; sent < total; sent += piece) {
      conn.write(body);
      conn.flush(); // the worst case: a flush after every piece (a fast upstream, a client reading nothing)
    }
    conn.flushSoon();
    conn.flush();
    conn.close();
    conn.flush();
    const what = `${piece}-byte pieces, ${total} bytes: ${sizes.length} messages: ${sizes.join(' ')}`;
    assert.ok(sizes.length <= 16, what);
    assert.ok(sizes.length - 1 <= RESPONSE_MESSAGE_BUDGET, what);
    assert.equal(sizes.reduce((a, b) => a + b, 0), sent + 19);
    // Sizes grow: each data message but the last is at least MIN_MESSAGE and at least all before it.
    let before = 0;
    for (const size of sizes.slice(1, -2)) {
      assert.ok(size >= MIN_MESSAGE && size >= Math.min(before, 256 * 1024 * 1024), what);
      before += size;
    }
  }
});

test('unmetered: the writer is never paused below the size the next message needs', () => {
  const h = harness();
  h.conn.beginResponse();
  h.conn.write(Buffer.alloc(MIN_MESSAGE), true);
  h.flush();
  h.conn.write(Buffer.alloc(HIGH_WATER + 1));
  h.flush();
  let resumed = 0;
  h.conn.whenDrained(() => resumed++);
  assert.equal(resumed, 1);
});

test('keep-alive: a quiet open request sends ["ctl", {"keep-alive": 1}]; none after the response', async () => {
  const h = harness();
  h.conn.keepAliveMs = 60;
  h.conn.beginResponse();
  await new Promise((r) => setTimeout(r, 200));
  const ctl = h.frames.map((f) => parseReply(f)).filter((r) => r.extended);
  assert.ok(ctl.length >= 1, 'a keep-alive went out');
  assert.equal(ctl[0]!.payload.toString('latin1'), '28:3:ctl,18:10:keep-alive,1:1#}]');
  h.conn.endResponse();
  const n = h.frames.length;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(h.frames.length, n, 'no keep-alive once nothing is open');
});

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ctlOf = (frames: Buffer[]): string[] => frames.map((f) => parseReply(f)).filter((r) => r.extended).map((r) => r.payload.toString('latin1'));

/** A metered connection with one response open and `bytes` written, timers as given; counts stalls. */
function openMetered(keepAliveMs: number, sendTimeoutMs: number, bytes: number): { h: ReturnType<typeof harness>; stalls: () => number } {
  const h = harness();
  h.conn.window = 10_000;
  h.conn.keepAliveMs = keepAliveMs;
  h.conn.sendTimeoutMs = sendTimeoutMs;
  let stalled = 0;
  h.conn.onStalled = () => stalled++;
  h.conn.beginResponse();
  h.conn.write(Buffer.alloc(bytes));
  h.flush();
  return { h, stalls: () => stalled };
}

const PING = '28:3:ctl,18:10:keep-alive,1:1#}]';
const PROBE = '9:3:ctl,0:}]';
const CANCEL = '23:3:ctl,13:6:cancel,1:1#}]';

test('send timeout: a client owing credits gets no keep-alive, and is dropped with a cancel after send_timeout', async () => {
  const { h, stalls } = openMetered(40, 300, 50_000);
  assert.equal(h.conn.unackedBytes, 10_000);
  await sleepMs(200);
  assert.ok(!ctlOf(h.frames).includes(PING), 'no ping while the client has not read what it was sent');
  assert.equal(stalls(), 0, 'not yet: under send_timeout');
  await sleepMs(350);
  assert.equal(stalls(), 1);
  const ctl = ctlOf(h.frames);
  assert.deepEqual(ctl.filter((c) => c !== PROBE), [CANCEL], 'one cancel, no ping (probes aside)');
  assert.equal(ctl.at(-1), CANCEL);
  assert.equal(h.conn.finished, true);
  assert.equal(h.conn.queuedBytes, 0, 'what was queued for it is dropped');
  const n = h.frames.length;
  await sleepMs(150);
  assert.equal(h.frames.length, n, 'nothing after the cancel');
  assert.equal(stalls(), 1);
});

test('send timeout: a slow client that keeps returning credits is not dropped; a quiet upstream still gets pings', async () => {
  const { h, stalls } = openMetered(60, 200, 60_000);
  // Credits trickle back more often than send_timeout, for three times send_timeout.
  for (let i = 0; i < 6; i++) {
    await sleepMs(100);
    h.conn.credit(5_000);
    h.flush();
  }
  assert.equal(stalls(), 0, 'a client that reads is never dropped, however slow');
  assert.ok(!ctlOf(h.frames).includes(PING), 'and is sent no ping while it owes credits');
  // It reads everything: now the upstream is the quiet one.
  while (h.conn.queuedBytes > 0 || h.conn.unackedBytes > 0) {
    h.conn.credit(10_000);
    h.flush();
  }
  await sleepMs(200);
  assert.equal(stalls(), 0);
  assert.ok(ctlOf(h.frames).includes(PING), 'a quiet upstream: pings go out');
  h.conn.endResponse();
});

test('a client owing credits is probed with ["ctl", {}] every keepalive without credits (Mongrel2 answers one for a gone client with a disconnect), also after its response was handed over', async () => {
  const { h, stalls } = openMetered(80, 0, 50_000);
  const probes = (): number => ctlOf(h.frames).filter((c) => c === PROBE).length;
  await sleepMs(40);
  assert.equal(probes(), 0, 'not before keepalive has passed');
  await sleepMs(160);
  assert.ok(probes() >= 1, 'probed while it owes credits');
  assert.ok(!ctlOf(h.frames).includes(PING), 'a probe, never a ping (that would keep Mongrel2 from dropping it)');
  // Credits postpone the probe: a client that reads is alive.
  for (let i = 0; i < 5; i++) {
    const before = probes();
    h.conn.credit(1_000);
    await sleepMs(40);
    assert.equal(probes(), before, 'no probe within keepalive of a credit');
  }
  // The upstream's response ends: the connection still owes, so the probes go on.
  h.conn.endResponse();
  const atEnd = probes();
  await sleepMs(300);
  assert.ok(probes() > atEnd, 'still probed once the response was handed over, while it owes');
  // It reads everything: nothing owed, nothing open, no more messages at all.
  while (h.conn.queuedBytes > 0 || h.conn.unackedBytes > 0) {
    h.conn.credit(10_000);
    h.flush();
  }
  await sleepMs(100);
  const n = h.frames.length;
  await sleepMs(300);
  assert.equal(h.frames.length, n, 'nothing is sent once nothing is owed and nothing is open');
  assert.equal(stalls(), 0);
});

test('send timeout 0: never dropped', async () => {
  const { h, stalls } = openMetered(0, 0, 50_000);
  await sleepMs(150);
  assert.equal(stalls(), 0);
  assert.equal(h.conn.finished, false);
  h.conn.endResponse();
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
