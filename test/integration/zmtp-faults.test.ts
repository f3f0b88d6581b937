/**
 * ZmtpConnection against peers that break ZMTP (played by a plain TCP server: a real
 * libzmq cannot be made to send a malformed frame) and against a real libzmq PUSH that
 * sends heartbeats. Every fault must end as one typed problem report and a new
 * connection, never a crash, a hang or a wrong message.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as zmq from 'zeromq';
import { ZmtpConnection } from '../../src/zmq/zmtp-connection.js';
import { ZmtpError, encodeGreeting, frameHeader } from '../../src/zmq/zmtp-codec.js';
import { waitFor } from '../harness/wait.js';

/** A READY command from a peer of `type` (what a libzmq PUSH sends). */
function ready(type: string): Buffer {
  const body = Buffer.concat([Buffer.from([5]), Buffer.from('READY'), Buffer.from([11]), Buffer.from('Socket-Type'), Buffer.from([0, 0, 0, type.length]), Buffer.from(type)]);
  return Buffer.concat([frameHeader(body.length, false, true), body]);
}

function greeting31(): Buffer {
  const g = encodeGreeting();
  g[11] = 1;
  return g;
}

const msg = (text: string): Buffer => Buffer.concat([frameHeader(Buffer.byteLength(text), false), Buffer.from(text)]);

/** A TCP server playing connection number i with scripts[min(i, last)]. */
async function fakePeer(scripts: Array<(s: net.Socket) => void>): Promise<{ endpoint: string; connections: () => number; close: () => Promise<void> }> {
  let n = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    scripts[Math.min(n++, scripts.length - 1)]!(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `tcp://127.0.0.1:${port}`,
    connections: () => n,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A well-behaved PUSH: greeting, READY, then `messages`. */
const goodPush = (messages: string[]) => (s: net.Socket): void => {
  s.write(Buffer.concat([greeting31(), ready('PUSH'), ...messages.map(msg)]));
  s.on('data', () => undefined);
};

interface Watched {
  conn: ZmtpConnection;
  messages: string[];
  problems: Error[];
}

function watch(endpoint: string, handshakeTimeoutMs?: number): Watched {
  const w: Watched = { conn: null as unknown as ZmtpConnection, messages: [], problems: [] };
  w.conn = new ZmtpConnection(
    endpoint,
    'PULL',
    { ready: () => undefined, message: (m) => w.messages.push(m.toString()), down: () => undefined, problem: (e) => w.problems.push(e) },
    handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs },
  );
  w.conn.open();
  return w;
}

describe('ZMTP faults: one typed problem, a new connection, nothing wrong delivered', () => {
  const cases: Array<{ name: string; bad: (s: net.Socket) => void; expect: RegExp }> = [
    {
      name: 'reserved frame flags after the handshake',
      bad: (s) => s.write(Buffer.concat([greeting31(), ready('PUSH'), msg('fine'), Buffer.from([0x10, 1, 0x41])])),
      expect: /reserved/,
    },
    {
      name: 'an absurd 8-byte frame length (nothing is allocated for it)',
      bad: (s) => s.write(Buffer.concat([greeting31(), ready('PUSH'), msg('fine'), Buffer.from([0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])])),
      expect: /frame of \d+ bytes refused/,
    },
    {
      name: 'a ZMTP 2.0 peer (libzmq 3.x), which sends 12 bytes and waits',
      bad: (s) => s.write(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8])),
      expect: /ZMTP 2\.0/,
    },
    {
      name: 'an HTTP server on the port',
      bad: (s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'),
      expect: /does not speak ZMTP 3/,
    },
    {
      name: 'an ERROR command instead of READY',
      bad: (s) => {
        const body = Buffer.concat([Buffer.from([5]), Buffer.from('ERROR'), Buffer.from([12]), Buffer.from('not welcome')]);
        s.write(Buffer.concat([greeting31(), frameHeader(body.length, false, true), body]));
      },
      expect: /refused the handshake: not welcome/,
    },
    {
      name: 'a truncated READY property',
      bad: (s) => s.write(Buffer.concat([greeting31(), Buffer.from([0x04, 9, 5, ...Buffer.from('READY'), 11, 0x53, 0x6f])])),
      expect: /truncated READY/,
    },
    {
      name: 'a message before READY',
      bad: (s) => s.write(Buffer.concat([greeting31(), msg('too early')])),
      expect: /before the handshake/,
    },
  ];
  for (const c of cases) {
    test(c.name, { timeout: 15_000 }, async () => {
      const peer = await fakePeer([c.bad, goodPush(['after reconnect'])]);
      const w = watch(peer.endpoint);
      try {
        await waitFor(() => w.messages.includes('after reconnect'), 10_000, 10, 'the next connection delivers');
        assert.equal(w.problems.length, 1);
        assert.ok(w.problems[0] instanceof ZmtpError, `typed: ${String(w.problems[0])}`);
        assert.match(w.problems[0]!.message, c.expect);
        assert.equal(peer.connections(), 2);
        assert.ok(w.messages.every((m) => m === 'fine' || m === 'after reconnect'), `nothing else delivered: ${JSON.stringify(w.messages)}`);
      } finally {
        await w.conn.close();
        await peer.close();
      }
    });
  }

  test('a peer that accepts and stays silent is given up after the handshake timeout, then retried', { timeout: 15_000 }, async () => {
    const peer = await fakePeer([() => undefined, goodPush(['after reconnect'])]);
    const w = watch(peer.endpoint, 300);
    try {
      await waitFor(() => w.messages.includes('after reconnect'), 10_000, 10, 'the next connection delivers');
      assert.equal(w.problems.length, 1);
      assert.match(w.problems[0]!.message, /no ZMTP handshake within 300 ms/);
    } finally {
      await w.conn.close();
      await peer.close();
    }
  });

  test('a peer failing the same way on every connection is reported once, and retried with backoff', { timeout: 15_000 }, async () => {
    const peer = await fakePeer([(s) => s.write(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8]))]);
    const w = watch(peer.endpoint);
    try {
      const t0 = Date.now();
      await waitFor(() => peer.connections() >= 5, 10_000, 10, 'five attempts');
      // 100, 200, 400, 800 ms (each plus up to as much jitter): at least 1.5 s for five.
      assert.ok(Date.now() - t0 >= 1_400, `backoff grew: ${Date.now() - t0} ms`);
      assert.equal(w.problems.length, 1);
    } finally {
      await w.conn.close();
      await peer.close();
    }
  });
});

describe('ZMTP heartbeats from a real libzmq', () => {
  test('a PUSH with ZMQ_HEARTBEAT_IVL/TIMEOUT keeps our PULL (we answer PING with PONG)', { timeout: 15_000 }, async () => {
    const push = new zmq.Push({ linger: 0, heartbeatInterval: 50, heartbeatTimeToLive: 1_000, heartbeatTimeout: 200 });
    await push.bind('tcp://127.0.0.1:*');
    let downs = 0;
    let readies = 0;
    const got: string[] = [];
    const pull = new ZmtpConnection(push.lastEndpoint!, 'PULL', {
      ready: () => readies++,
      message: (m) => got.push(m.toString()),
      down: () => downs++,
      problem: (e) => assert.fail(e),
    });
    pull.open();
    try {
      await waitFor(() => readies === 1, 5_000, 10, 'handshake');
      await push.send('first');
      await waitFor(() => got.length === 1, 5_000, 10, 'first message');
      // Many heartbeat timeouts long: without PONGs libzmq would have dropped us by now.
      await new Promise((r) => setTimeout(r, 1_500));
      await push.send('second');
      await waitFor(() => got.length === 2, 5_000, 10, 'second message');
      assert.equal(downs, 0, 'connection never dropped');
      assert.equal(readies, 1);
    } finally {
      await pull.close();
      push.close();
    }
  });
});
