/**
 * The upstream's connection handling against a scriptable FastCGI server: keep-alive, queue,
 * retries, pipelining, timeouts, aborts, bodies and backpressure. The same behaviours against
 * the real PHP-FPM are in test/integration/fastcgi-direct.test.ts.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastcgiUpstreamConfig } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import { createFastcgiUpstream } from '../../src/upstream/fastcgi/fastcgi-upstream.js';
import { ProtocolStatus } from '../../src/upstream/fastcgi/records.js';
import type { Upstream } from '../../src/upstream/upstream.js';
import { helloHandler, startFakeFastcgi } from '../harness/fake-fastcgi-server.js';
import type { FakeHandler, FakeOptions, FakeResponder, FakeServer } from '../harness/fake-fastcgi-server.js';
import { assertError, assertOk, capturingLogger, fastcgiConfig, header, request, run, sleep, syncResolverFs } from './fastcgi-support.js';

let root = '';

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-fcgi-unit-'));
  for (const f of ['x.php', 'y.php', 'slow.php']) fs.writeFileSync(path.join(root, f), '<?php');
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fake server and an upstream on it, closed at the end of the test. */
async function setup(
  t: { after(fn: () => unknown): void },
  handler: FakeHandler,
  cfg: Partial<FastcgiUpstreamConfig> = {},
  opts: FakeOptions = {},
  logger = silentLogger(),
): Promise<{ srv: FakeServer; up: Upstream }> {
  const srv = await startFakeFastcgi(handler, opts);
  const up = createFastcgiUpstream(fastcgiConfig(srv.address, root, cfg), logger, { resolverFs: syncResolverFs });
  t.after(async () => {
    await up.destroy();
    await srv.close();
  });
  return { srv, up };
}

/** Collects responders so the test decides when requests are answered. */
function holding(): { handler: FakeHandler; held: Array<{ uri: string; res: FakeResponder }>; waitFor(n: number): Promise<void> } {
  const held: Array<{ uri: string; res: FakeResponder }> = [];
  return {
    held,
    handler: (req, res) => held.push({ uri: req.params.get('REQUEST_URI') ?? '', res }),
    async waitFor(n) {
      for (let i = 0; i < 500 && held.length < n; i++) await sleep(5);
      assert.ok(held.length >= n, `${n} requests reached the server (got ${held.length})`);
    },
  };
}

test('keep-alive: sequential requests reuse one connection, with FCGI_KEEP_CONN', async (t) => {
  const { srv, up } = await setup(t, helloHandler);
  for (let i = 0; i < 5; i++) {
    const r = await run(up, request(`/x.php?i=${i}`));
    assertOk(r);
    assert.equal(r.body.toString(), `hello /x.php?i=${i}`);
    assert.equal(header(r, 'content-type'), 'text/plain');
  }
  assert.equal(srv.conns.length, 1);
  assert.equal(srv.requests.length, 5);
  assert.ok(srv.requests.every((q) => q.keepConn));
  assert.equal(srv.requests[0]!.params.get('SCRIPT_FILENAME'), path.join(root, 'x.php'));
  const h = up.health();
  assert.equal(h.healthy, true);
  assert.deepEqual(h.connections, { busy: 0, idle: 1, max: 2 });
});

test('queue: max_connections bounds the connections; waiting requests go FIFO', async (t) => {
  for (const max of [1, 2]) {
    const order: number[] = [];
    const { srv, up } = await setup(
      t,
      (req, res) => {
        order.push(Number(req.params.get('QUERY_STRING')));
        setTimeout(() => res.reply('Content-Type: text/plain', 'ok'), 5);
      },
      { maxConnections: max },
    );
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => run(up, request(`/x.php?${i}`))));
    for (const r of results) assertOk(r);
    assert.equal(srv.conns.length, max);
    if (max === 1) assert.deepEqual(order, [...Array(12).keys()]);
    else assert.deepEqual([...order].sort((x, y) => x - y), [...Array(12).keys()]);
  }
});

test('queue: full queue is 503 M2GW_SATURATED at once', async (t) => {
  const hold = holding();
  const { up } = await setup(t, hold.handler, { maxConnections: 1, queueSize: 1 });
  const first = run(up, request('/x.php?1'));
  await hold.waitFor(1);
  const second = run(up, request('/x.php?2'));
  const third = await run(up, request('/x.php?3'));
  assertError(third, 'M2GW_SATURATED', 'connect');
  assert.ok(third.ms < 100);
  assert.equal(up.health().queued, 1);
  hold.held[0]!.res.reply('A: 1');
  await hold.waitFor(2);
  hold.held[1]!.res.reply('A: 2');
  assertOk(await first);
  assertOk(await second);
});

test('queue: a request waiting longer than queue_timeout is 503 M2GW_SATURATED', async (t) => {
  const hold = holding();
  const { up } = await setup(t, hold.handler, { maxConnections: 1, queueTimeoutMs: 100 });
  const first = run(up, request('/x.php?1'));
  await hold.waitFor(1);
  const second = await run(up, request('/x.php?2'));
  assertError(second, 'M2GW_SATURATED', 'connect');
  assert.ok(second.ms >= 90 && second.ms < 1000, `${second.ms} ms`);
  hold.held[0]!.res.reply('A: 1');
  assertOk(await first);
  assert.equal(hold.held.length, 1, 'the expired request never reached the server');
});

test('connect refused is 502 M2GW_UPSTREAM_CONNECT (phase connect), health turns, then recovers', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const up = createFastcgiUpstream(fastcgiConfig(`127.0.0.1:${port}`, root), silentLogger());
  t.after(() => up.destroy());
  const r = await run(up, request('/x.php'));
  assertError(r, 'M2GW_UPSTREAM_CONNECT', 'connect');
  assert.equal(up.health().healthy, false);
  const srv = await startFakeFastcgi(helloHandler, { port });
  t.after(() => srv.close());
  assertOk(await run(up, request('/x.php')));
  assert.equal(up.health().healthy, true);
});

test('response_timeout: no first byte in time is 504 (phase request-sent); the next request works', async (t) => {
  let n = 0;
  const { srv, up } = await setup(t, (_req, res) => (n++ === 0 ? undefined : helloHandler(_req, res)), { responseTimeoutMs: 150 });
  const r = await run(up, request('/x.php'));
  assertError(r, 'M2GW_UPSTREAM_TIMEOUT', 'request-sent');
  assert.ok(r.ms >= 140 && r.ms < 1500, `${r.ms} ms`);
  assertOk(await run(up, request('/x.php')));
  assert.equal(srv.conns.length, 2, 'the timed-out connection was not reused');
  assert.ok(srv.conns[0]!.closed);
});

test('idle_timeout: silence after the head is an error in phase headers-sent', async (t) => {
  const { up } = await setup(t, (_req, res) => res.stdout('Content-Type: text/plain\r\n\r\npartial'), { idleTimeoutMs: 150 });
  const r = await run(up, request('/x.php'));
  assert.equal(r.started, true);
  assert.equal(r.body.toString(), 'partial');
  assertError(r, 'M2GW_UPSTREAM_TIMEOUT', 'headers-sent');
});

test('a connection the peer closed while idle (pm.max_requests) is never reused', async (t) => {
  const { srv, up } = await setup(t, (req, res) => {
    helloHandler(req, res);
    res.close();
  });
  assertOk(await run(up, request('/x.php')));
  await sleep(30);
  assert.equal(up.health().connections.idle, 0, 'dropped from the idle list');
  const post = await run(up, request('/x.php', { method: 'POST', body: { kind: 'buffer', data: Buffer.from('a=1') } }));
  assertOk(post);
  assert.equal(srv.conns.length, 2);
});

test('close right after END_REQUEST: the next request still gets a good connection', async (t) => {
  // The FIN arrives with the END_REQUEST; reuse is deferred a turn so it is seen first.
  const { srv, up } = await setup(t, (req, res) => {
    helloHandler(req, res);
    res.close();
  }, { maxConnections: 1 });
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => run(up, request(`/x.php?${i}`, { method: i % 2 ? 'POST' : 'GET' }))));
  for (const r of results) assertOk(r);
  assert.equal(srv.conns.length, 6);
});

test('a reused connection closing later without an answer: GET retried on a new connection, POST 502', async (t) => {
  // Closed 120 ms after the previous answer: not PHP-FPM's recycling, so PHP may have run it.
  const { srv, up } = await setup(
    t,
    (req, res) => {
      if (req.seq === 2) setTimeout(() => res.destroy(), 120);
      else helloHandler(req, res);
    },
    { maxConnections: 1 },
  );
  assertOk(await run(up, request('/x.php?warm')));
  const get = await run(up, request('/x.php?get'));
  assertOk(get);
  assert.equal(get.body.toString(), 'hello /x.php?get');
  assert.equal(srv.conns.length, 2, 'retried on a new connection');
  assertOk(await run(up, request('/x.php?warm2')));
  const post = await run(up, request('/x.php?post', { method: 'POST', body: { kind: 'buffer', data: Buffer.from('x') } }));
  assertError(post, 'M2GW_UPSTREAM_RESET', 'request-sent');
  assert.equal(srv.requests.filter((q) => q.params.get('QUERY_STRING') === 'post').length, 1, 'POST not sent twice');
});

test('pm.max_requests pattern: FIN right after END_REQUEST, request unanswered: even POST is re-sent', async (t) => {
  // PHP-FPM's child answers, finishes its shutdown, closes: it never read the next request.
  // The POST waits for the connection (it is never pipelined) and is written onto it once the
  // answer is in, a few ms before the child's FIN arrives.
  const { srv, up } = await setup(
    t,
    (req, res) => {
      if (req.conn.index > 0) helloHandler(req, res);
      else if (req.seq === 1) {
        res.reply('A: 1', 'first');
        setTimeout(() => res.destroy(), 20);
      }
      // seq 2 on the first connection: never read by the exiting child.
    },
    { maxConnections: 1, pipeline: 2 },
  );
  const a = run(up, request('/x.php?a'));
  const b = run(up, request('/x.php?b', { method: 'POST', body: { kind: 'buffer', data: Buffer.from('x') } }));
  assertOk(await a);
  const rb = await b;
  assertOk(rb);
  assert.equal(rb.body.toString(), 'hello /x.php?b');
  assert.equal(srv.conns.length, 2);
  assert.equal(srv.conns[0]!.requests, 2, 'the POST was written onto the recycled connection first');
});

test('a fresh connection closing without an answer is 502, not retried', async (t) => {
  const { srv, up } = await setup(t, (_req, res) => res.destroy());
  assertError(await run(up, request('/x.php')), 'M2GW_UPSTREAM_RESET', 'request-sent');
  assert.equal(srv.requests.length, 1);
});

test('pipelining: the next request is written before the current one ends; answers come in order', async (t) => {
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1, pipeline: 2 });
  const a = run(up, request('/x.php?a'));
  const b = run(up, request('/x.php?b'));
  await hold.waitFor(2);
  assert.equal(srv.conns.length, 1);
  assert.deepEqual(srv.conns[0]!.log, ['B1', 'P1', 'S1', 'B2', 'P2', 'S2'], 'both on one connection, distinct ids');
  hold.held[0]!.res.reply('X: a', 'A');
  hold.held[1]!.res.reply('X: b', 'B');
  const [ra, rb] = await Promise.all([a, b]);
  assert.equal(ra.body.toString(), 'A');
  assert.equal(rb.body.toString(), 'B');
});

test('pipelining: never behind a request that has been running a while (likely a slow script)', async (t) => {
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1, pipeline: 4 });
  const a = run(up, request('/x.php?a'));
  await hold.waitFor(1);
  await new Promise((r) => setTimeout(r, 50));
  const b = run(up, request('/x.php?b'));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(srv.conns[0]!.log, ['B1', 'P1', 'S1'], 'b waits in the queue, not behind a');
  hold.held[0]!.res.reply('X: a', 'A');
  assert.equal((await a).body.toString(), 'A');
  await hold.waitFor(2);
  hold.held[1]!.res.reply('X: b', 'B');
  assert.equal((await b).body.toString(), 'B');
});

test('pipelining: a GET pipelined on a connection that closes unanswered is retried on a new one', async (t) => {
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1, pipeline: 2 });
  const a = run(up, request('/x.php?a'));
  const b = run(up, request('/x.php?b'));
  await hold.waitFor(2);
  hold.held[0]!.res.reply('X: a', 'A');
  srv.setHandler(helloHandler);
  assertOk(await a);
  // Closed well after the answer: not a recycling child (see the pm.max_requests test).
  await sleep(120);
  hold.held[0]!.res.destroy();
  const rb = await b;
  assertOk(rb);
  assert.equal(rb.body.toString(), 'hello /x.php?b');
  assert.equal(srv.conns.length, 2);
});

test('pipelining: a POST is never written behind another request; it waits for a connection of its own', async (t) => {
  // Behind another request it would share that request's fate: a reset before PHP read it
  // (our abort of the request ahead, request_terminate_timeout, a crash) cannot be told from
  // one after PHP started it, so it could not be retried.
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1, pipeline: 4 });
  const a = run(up, request('/x.php?a'));
  const b = run(up, request('/x.php?b', { method: 'POST', body: { kind: 'buffer', data: Buffer.from('x=1') } }));
  const c = run(up, request('/x.php?c'));
  await hold.waitFor(1);
  await sleep(50);
  assert.equal(hold.held.length, 1, 'only the first request reached the server');
  assert.equal(up.health().queued, 2, 'the POST waits in the queue, and the GET behind it in order');
  // The connection dies under the first request: the POST, never written, is not hurt.
  hold.held[0]!.res.destroy();
  assertError(await a, 'M2GW_UPSTREAM_RESET', 'request-sent');
  await hold.waitFor(2);
  assert.equal(hold.held[1]!.uri, '/x.php?b');
  assert.equal(Buffer.concat(srv.requests[1]!.stdin).toString(), 'x=1');
  hold.held[1]!.res.reply('X: b', 'B');
  assert.equal((await b).body.toString(), 'B');
  await hold.waitFor(3);
  hold.held[2]!.res.reply('X: c', 'C');
  assert.equal((await c).body.toString(), 'C');
});

test('client abort of a running request: the GET pipelined behind it is retried, the POST queued behind it served', async (t) => {
  // Closing the connection is the only way to stop a running script; what waits behind must
  // not pay for it.
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1, pipeline: 4 });
  const ac = new AbortController();
  const a = run(up, request('/x.php?a', { signal: ac.signal }));
  const b = run(up, request('/x.php?b'));
  const c = run(up, request('/x.php?c', { method: 'POST', body: { kind: 'buffer', data: Buffer.from('y') } }));
  await hold.waitFor(2);
  assert.deepEqual(
    hold.held.map((h) => h.uri),
    ['/x.php?a', '/x.php?b'],
  );
  srv.setHandler(helloHandler);
  ac.abort();
  assertError(await a, 'M2GW_CLIENT_GONE', 'request-sent');
  const rb = await b;
  assertOk(rb);
  assert.equal(rb.body.toString(), 'hello /x.php?b');
  const rc = await c;
  assertOk(rc);
  assert.equal(rc.body.toString(), 'hello /x.php?c');
  assert.equal(srv.requests.filter((q) => q.params.get('QUERY_STRING') === 'c').length, 1, 'the POST reached PHP once');
});

test('pipelining: output for a request behind the one being served is a protocol error, never passed on', async (t) => {
  // PHP-FPM answers strictly in order; an app that multiplexes (Go's net/http/fcgi) does not, and
  // its output for b would get past b's pause and keep a's first-byte clock from firing.
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1, pipeline: 2, responseTimeoutMs: 3000 });
  const a = run(up, request('/x.php?a'));
  const b = run(up, request('/x.php?b'), { onData: (ctl) => ctl.pause() });
  await hold.waitFor(2);
  hold.held[1]!.res.reply('Content-Type: text/plain', Buffer.alloc(1024 * 1024, 0x61));
  const [ra, rb] = await Promise.all([a, b]);
  assertError(rb, 'M2GW_UPSTREAM_PROTOCOL', 'request-sent');
  assert.equal(rb.started, false, 'none of b\'s output reached its client');
  assertError(ra, 'M2GW_UPSTREAM_PROTOCOL', 'request-sent');
  assert.equal(srv.requests.length, 2, 'neither is retried');
});

test('pipelining: never behind a request whose body is still streaming', async (t) => {
  const file = path.join(root, 'upload.bin');
  fs.writeFileSync(file, crypto.randomBytes(3 * 1024 * 1024));
  const { srv, up } = await setup(t, helloHandler, { maxConnections: 1, pipeline: 4 });
  const a = run(up, request('/x.php?a', { method: 'POST', body: { kind: 'file', path: file, length: 3 * 1024 * 1024 } }));
  const b = run(up, request('/x.php?b'));
  assertOk(await a);
  assertOk(await b);
  const log = srv.conns[0]!.log;
  // Request 2 may get id 2 (pipelined once the body ended) or id 1 again (after request 1 ended).
  const bodyEnd = log.indexOf('S1');
  const secondBegin = log.findIndex((e, i) => i > 0 && e.startsWith('B'));
  assert.ok(bodyEnd !== -1 && secondBegin > bodyEnd, 'request 2 begins after request 1’s body ended: ' + log.join(' '));
});

test('request body from a file: streamed as STDIN records, intact', async (t) => {
  const size = 5 * 1024 * 1024 + 13;
  const data = crypto.randomBytes(size);
  const file = path.join(root, 'body.bin');
  fs.writeFileSync(file, data);
  let got: { md5: string; len: string | undefined; records: number } | null = null;
  const { up } = await setup(t, (req, res) => {
    got = {
      md5: crypto.createHash('md5').update(Buffer.concat(req.stdin)).digest('hex'),
      len: req.params.get('CONTENT_LENGTH'),
      records: req.stdin.length,
    };
    res.reply('A: 1');
  });
  assertOk(await run(up, request('/x.php', { method: 'PUT', body: { kind: 'file', path: file, length: size } })));
  assert.ok(got !== null);
  const g = got as { md5: string; len: string | undefined; records: number };
  assert.equal(g.md5, crypto.createHash('md5').update(data).digest('hex'));
  assert.equal(g.len, String(size));
  assert.ok(g.records >= Math.ceil(size / 65535));
});

test('request body from a file shorter than announced: 500, connection dropped', async (t) => {
  const file = path.join(root, 'short.bin');
  fs.writeFileSync(file, Buffer.alloc(100));
  const { up } = await setup(t, helloHandler);
  assertError(await run(up, request('/x.php', { method: 'POST', body: { kind: 'file', path: file, length: 1000 } })), 'M2GW_INTERNAL');
});

test('request body in memory, larger than one record: sent whole', async (t) => {
  const data = crypto.randomBytes(300_000);
  let md5 = '';
  const { up } = await setup(t, (req, res) => {
    md5 = crypto.createHash('md5').update(Buffer.concat(req.stdin)).digest('hex');
    res.reply('A: 1');
  });
  assertOk(await run(up, request('/x.php', { method: 'POST', body: { kind: 'buffer', data } })));
  assert.equal(md5, crypto.createHash('md5').update(data).digest('hex'));
});

test('END_REQUEST before the body was read: that connection is not reused', async (t) => {
  const file = path.join(root, 'early.bin');
  fs.writeFileSync(file, Buffer.alloc(8 * 1024 * 1024, 1));
  const { srv, up } = await setup(t, (req, res) => res.reply('Status: 413', `early ${req.seq}`), {}, { runAt: 'params' });
  const r = await run(up, request('/x.php', { method: 'POST', body: { kind: 'file', path: file, length: 8 * 1024 * 1024 } }));
  assertOk(r, 413);
  const next = await run(up, request('/x.php'));
  assertOk(next, 413);
  assert.equal(next.body.toString(), 'early 1', 'first request on a new connection');
  assert.equal(srv.conns.length, 2);
});

test('client abort of a running request closes its connection and frees the slot', async (t) => {
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1 });
  const ac = new AbortController();
  const a = run(up, request('/x.php?a', { signal: ac.signal }));
  await hold.waitFor(1);
  ac.abort();
  const ra = await a;
  assertError(ra, 'M2GW_CLIENT_GONE', 'request-sent');
  await srv.conns[0]!.closedPromise;
  srv.setHandler(helloHandler);
  assertOk(await run(up, request('/x.php?b')));
  assert.equal(srv.conns.length, 2);
});

test('client abort after the head: the error has phase headers-sent', async (t) => {
  const ac = new AbortController();
  const { up } = await setup(t, (_req, res) => res.stdout('A: 1\r\n\r\nsome'));
  const r = await run(up, request('/x.php', { signal: ac.signal }), { onData: () => ac.abort() });
  assertError(r, 'M2GW_CLIENT_GONE', 'headers-sent');
});

test('client abort of a queued request takes it off the queue; PHP never sees it', async (t) => {
  const hold = holding();
  const { up } = await setup(t, hold.handler, { maxConnections: 1 });
  const a = run(up, request('/x.php?a'));
  await hold.waitFor(1);
  const ac = new AbortController();
  const b = run(up, request('/x.php?b', { signal: ac.signal }));
  await sleep(10);
  assert.equal(up.health().queued, 1);
  ac.abort();
  assertError(await b, 'M2GW_CLIENT_GONE', 'connect');
  assert.equal(up.health().queued, 0);
  hold.held[0]!.res.reply('A: 1');
  assertOk(await a);
  await sleep(20);
  assert.equal(hold.held.length, 1);
});

test('client abort of a pipelined request not started yet: its output is dropped, the connection kept', async (t) => {
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler, { maxConnections: 1, pipeline: 2 });
  const a = run(up, request('/x.php?a'));
  const ac = new AbortController();
  const b = run(up, request('/x.php?b', { signal: ac.signal }));
  await hold.waitFor(2);
  ac.abort();
  assertError(await b, 'M2GW_CLIENT_GONE');
  hold.held[0]!.res.reply('A: 1', 'A');
  hold.held[1]!.res.reply('A: 2', 'B');
  assert.equal((await a).body.toString(), 'A');
  srv.setHandler(helloHandler);
  assertOk(await run(up, request('/x.php?c')));
  assert.equal(srv.conns.length, 1);
});

test('END_REQUEST with OVERLOADED (or CANT_MPX_CONN, UNKNOWN_ROLE) is 503 M2GW_UPSTREAM_OVERLOADED', async (t) => {
  for (const status of [ProtocolStatus.OVERLOADED, ProtocolStatus.CANT_MPX_CONN, ProtocolStatus.UNKNOWN_ROLE]) {
    const { up } = await setup(t, (_req, res) => res.end(0, status));
    assertError(await run(up, request('/x.php')), 'M2GW_UPSTREAM_OVERLOADED', 'request-sent');
  }
});

test('garbage instead of records is 502 M2GW_UPSTREAM_PROTOCOL', async (t) => {
  const { up } = await setup(t, (_req, res) => res.raw(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')));
  assertError(await run(up, request('/x.php')), 'M2GW_UPSTREAM_PROTOCOL');
});

test('a bad CGI head is 502; the connection stays in step and is reused', async (t) => {
  let n = 0;
  const { srv, up } = await setup(t, (req, res) => (n++ === 0 ? res.reply('no colon here', 'body') : helloHandler(req, res)));
  assertError(await run(up, request('/x.php')), 'M2GW_UPSTREAM_PROTOCOL', 'request-sent');
  assertOk(await run(up, request('/x.php')));
  assert.equal(srv.conns.length, 1);
});

test('PHP-FPM closing mid-body after the head: error in phase headers-sent', async (t) => {
  const { up } = await setup(t, (_req, res) => {
    res.stdout('Content-Type: text/plain\r\n\r\nhalf of the body');
    setTimeout(() => res.destroy(), 20);
  });
  const r = await run(up, request('/x.php'));
  assert.equal(r.started, true);
  assert.equal(r.body.toString(), 'half of the body');
  assertError(r, 'M2GW_UPSTREAM_RESET', 'headers-sent');
});

test('no output at all is 502', async (t) => {
  const { up } = await setup(t, (_req, res) => res.end());
  assertError(await run(up, request('/x.php')), 'M2GW_UPSTREAM_PROTOCOL');
});

test('backpressure: pause() from the sink stops data until resume()', async (t) => {
  const total = 2 * 1024 * 1024;
  const { up } = await setup(t, (_req, res) => {
    res.stdout('Content-Type: application/octet-stream\r\n\r\n');
    res.stdout(Buffer.alloc(total, 0x61));
    res.end();
  });
  let paused = false;
  let whilePaused = 0;
  const r = await run(up, request('/x.php'), {
    onData(ctl, _chunk, i) {
      if (paused) whilePaused++;
      if (i === 0) {
        paused = true;
        ctl.pause();
        setTimeout(() => {
          paused = false;
          ctl.resume();
        }, 150);
      }
    },
  });
  assertOk(r);
  assert.equal(r.body.length, total);
  assert.equal(whilePaused, 0);
  assert.ok(r.ms >= 140);
});

test('PHP stderr is logged with the request id', async (t) => {
  const { logger, records } = capturingLogger();
  const { up } = await setup(
    t,
    (_req, res) => {
      res.stderr('PHP Warning: something');
      res.reply('A: 1', 'ok');
    },
    {},
    {},
    logger,
  );
  const req = request('/x.php');
  assertOk(await run(up, req));
  const rec = records.find((x) => x['message'] === 'php stderr');
  assert.ok(rec, 'logged');
  assert.equal(rec['request_id'], req.id);
  assert.equal(rec['upstream'], 'php');
  assert.equal(rec['stderr'], 'PHP Warning: something');
  assert.equal(rec['level'], 'warn');
});

test('HEAD: the body PHP might send is not forwarded', async (t) => {
  const { up } = await setup(t, (_req, res) => res.reply('A: 1', 'body'));
  const r = await run(up, request('/x.php', { method: 'HEAD' }));
  assertOk(r);
  assert.equal(r.body.length, 0);
});

test('a header too large for one FastCGI record is 400', async (t) => {
  const { srv, up } = await setup(t, helloHandler);
  const r = await run(up, request('/x.php', { headers: [['cookie', 'c'.repeat(70_000)]] }));
  assertError(r, 'M2GW_BAD_REQUEST');
  assert.equal(srv.requests.length, 0);
});

test('close(): in-flight requests finish, new ones are refused, connections end', async (t) => {
  const hold = holding();
  const { srv, up } = await setup(t, hold.handler);
  const a = run(up, request('/x.php'));
  await hold.waitFor(1);
  const closed = up.close();
  assertError(await run(up, request('/x.php')), 'M2GW_SHUTTING_DOWN');
  hold.held[0]!.res.reply('A: 1');
  assertOk(await a);
  await closed;
  await srv.conns[0]!.closedPromise;
  assert.equal(up.health().connections.idle + up.health().connections.busy, 0);
});

test('destroy(): in-flight requests fail at once', async (t) => {
  const hold = holding();
  const { up } = await setup(t, hold.handler);
  const a = run(up, request('/x.php'));
  await hold.waitFor(1);
  await up.destroy();
  assertError(await a, 'M2GW_SHUTTING_DOWN');
});

test('routing errors reach the sink without a connection: 404, 403', async (t) => {
  const { srv, up } = await setup(t, helloHandler, { deny: ['/x'] });
  assertError(await run(up, request('/missing.php')), 'M2GW_NOT_FOUND', 'route');
  assertError(await run(up, request('/x.php')), 'M2GW_FORBIDDEN', 'route');
  assert.equal(srv.conns.length, 0);
});
