/**
 * m2gw's own HTTP/1.1 upstream client (src/upstream/http: connection.ts, pool.ts,
 * direct-attempt.ts), end to end through a real Mongrel2. It carries every request without a
 * body or with one in memory to an http:// upstream, so what undici used to guarantee is now
 * m2gw's to keep: which failures are retried (the keep-alive race, for idempotent methods
 * only), when a kept-alive upstream connection may carry the next request (never after bytes
 * nobody asked for, a `Connection: close`, a short `Keep-Alive: timeout`, or the upstream's
 * FIN), how responses are framed (1xx heads skipped, HEAD without a body, close-delimited and
 * chunked bodies byte-exact, a head over 16 KiB refused), `connections` as a hard bound, and
 * that nothing from Mongrel2 (untrusted) can write a second request into an upstream
 * connection.
 *
 * The upstreams are raw `net` servers (node:http would neither misbehave nor show which
 * connection a request came on): each test gets its own, so its pool starts empty and its
 * connection numbers are its own. They record every request with the number of the
 * connection it came on and its index on that connection.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startChain, type Chain } from './gateway-support.js';
import { rawRequest, request, sha256 } from '../harness/http-client.js';
import { fakeChain, m2frame as frame, m2requestHeaders as requestHeaders, type FakeChain } from '../harness/fake-mongrel2.js';
import { patternBytes } from '../harness/upstream-http.js';
import { sleep, waitFor } from '../harness/wait.js';

interface SeenRequest {
  /** Number of the upstream connection it came on (1, 2, …, per server). */
  readonly conn: number;
  /** Its index on that connection (0 for the first). */
  readonly index: number;
  readonly method: string;
  readonly target: string;
  /** The raw head as received (latin1). */
  readonly head: string;
  readonly body: Buffer;
}

interface RawServer {
  readonly port: number;
  readonly url: string;
  readonly requests: SeenRequest[];
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now, and the most ever open at once. */
  readonly open: number;
  readonly maxOpen: number;
  /** Connections whose peer (the gateway) sent a FIN or reset. */
  readonly peerClosed: Set<number>;
  /** Connections fully closed. */
  readonly closed: Set<number>;
  seen(target: string): SeenRequest[];
  close(): Promise<void>;
}

type Behaviour = (sock: net.Socket, req: SeenRequest) => void;

/**
 * A raw HTTP/1.1 server: reads request heads (and Content-Length bodies) off each connection
 * in turn and hands each to `behave`, which writes whatever it likes.
 */
function rawServer(behave: Behaviour): Promise<RawServer> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<net.Socket>();
  const peerClosed = new Set<number>();
  const closed = new Set<number>();
  let accepted = 0;
  let maxOpen = 0;
  const server = net.createServer((sock) => {
    const conn = ++accepted;
    sockets.add(sock);
    maxOpen = Math.max(maxOpen, sockets.size);
    sock.setNoDelay(true);
    sock.on('error', () => undefined);
    sock.on('end', () => peerClosed.add(conn));
    sock.on('close', () => {
      sockets.delete(sock);
      closed.add(conn);
    });
    let buf = Buffer.alloc(0);
    let index = 0;
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.toString('latin1', 0, end + 4);
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const body = Buffer.from(buf.subarray(end + 4, end + 4 + length));
        buf = buf.subarray(end + 4 + length);
        const [method = '', target = ''] = head.slice(0, head.indexOf('\r\n')).split(' ');
        const req: SeenRequest = { conn, index: index++, method, target, head, body };
        requests.push(req);
        behave(sock, req);
        if (sock.destroyed) return;
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        requests,
        get accepted() {
          return accepted;
        },
        get open() {
          return sockets.size;
        },
        get maxOpen() {
          return maxOpen;
        },
        peerClosed,
        closed,
        seen: (target) => requests.filter((r) => r.target === target),
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      });
    }),
  );
}

/** A 200 with a Content-Length body (kept alive unless `extra` says otherwise). */
function answer(sock: net.Socket, body: string, extra = ''): void {
  sock.write(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`, 'latin1');
}
/** The body every innocent response carries: which request it answers. */
const real = (req: SeenRequest): string => `real ${req.method} ${req.target}`;

const statusOf = (b: Buffer | string): string => /^HTTP\/1\.1 (\d{3})/.exec(typeof b === 'string' ? b : b.toString('latin1'))?.[1] ?? 'none';

/** What each test's upstream does; one server (and one `[upstream.*]`, one route) per entry. */
const BEHAVIOURS = {
  // 1: a kept-alive connection the upstream closes (FIN) or resets as the next request arrives.
  // The first answers wait a little, so two requests sent together open two connections.
  raceGet: (s: net.Socket, r: SeenRequest) => (r.index === 0 ? setTimeout(() => answer(s, real(r)), 100) : s.destroy()),
  raceRst: (s: net.Socket, r: SeenRequest) => (r.index === 0 ? setTimeout(() => answer(s, real(r)), 100) : s.resetAndDestroy()),
  racePost: (s: net.Socket, r: SeenRequest) => (r.index === 0 ? answer(s, real(r)) : s.destroy()),
  raceNoRetry: (s: net.Socket, r: SeenRequest) => (r.index === 0 ? answer(s, real(r)) : s.destroy()),
  // 2: a second, unasked-for response in the same write as the first.
  smuggle: (s: net.Socket, r: SeenRequest) => {
    if (r.target === '/smuggle') s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle', 'latin1');
    else answer(s, real(r));
  },
  // 3: bytes on the connection after it went idle.
  idleTalk: (s: net.Socket, r: SeenRequest) => {
    answer(s, real(r));
    if (r.target === '/then-talk') setTimeout(() => s.destroyed || s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nlater', 'latin1'), 50);
  },
  // 4: the response says the connection is not to be reused (the socket stays open regardless).
  noReuse: (s: net.Socket, r: SeenRequest) => {
    if (r.target === '/close') answer(s, real(r), 'Connection: close\r\n');
    else if (r.target === '/ka1') answer(s, real(r), 'Connection: keep-alive\r\nKeep-Alive: timeout=1\r\n');
    else if (r.target === '/ka5') answer(s, real(r), 'Connection: keep-alive\r\nKeep-Alive: timeout=5, max=100\r\n');
    else answer(s, real(r));
  },
  // 5: the upstream closes an idle kept-alive connection.
  fin: (s: net.Socket, r: SeenRequest) => {
    if (r.target === '/fin-later') {
      answer(s, real(r));
      setTimeout(() => s.end(), 30);
    } else if (r.target === '/fin-with-response') {
      s.end(`HTTP/1.1 200 OK\r\nContent-Length: ${real(r).length}\r\n\r\n${real(r)}`, 'latin1');
    } else answer(s, real(r));
  },
  // 6: informational heads before the final one, in one write or dribbled across several.
  interim: (s: net.Socket, r: SeenRequest) => {
    const pieces = [
      'HTTP/1.1 100 Continue\r\n\r\n',
      'HTTP/1.1 103 Ea',
      'rly Hints\r\nLink: </style.css>; rel=preload; as=style\r\nX-Hint: early\r\n\r\nHTTP/1.1 200 OK\r\n',
      'X-Final: yes\r\nContent-Length: 5\r\n\r\nfinal',
    ];
    if (r.target === '/interim') s.write(pieces.join(''), 'latin1');
    else if (r.target === '/interim-split') {
      let i = 0;
      const next = (): void => {
        if (s.destroyed || i === pieces.length) return;
        s.write(pieces[i++]!, 'latin1');
        setTimeout(next, 30);
      };
      next();
    } else answer(s, real(r));
  },
  // 7: a body after the head of a HEAD response.
  head: (s: net.Socket, r: SeenRequest) => {
    if (r.method === 'HEAD') s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Head: yes\r\n\r\nhello', 'latin1');
    else answer(s, real(r));
  },
  // 8: no Content-Length, no Transfer-Encoding: the body ends at the close.
  closeDelimited: (s: net.Socket, r: SeenRequest) => {
    if (r.target === '/mib') {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n', 'latin1');
      const body = patternBytes(CLOSE_DELIMITED_BYTES);
      // In uneven pieces, so the body crosses reads at odd offsets.
      for (let at = 0; at < body.length; at += 65_537) s.write(body.subarray(at, at + 65_537));
      s.end();
    } else answer(s, real(r));
  },
  // 9: chunk extensions and trailers, in small writes.
  chunked: (s: net.Socket, r: SeenRequest) => {
    if (r.target !== '/chunked') return answer(s, real(r));
    const big = patternBytes(70_000).toString('latin1');
    const wire =
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Other\r\n\r\n' +
      '5;name=val\r\nhello\r\n' +
      '6 ; ext="quoted; value"\r\n world\r\n' +
      `${(70_000).toString(16)};a;b=c\r\n${big}\r\n` +
      '1\r\n!\r\n' +
      '0;last=yes\r\nX-Checksum: TRAILER-LEAK-1\r\nX-Other: TRAILER-LEAK-2\r\n\r\n';
    const bytes = Buffer.from(wire, 'latin1');
    const cuts = [0, 3, 30, 95, 100, 120, 5000, bytes.length - 40, bytes.length - 10, bytes.length];
    for (let k = 0; k + 1 < cuts.length; k++) s.write(bytes.subarray(cuts[k], cuts[k + 1]));
  },
  // 10: each answer takes a while, so requests pile up against `connections = 2`.
  slow: (s: net.Socket, r: SeenRequest) => void setTimeout(() => s.destroyed || answer(s, real(r)), 250),
  // 11: a response head over 16 KiB (in 1 KiB headers: not the header-count limit), and one under it.
  bigHead: (s: net.Socket, r: SeenRequest) => {
    const filler = (n: number): string => Array.from({ length: n }, (_v, i) => `X-Filler-${i}: ${'f'.repeat(1024)}\r\n`).join('');
    if (r.target === '/big') s.write(`HTTP/1.1 200 OK\r\n${filler(17)}Content-Length: 4\r\n\r\nBIG!`, 'latin1');
    else if (r.target === '/medium') s.write(`HTTP/1.1 200 OK\r\n${filler(12)}Content-Length: 6\r\n\r\nmedium`, 'latin1');
    else answer(s, real(r));
  },
} satisfies Record<string, Behaviour>;
type Name = keyof typeof BEHAVIOURS;

const CLOSE_DELIMITED_BYTES = 1_000_000 + 17;

describe('direct HTTP/1.1 upstream client, through a real Mongrel2', () => {
  const servers = {} as Record<Name, RawServer>;
  let chain: Chain;
  const get = (name: Name, p: string, opts: Parameters<typeof request>[1] = {}): ReturnType<typeof request> =>
    request(`${chain.url}/${name}${p}`, { timeoutMs: 8000, ...opts });

  before(async () => {
    let toml = '';
    for (const name of Object.keys(BEHAVIOURS) as Name[]) {
      servers[name] = await rawServer(BEHAVIOURS[name]);
      const extra = name === 'raceNoRetry' ? 'retries = 0\n' : name === 'slow' ? 'connections = 2\n' : '';
      toml += `
[upstream.${name}]
type = "http"
url = "${servers[name].url}"
response_timeout = "5s"
${extra}
[[route]]
prefix = "/${name}/"
upstream = "${name}"
strip_prefix = true
`;
    }
    chain = await startChain({ toml });
  });

  after(async () => {
    await chain?.stop();
    await Promise.all(Object.values(servers).map((s) => s.close()));
  });

  test('keep-alive race: a GET whose reused connection the upstream closes (FIN or reset) unanswered is retried once on a new connection, not on another idle one, and gets its 200', async () => {
    for (const name of ['raceGet', 'raceRst'] as const) {
      const srv = servers[name];
      // Two idle kept-alive connections (1 and 2): the retry must not take the other one, as
      // old as the one that failed (here it would fail the same way).
      const primed = await Promise.all([get(name, '/first-a'), get(name, '/first-b')]);
      assert.deepEqual(primed.map((r) => r.status), [200, 200]);
      assert.equal(srv.accepted, 2, `${name}: two connections primed`);
      const res = await get(name, '/second');
      assert.equal(res.status, 200, `${name}: ${res.body.toString('latin1')}`);
      assert.equal(res.body.toString('latin1'), 'real GET /second', name);
      // Sent on a kept-alive connection (its second request), then again on a new one.
      const seen = srv.seen('/second').map((r) => [r.conn, r.index]);
      assert.equal(seen.length, 2, `${name}: ${JSON.stringify(seen)}`);
      assert.ok([1, 2].includes(seen[0]![0]!) && seen[0]![1] === 1, `${name}: first on a reused connection: ${JSON.stringify(seen)}`);
      assert.deepEqual(seen[1], [3, 0], `${name}: the retry on a new connection`);
      assert.equal(srv.accepted, 3, name);
    }
  });

  test('keep-alive race: a POST with a body in the same situation is not retried (502; the upstream saw it once), nor is a GET with retries = 0', async () => {
    const post = servers.racePost;
    assert.equal((await get('racePost', '/first')).status, 200);
    const res = await get('racePost', '/submit', { method: 'POST', body: 'amount=100', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(res.status, 502);
    assert.equal(post.seen('/submit').length, 1, 'the POST reached the upstream exactly once');
    assert.equal(post.seen('/submit')[0]!.body.toString(), 'amount=100', 'it was sent on the direct client with its body');
    assert.deepEqual([post.seen('/submit')[0]!.conn, post.seen('/submit')[0]!.index], [1, 1], 'on the reused connection');
    await sleep(200);
    assert.equal(post.seen('/submit').length, 1, 'and not again later');

    // The retry above is what saves the GET: with retries = 0 the same race is a 502.
    const none = servers.raceNoRetry;
    assert.equal((await get('raceNoRetry', '/first')).status, 200);
    assert.equal((await get('raceNoRetry', '/second')).status, 502);
    assert.equal(none.seen('/second').length, 1);
  });

  test('unsolicited bytes after a response: the client gets "ok", the next request (same client connection, and a fresh one) gets its own response on a new upstream connection, never "smuggle"', async () => {
    const srv = servers.smuggle;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get('smuggle', '/smuggle', { agent });
      assert.equal(first.status, 200);
      assert.equal(first.body.toString('latin1'), 'ok');
      const second = await get('smuggle', '/next', { agent });
      assert.ok(second.reusedSocket, 'the client connection was kept');
      assert.equal(second.status, 200);
      assert.equal(second.body.toString('latin1'), 'real GET /next');
      const fresh = await get('smuggle', '/fresh');
      assert.equal(fresh.body.toString('latin1'), 'real GET /fresh');
    } finally {
      agent.destroy();
    }
    const smuggledOn = srv.seen('/smuggle')[0]!.conn;
    assert.notEqual(srv.seen('/next')[0]!.conn, smuggledOn, 'the next request went on a new upstream connection');
    assert.notEqual(srv.seen('/fresh')[0]!.conn, smuggledOn);
    await waitFor(() => srv.peerClosed.has(smuggledOn), 2000, 10, 'the gateway closed the connection that sent extra bytes');
  });

  test('an upstream that writes on an idle kept-alive connection: the gateway closes it, and the next request goes on a new connection and gets its own response', async () => {
    const srv = servers.idleTalk;
    assert.equal((await get('idleTalk', '/then-talk')).body.toString('latin1'), 'real GET /then-talk');
    await waitFor(() => srv.peerClosed.has(1), 2000, 10, 'the gateway closed the talking idle connection');
    const res = await get('idleTalk', '/after');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString('latin1'), 'real GET /after');
    assert.equal(srv.seen('/after')[0]!.conn, 2);
  });

  test('Connection: close and Keep-Alive: timeout=1 end the reuse of an upstream connection; Keep-Alive: timeout=5 does not', async () => {
    const srv = servers.noReuse;
    for (const p of ['/close', '/after-close', '/ka1', '/after-ka1', '/ka5', '/after-ka5']) {
      const res = await get('noReuse', p);
      assert.equal(res.body.toString('latin1'), `real GET ${p}`);
    }
    const on = (p: string): number => srv.seen(p)[0]!.conn;
    assert.notEqual(on('/after-close'), on('/close'), 'Connection: close: a new connection');
    assert.equal(on('/ka1'), on('/after-close'), 'a plain keep-alive response: the connection is reused');
    assert.notEqual(on('/after-ka1'), on('/ka1'), 'Keep-Alive: timeout=1: a new connection');
    assert.equal(on('/ka5'), on('/after-ka1'));
    assert.equal(on('/after-ka5'), on('/ka5'), 'Keep-Alive: timeout=5: reused');
    // The gateway, not the upstream, closed the two it would not reuse (the upstream kept them open).
    await waitFor(() => srv.peerClosed.has(on('/close')) && srv.peerClosed.has(on('/ka1')), 2000, 10, 'the gateway closed them');
  });

  test('the upstream closing a kept-alive connection (FIN) after a response, later or with it: the next request, a POST (never retried), succeeds on a new connection', async () => {
    // POSTs: a GET sent on the closed connection would be rescued by the retry and hide it.
    const srv = servers.fin;
    const post = (p: string): ReturnType<typeof request> => get('fin', p, { method: 'POST', body: 'x=1' });
    for (const first of ['/fin-later', '/fin-with-response']) {
      assert.equal((await get('fin', first)).status, 200);
      const finned = srv.seen(first)[0]!.conn;
      await waitFor(() => srv.closed.has(finned), 2000, 10, `${first}: the connection closed on both sides`);
      const next = await post(`/after${first}`);
      assert.equal(next.status, 200, `${first}: ${next.body.toString('latin1')}`);
      assert.equal(next.body.toString('latin1'), `real POST /after${first}`);
      const seen = srv.seen(`/after${first}`);
      assert.equal(seen.length, 1);
      assert.notEqual(seen[0]!.conn, finned);
      assert.equal(seen[0]!.index, 0, 'a new connection');
    }
  });

  test('100 Continue and 103 Early Hints before the final 200, in one write or dribbled: the client sees only the final response', async () => {
    for (const p of ['/interim', '/interim-split']) {
      const out = (await rawRequest(chain.m2.port, `GET /interim${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { timeoutMs: 5000 })).toString('latin1');
      assert.match(out, /^HTTP\/1\.1 200 OK\r\n/, p);
      assert.equal(out.match(/HTTP\/1\.1 /g)!.length, 1, `${p}: one response: ${JSON.stringify(out)}`);
      assert.match(out, /\r\nX-Final: yes\r\n/i, p);
      assert.doesNotMatch(out, /Early Hints|Continue|X-Hint|style\.css/i, p);
      assert.ok(out.endsWith('\r\n\r\nfinal'), `${p}: ${JSON.stringify(out)}`);
    }
    // The connection carries the next request as usual.
    assert.equal((await get('interim', '/plain')).body.toString('latin1'), 'real GET /plain');
  });

  test('HEAD answered with a body by a broken upstream: the client gets the head only, and the next GET on the same client connection gets its own response', async () => {
    const srv = servers.head;
    const out = (
      await rawRequest(chain.m2.port, 'HEAD /head/h HTTP/1.1\r\nHost: x\r\n\r\nGET /head/g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 })
    ).toString('latin1');
    const [first = '', second = '', ...rest] = out.split(/(?=HTTP\/1\.1 )/);
    assert.deepEqual(rest, [], JSON.stringify(out));
    assert.match(first, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(first, /\r\nX-Head: yes\r\n/i);
    assert.ok(first.endsWith('\r\n\r\n'), `the HEAD response is a head only: ${JSON.stringify(first)}`);
    assert.doesNotMatch(out, /hello/);
    assert.match(second, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(second.endsWith('\r\n\r\nreal GET /g'), JSON.stringify(second));
    assert.notEqual(srv.seen('/g')[0]!.conn, srv.seen('/h')[0]!.conn, 'the connection that sent extra bytes was not reused');
  });

  test('a close-delimited response of ~1 MB (no Content-Length, no Transfer-Encoding) arrives complete and byte-exact', async () => {
    const res = await get('closeDelimited', '/mib', { timeoutMs: 15_000 });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, CLOSE_DELIMITED_BYTES);
    assert.equal(sha256(res.body), sha256(patternBytes(CLOSE_DELIMITED_BYTES)));
    assert.equal((await get('closeDelimited', '/after')).body.toString('latin1'), 'real GET /after');
  });

  test('a chunked response with chunk extensions and trailers: the body is byte-exact, no trailer byte leaks, and the connection is reused after it', async () => {
    const srv = servers.chunked;
    const res = await get('chunked', '/chunked');
    assert.equal(res.status, 200);
    const expected = Buffer.concat([Buffer.from('hello world'), patternBytes(70_000), Buffer.from('!')]);
    assert.equal(res.body.length, expected.length);
    assert.ok(res.body.equals(expected), 'body byte-exact');
    assert.equal(res.body.indexOf('TRAILER-LEAK'), -1);
    assert.equal(res.body.indexOf('X-Checksum'), -1);
    const next = await get('chunked', '/after');
    assert.equal(next.body.toString('latin1'), 'real GET /after');
    // Read to its exact end: had a trailer byte been left unread, the connection would have closed.
    assert.equal(srv.seen('/after')[0]!.conn, srv.seen('/chunked')[0]!.conn);
  });

  test('connections = 2 and 10 concurrent slow requests: every one is answered with its own response, and the upstream never has more than 2 sockets open', async () => {
    const srv = servers.slow;
    const results = await Promise.all(Array.from({ length: 10 }, (_v, i) => get('slow', `/r${i}`)));
    results.forEach((res, i) => {
      assert.equal(res.status, 200, `request ${i}`);
      assert.equal(res.body.toString('latin1'), `real GET /r${i}`);
    });
    assert.equal(srv.requests.length, 10);
    assert.ok(srv.maxOpen <= 2, `the upstream had ${srv.maxOpen} sockets open at once`);
    assert.equal(srv.accepted, 2, 'the two connections carried all ten');
  });

  test('a response head over 16 KiB is a 502 (one of 12 KiB passes), and the next request is answered', async () => {
    const big = await get('bigHead', '/big');
    assert.equal(big.status, 502);
    assert.doesNotMatch(big.body.toString('latin1'), /BIG!/);
    const medium = await get('bigHead', '/medium');
    assert.equal(medium.status, 200);
    assert.equal(medium.body.toString('latin1'), 'medium');
    assert.equal(medium.headers['x-filler-11'], 'f'.repeat(1024));
    const innocent = await get('bigHead', '/innocent');
    assert.equal(innocent.status, 200);
    assert.equal(innocent.body.toString('latin1'), 'real GET /innocent');
  });
});

// ---------------------------------------------------------------------------------------------
// Request smuggling from the Mongrel2 side: a real Mongrel2 never sends these, so a fake one does.

describe('header and path injection from a hostile Mongrel2 (a fake one) never reaches the upstream as a second request', () => {
  let up: RawServer;
  let chain: FakeChain;
  const send = (build: (connId: number) => Buffer): Promise<string> => chain.send(build);

  before(async () => {
    up = await rawServer((s, r) => answer(s, real(r)));
    chain = await fakeChain(up.url);
  });

  after(async () => {
    await chain?.close();
    await up?.close();
  });

  const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Injected: 1\r\n\r\n';
  const cases: Array<{ title: string; build: (connId: number) => Buffer }> = [
    { title: 'CR LF in a header value (raw bytes in the JSON)', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-evil': 'v\r\nX-Injected: 1' })) },
    { title: 'CR LF CR LF and a whole request in a header value', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-evil': 'v\r\n\r\n' + SMUGGLED })) },
    { title: 'CR LF as a JSON escape in a header value', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-evil': 'v\r\nX-Injected: 1' }), { escaped: true }) },
    { title: 'a bare LF in a header value', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-evil': 'v\nX-Injected: 1' })) },
    { title: 'a bare CR in a header value', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-evil': 'v\rX-Injected: 1' })) },
    { title: 'CR LF in the second value of a repeated header', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-list': ['fine', 'v\r\nX-Injected: 1'] })) },
    { title: 'CR LF in a header name', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-a\r\nx-injected': '1' })) },
    { title: 'CR LF in the Host header (forwarded as X-Forwarded-Host)', build: (id) => frame(id, '/a', requestHeaders('/a', { host: 'x\r\nX-Injected: 1' })) },
    { title: 'CR LF in REMOTE_ADDR (forwarded as X-Forwarded-For)', build: (id) => frame(id, '/a', requestHeaders('/a', { REMOTE_ADDR: '127.0.0.1\r\nX-Injected: 1' })) },
    { title: 'CR LF in the path', build: (id) => frame(id, '/a\r\nX-Injected:\t1\r\n\r\nGET\t/smuggled', requestHeaders('/a\r\nX-Injected:\t1\r\n\r\nGET\t/smuggled')) },
    { title: 'CR LF and spaces in the query (from URI)', build: (id) => frame(id, '/a', requestHeaders('/a', {}, '/a?q=1 HTTP/1.1\r\nHost: x\r\n\r\n' + SMUGGLED)) },
    { title: 'CR LF in the method', build: (id) => frame(id, '/a', requestHeaders('/a', { METHOD: 'GET /a HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET' })) },
    { title: 'CR LF in a header value of a POST with a body in memory', build: (id) => frame(id, '/a', requestHeaders('/a', { METHOD: 'POST', 'content-length': '3', 'x-evil': 'v\r\n\r\n' + SMUGGLED }), { body: 'abc' }) },
    { title: 'CR LF in a header value (tnetstring headers)', build: (id) => frame(id, '/a', requestHeaders('/a', { 'x-evil': 'v\r\n\r\n' + SMUGGLED }), { tnet: true }) },
  ];

  for (const c of cases) {
    test(`${c.title}: answered 400, the upstream sees nothing of it`, async () => {
      const before = up.requests.length;
      const payload = await send(c.build);
      assert.equal(statusOf(payload), '400', `${c.title}: ${payload.slice(0, 200)}`);
      // A good request after it, on the same gateway: the last thing the upstream sees.
      const ok = await send((id) => frame(id, '/good', requestHeaders('/good')));
      assert.equal(statusOf(ok), '200', ok.slice(0, 200));
      assert.ok(ok.endsWith('real GET /good'), ok.slice(0, 300));
      const seen = up.requests.slice(before);
      assert.deepEqual(seen.map((r) => r.target), ['/good'], `the upstream saw ${JSON.stringify(seen.map((r) => r.head))}`);
    });
  }

  test('nothing injected ever reached the upstream', () => {
    for (const r of up.requests) {
      assert.doesNotMatch(r.head, /injected|smuggled|\/a/i, r.head);
      assert.equal(r.head.indexOf('\r\n\r\n'), r.head.length - 4);
    }
  });
});
