/**
 * Lending a ZMTP PULL (zmtp-connection.ts lend/adopt; process/pull-lending.ts): while a
 * libzmq PUSH keeps sending, the connection is handed from one reader to another and back,
 * several times, at whatever point the stream is in (frames of up to 300 KB span reads, so
 * a hand-over often falls inside a frame). Every message arrives once, in order.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as zmq from 'zeromq';
import { ZmtpConnection, type ZmtpEvents } from '../../src/zmq/zmtp-connection.js';
import { FrameDecoder } from '../../src/zmq/zmtp-codec.js';
import { waitFor } from '../harness/wait.js';

describe('lending a ZMTP PULL', () => {
  test('handed back and forth under a stream of messages: each arrives once, in order', async () => {
    const push = new zmq.Push({ linger: 0, sendHighWaterMark: 100_000 });
    await push.bind('tcp://127.0.0.1:*');
    const endpoint = push.lastEndpoint!;
    const got: Buffer[] = [];
    let downs = 0;
    const events = (): ZmtpEvents => ({
      ready: () => undefined,
      message: (m) => got.push(Buffer.from(m)),
      down: () => downs++,
      problem: (e) => assert.fail(e),
    });
    const owner = new ZmtpConnection(endpoint, 'PULL', events());
    owner.open();
    await waitFor(() => owner.isReady, 5_000, 10, 'handshake');
    const sent: Buffer[] = [];
    for (let i = 0; i < 3_000; i++) {
      const size = i % 97 === 0 ? 300_000 : i % 13 === 0 ? 20_000 : 10 + (i % 50);
      const m = Buffer.alloc(size, i % 251);
      m.write(`#${i}#`);
      sent.push(m);
    }
    const sending = (async () => {
      for (const m of sent) await push.send(m);
    })();
    let borrowed: ZmtpConnection | null = null;
    let handovers = 0;
    try {
      for (let round = 0; round < 12; round++) {
        const target = Math.min(sent.length, (round + 1) * 230);
        await waitFor(() => got.length >= target || got.length === sent.length, 10_000, 1, `round ${round}`);
        if (borrowed === null) {
          const lent = owner.lend();
          assert.ok(lent, 'lent');
          assert.equal(owner.isLent, true);
          assert.equal(owner.isReady, true, 'a lent connection still counts as connected');
          borrowed = ZmtpConnection.borrowed(endpoint, 'PULL', events(), lent);
        } else {
          const lent = borrowed.lend();
          assert.ok(lent, 'given back');
          owner.adopt(lent);
          borrowed = null;
        }
        handovers++;
      }
      await sending;
      await waitFor(() => got.length >= sent.length, 10_000, 5, 'every message');
      assert.equal(got.length, sent.length, 'no message twice');
      for (let i = 0; i < sent.length; i++) assert.ok(got[i]!.equals(sent[i]!), `message ${i} in its place`);
      assert.equal(handovers, 12);
      assert.equal(downs, 0);
    } finally {
      await borrowed?.close();
      await owner.close();
      push.close();
    }
  });

  test('a borrowed connection is not reopened when it closes; the lender reconnects after lendingLost()', async () => {
    const push = new zmq.Push({ linger: 0 });
    await push.bind('tcp://127.0.0.1:*');
    const endpoint = push.lastEndpoint!;
    let ownerDowns = 0;
    let borrowedDowns = 0;
    const noop = { message: () => undefined, problem: () => undefined };
    const owner = new ZmtpConnection(endpoint, 'PULL', { ...noop, ready: () => undefined, down: () => ownerDowns++ });
    owner.open();
    await waitFor(() => owner.isReady, 5_000, 10, 'handshake');
    const borrowed = ZmtpConnection.borrowed(endpoint, 'PULL', { ...noop, ready: () => undefined, down: () => borrowedDowns++ }, owner.lend()!);
    try {
      await borrowed.close();
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(borrowed.isReady, false, 'closed for good');
      assert.equal(owner.isLent, true);
      owner.lendingLost();
      assert.equal(ownerDowns, 1);
      await waitFor(() => owner.isReady && !owner.isLent, 5_000, 10, 'the lender connected anew');
      assert.equal(owner.lend() !== null, true, 'and can lend again');
    } finally {
      await owner.close();
      push.close();
    }
  });

  test('FrameDecoder.takeRest gives the bytes of an incomplete frame and starts empty', () => {
    const d = new FrameDecoder();
    const frames: string[] = [];
    // one whole frame "ab", then 3 bytes of a 5-byte frame
    d.push(Buffer.from([0, 2, 0x61, 0x62, 0, 5, 0x63]), (b) => frames.push(b.toString()));
    assert.deepEqual(frames, ['ab']);
    const rest = d.takeRest();
    assert.deepEqual([...rest], [0, 5, 0x63]);
    assert.equal(d.pending, 0);
    const d2 = new FrameDecoder();
    d2.push(Buffer.concat([rest, Buffer.from('defg')]), (b) => frames.push(b.toString()));
    assert.deepEqual(frames, ['ab', 'cdefg']);
    assert.equal(new FrameDecoder().takeRest().length, 0);
  });
});
