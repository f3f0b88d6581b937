/**
 * Our ZMTP connections against real libzmq sockets bound the way Mongrel2 binds its
 * handler sockets (PUSH on send_spec, SUB on recv_spec): handshake, subscriptions,
 * messages both ways, reconnect after the peer restarts, a wrong peer type refused.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import * as zmq from 'zeromq';
import { ZmtpConnection } from '../../src/zmq/zmtp-connection.js';
import { HandlerSocket } from '../../src/zmq/handler-socket.js';
import { waitFor } from '../harness/wait.js';

async function bindPort(s: zmq.Socket): Promise<string> {
  await s.bind('tcp://127.0.0.1:*');
  return s.lastEndpoint!;
}

describe('ZMTP against libzmq', () => {
  test('PULL from a libzmq PUSH: every message, in order, large ones too', async () => {
    const push = new zmq.Push({ linger: 0 });
    const endpoint = await bindPort(push);
    const messages: Buffer[] = [];
    let ready = false;
    const pull = new ZmtpConnection(endpoint, 'PULL', { ready: () => (ready = true), message: (m) => messages.push(Buffer.from(m)), down: () => undefined, problem: (e) => assert.fail(e) });
    pull.open();
    try {
      await waitFor(() => ready, 5_000, 10, 'handshake');
      const sent: Buffer[] = [];
      for (let i = 0; i < 500; i++) sent.push(Buffer.from(`msg ${i} `.repeat(i % 7 === 0 ? 1000 : 1)));
      for (const m of sent) await push.send(m);
      await waitFor(() => messages.length === sent.length, 5_000, 10, 'all messages');
      assert.deepEqual(messages, sent);
    } finally {
      await pull.close();
      push.close();
    }
  });

  test('PUB to a libzmq SUB: subscription seen, replies arrive in order; ipc:// works', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-zmtp-'));
    const sub = new zmq.Subscriber({ linger: 0 });
    const endpoint = `ipc://${path.join(dir, 'recv')}`;
    await sub.bind(endpoint);
    sub.subscribe('');
    const bigParts = [Buffer.from('c 1:3, '), Buffer.alloc(70_000, 8), Buffer.alloc(0), Buffer.alloc(30_000, 9)];
    const smallParts = [Buffer.from('d 1:4, '), Buffer.from('in '), Buffer.from('parts')];
    const sent = [Buffer.from('a 1:1, small'), Buffer.alloc(100_000, 7), Buffer.from('b 1:2, after the big one'), Buffer.concat(bigParts), Buffer.concat(smallParts)];
    // libzmq attaches a new peer (and sends it the subscription) only while its socket is
    // in use, as Mongrel2's always is: keep a receive pending from the start.
    const received = (async () => {
      const got: Buffer[] = [];
      for (let i = 0; i < sent.length; i++) got.push((await sub.receive())[0]!);
      return got;
    })();
    const hs = new HandlerSocket({ sendSpec: 'tcp://127.0.0.1:1', recvSpec: endpoint, recvIdent: '', publishOnly: true });
    try {
      await hs.connect(() => undefined, (e) => assert.fail(String(e)));
      assert.equal(hs.isSubscribed, true);
      for (const f of sent.slice(0, 3)) hs.send(f);
      hs.sendParts(bigParts);
      hs.sendParts(smallParts);
      assert.deepEqual(await received, sent);
    } finally {
      await hs.close();
      sub.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('reconnects when the peer comes back; replies queued before the first subscription are delivered', async () => {
    const probe = new zmq.Subscriber({ linger: 0 });
    const endpoint = await bindPort(probe);
    probe.close();
    await new Promise((r) => setTimeout(r, 50));
    const hs = new HandlerSocket({ sendSpec: 'tcp://127.0.0.1:1', recvSpec: endpoint, recvIdent: '', publishOnly: true });
    const connected = hs.connect(() => undefined, () => undefined);
    hs.send(Buffer.from('early reply'));
    await new Promise((r) => setTimeout(r, 300));
    const sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind(endpoint);
    sub.subscribe('');
    const received = sub.receive();
    try {
      await connected;
      await waitFor(() => hs.isSubscribed, 5_000, 10, 'subscription after the peer came up');
      const [m] = await received;
      assert.equal(m!.toString(), 'early reply');
    } finally {
      await hs.close();
      sub.close();
    }
  });

  test('a peer of the wrong socket type is refused and reported once', async () => {
    const pull = new zmq.Pull({ linger: 0 });
    const endpoint = await bindPort(pull);
    const problems: Error[] = [];
    const c = new ZmtpConnection(endpoint, 'PULL', { ready: () => assert.fail('ready with a PULL peer'), message: () => undefined, down: () => undefined, problem: (e) => problems.push(e) });
    c.open();
    try {
      await waitFor(() => problems.length > 0, 5_000, 10, 'a problem');
      await new Promise((r) => setTimeout(r, 350));
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.message, /PULL cannot talk to a PULL/);
    } finally {
      await c.close();
      pull.close();
    }
  });
});
