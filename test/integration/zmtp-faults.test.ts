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
import { ZmtpConnection, connectOptions } from '../../src/zmq/zmtp-connection.js';
import { HandlerSocket, PUB_HIGH_WATER } from '../../src/zmq/handler-socket.js';
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
    // A timeout of 1 s: long enough that a loaded machine's event-loop stall does not miss a
    // PONG, short enough that without PONGs libzmq drops us at least twice below.
    const push = new zmq.Push({ linger: 0, heartbeatInterval: 100, heartbeatTimeToLive: 3_000, heartbeatTimeout: 1_000 });
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
      await new Promise((r) => setTimeout(r, 3_500));
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

describe('replies Mongrel2 does not read', () => {
  test('past PUB_HIGH_WATER unwritten bytes the PULL stops taking requests, and resumes once the PUB drains', { timeout: 30_000 }, async () => {
    // Mongrel2's SUB played by hand (it must stop reading, which a libzmq SUB never does
    // on request); its PUSH is a real libzmq one.
    let subSocket: net.Socket | null = null;
    let received = 0;
    const sub = await fakePeer([
      (s) => {
        subSocket = s;
        s.write(Buffer.concat([greeting31(), ready('SUB'), msg('\x01')]));
        s.on('data', (d: Buffer) => (received += d.length));
      },
    ]);
    const push = new zmq.Push({ linger: 0 });
    await push.bind('tcp://127.0.0.1:*');
    const hs = new HandlerSocket({ sendSpec: push.lastEndpoint!, recvSpec: sub.endpoint, recvIdent: '' });
    const requests: string[] = [];
    try {
      await hs.connect((m) => requests.push(m.toString()), (e) => assert.fail(String(e)));
      await waitFor(() => hs.isSubscribed && hs.isPulling, 5_000, 10, 'both connected');
      await push.send('request 1');
      await waitFor(() => requests.length === 1, 5_000, 10, 'first request');
      subSocket!.pause();
      const reply = Buffer.alloc(2 * 1024 * 1024, 0x61);
      for (let i = 0; i < 24; i++) hs.send(reply);
      // The replies leave in the flush after this turn; the PULL is paused in that flush.
      await new Promise((r) => setImmediate(r));
      await waitFor(() => hs.pendingBytes > PUB_HIGH_WATER, 10_000, 10, 'replies backed up');
      await push.send('request 2');
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(requests, ['request 1'], 'no request taken while replies cannot leave');
      subSocket!.resume();
      await waitFor(() => requests.length === 2, 10_000, 10, 'pulling again after the drain');
      // Each reply behind its 9-byte frame header, after the greeting and READY.
      await waitFor(() => received === 64 + 27 + 24 * (9 + reply.length), 10_000, 10, 'every reply reached the SUB');
      assert.equal(hs.pendingBytes, 0);
    } finally {
      await hs.close();
      push.close();
      await sub.close();
    }
  });
});

describe('Mongrel2 gone and back (libzmq SUB and PUSH bound as Mongrel2 binds them)', () => {
  test('a request taken after the SUB went away waits for the new subscription, so its reply is not dropped', { timeout: 30_000 }, async () => {
    const push = new zmq.Push({ linger: 0 });
    await push.bind('tcp://127.0.0.1:*');
    let sub = new zmq.Subscriber({ linger: 0 });
    await sub.bind('tcp://127.0.0.1:*');
    const recvSpec = sub.lastEndpoint!;
    sub.subscribe('');
    // libzmq attaches a new peer only while its socket is in use, as Mongrel2's always is.
    let replies = sub.receive();
    const hs = new HandlerSocket({ sendSpec: push.lastEndpoint!, recvSpec, recvIdent: '' });
    const requests: string[] = [];
    try {
      await hs.connect(
        (m) => {
          requests.push(m.toString());
          hs.send(Buffer.from(`reply to ${m.toString()}`));
        },
        (e) => assert.fail(String(e)),
      );
      await waitFor(() => hs.isSubscribed && hs.isPulling, 5_000, 10, 'both connected');
      await push.send('one');
      assert.equal((await replies)[0]!.toString(), 'reply to one');
      sub.close();
      await waitFor(() => !hs.isSubscribed, 5_000, 10, 'subscription gone with the SUB');
      await push.send('two');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(requests, ['one'], 'not taken while no reply could be delivered');
      sub = new zmq.Subscriber({ linger: 0 });
      await sub.bind(recvSpec);
      sub.subscribe('');
      replies = sub.receive();
      assert.equal((await replies)[0]!.toString(), 'reply to two');
    } finally {
      await hs.close();
      push.close();
      sub.close();
    }
  });
});

describe('endpoints', () => {
  test('tcp://[v6]:port and tcp://hostname:port reach a libzmq PUSH; ipc://@abstract is refused by name', { timeout: 15_000 }, async () => {
    const push = new zmq.Push({ linger: 0, ipv6: true });
    await push.bind('tcp://[::1]:*');
    const port = /:(\d+)$/.exec(push.lastEndpoint!)![1];
    const push4 = new zmq.Push({ linger: 0 });
    await push4.bind('tcp://127.0.0.1:*');
    const port4 = /:(\d+)$/.exec(push4.lastEndpoint!)![1];
    const conns: ZmtpConnection[] = [];
    try {
      for (const [endpoint, sender] of [[`tcp://[::1]:${port}`, push], [`tcp://localhost:${port4}`, push4]] as const) {
        const got: string[] = [];
        const c = new ZmtpConnection(endpoint, 'PULL', { ready: () => undefined, message: (m) => got.push(m.toString()), down: () => undefined, problem: (e) => assert.fail(e) });
        conns.push(c);
        c.open();
        await sender.send(endpoint);
        await waitFor(() => got.length === 1, 5_000, 10, `a message over ${endpoint}`);
        assert.deepEqual(got, [endpoint]);
      }
    } finally {
      for (const c of conns) await c.close();
      push.close();
      push4.close();
    }
    assert.throws(() => connectOptions('ipc://@m2gw-send'), /abstract ipc sockets cannot be reached/);
  });
});
