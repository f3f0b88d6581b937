/**
 * WebSockets end to end: a real `ws` client → real Mongrel2 → m2gw → a real `ws` server.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';
import { startChain, type Chain } from './gateway-support.js';
import { closeOf, connect, nextMessage, rawHandshake, startWsUpstream, wsUrl, type WsUpstream } from './websocket-support.js';

function refusal(err: unknown): { status: number; body: string } {
  const e = err as { status?: number; body?: string };
  if (typeof e.status !== 'number') throw err;
  return { status: e.status, body: e.body ?? '' };
}

describe('WebSocket through Mongrel2 and m2gw', () => {
  let app: WsUpstream;
  let chain: Chain;
  // Accepts connections and never answers: the handshake must end in 504.
  const silent = net.createServer(() => undefined);

  before(async () => {
    app = await startWsUpstream();
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentPort = (silent.address() as net.AddressInfo).port;
    const downPort = await freePort();
    chain = await startChain({
      toml: `
[upstream.app]
type = "http"
url = "${app.url}"
response_timeout = "2s"
[upstream.small]
type = "http"
url = "${app.url}"
websocket_max_message = "64KiB"
[upstream.silent]
type = "http"
url = "http://127.0.0.1:${silentPort}"
response_timeout = "500ms"
[[route]]
prefix = "/silent/"
upstream = "silent"
[upstream.down]
type = "http"
url = "http://127.0.0.1:${downPort}"
retries = 0
[upstream.php]
type = "fastcgi"
address = "127.0.0.1:${downPort}"
document_root = "/tmp"
[[route]]
prefix = "/"
upstream = "app"
[[route]]
prefix = "/small/"
upstream = "small"
strip_prefix = true
[[route]]
prefix = "/down/"
upstream = "down"
[[route]]
prefix = "/php/"
upstream = "php"
[[route]]
prefix = "/nows/"
upstream = "app"
websocket = false
`,
    });
  });
  after(async () => {
    await chain?.stop();
    await app?.stop();
    silent.close();
  });

  it('echoes text and binary messages, with one access line', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/echo'));
    ws.send('hello websocket');
    const text = await nextMessage(ws);
    assert.equal(text.data.toString(), 'hello websocket');
    assert.equal(text.binary, false);
    ws.send(Buffer.from([0, 1, 2, 255]));
    const bin = await nextMessage(ws);
    assert.deepEqual(bin.data, Buffer.from([0, 1, 2, 255]));
    assert.equal(bin.binary, true);
    const closed = closeOf(ws);
    ws.close(1000, 'done');
    assert.deepEqual(await closed, { code: 1000, reason: 'done' });
    await waitFor(() => chain.logs.some((l) => l.type === 'websocket' && l.path === '/ws/echo' && l.closed_by === 'client'));
    const line = chain.logs.find((l) => l.type === 'websocket' && l.path === '/ws/echo')!;
    assert.equal(line.status, 101);
    assert.equal(line.upstream, 'app');
    assert.equal(line.messages_in, 2);
    assert.equal(line.bytes_in, 19);
    assert.equal(line.messages_out, 2);
    assert.equal(line.bytes_out, 19);
    assert.equal(line.close_code, 1000);
    assert.equal(typeof line.request_id, 'string');
    assert.equal(typeof line.duration_ms, 'number');
  });

  it('carries a 1 MiB message each way', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/echo'), { maxPayload: 4 << 20 });
    const big = Buffer.alloc(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    ws.send(big);
    const echoed = await nextMessage(ws);
    assert.equal(echoed.data.length, big.length);
    assert.ok(echoed.data.equals(big));
    ws.close();
  });

  it('reassembles a client message sent in fragments', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/echo'));
    ws.send('frag', { fin: false });
    ws.send('ment', { fin: false });
    ws.send('ed', { fin: true });
    assert.equal((await nextMessage(ws)).data.toString(), 'fragmented');
    ws.close();
  });

  it('a handshake pipelined behind a request: Mongrel2 1.12 closes the connection (nothing is answered), and m2gw keeps no state for it', async () => {
    // So m2gw never sees a handshake while an earlier request on its connection is open, and
    // WebSocket handshakes need no place in the pipeline (websockets.ts).
    const { hostname, port } = new URL(chain.url);
    const before = app.handshakes.length;
    for (const gapMs of [0, 50]) {
      const socket = net.connect(Number(port), hostname);
      socket.on('error', () => undefined);
      let got = '';
      let closed = false;
      socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
      socket.on('close', () => (closed = true));
      await new Promise<void>((r) => socket.once('connect', r));
      socket.write('GET /http/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      socket.write('GET /ws/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await waitFor(() => closed, 10_000, 10, `Mongrel2 closed the connection (gap ${gapMs} ms)`);
      assert.equal(got, '', 'nothing reaches the client, not even the first answer');
      // The slow request was forwarded and answered; its state goes once Mongrel2 says so.
      await waitFor(() => chain.gateway.connectionCount === 0 && chain.gateway.inFlight === 0, 10_000, 20, 'no connection state left');
    }
    assert.equal(app.handshakes.length, before, 'no handshake reached the app');
    const ws = await connect(wsUrl(chain.url, '/ws/echo'));
    ws.send('still fine');
    assert.equal((await nextMessage(ws)).data.toString(), 'still fine');
    ws.close();
  });

  it('negotiates the subprotocol; Origin, cookies, query and X-Forwarded-* reach the app; extensions do not', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/info?room=7'), {
      protocols: ['chat.v1', 'chat.v2'],
      origin: 'https://app.example',
      headers: { Cookie: 'session=abc; theme=dark', 'X-Request-Id': 'ws-trace-1' },
      perMessageDeflate: true,
    });
    assert.equal(ws.protocol, 'chat.v2');
    assert.equal(ws.extensions, '', 'no extension negotiated');
    const info = JSON.parse((await nextMessage(ws)).data.toString()) as { url: string; protocol: string; origin: string; cookie: string; headers: Record<string, string> };
    assert.equal(info.url, '/ws/info?room=7');
    assert.equal(info.protocol, 'chat.v2');
    assert.equal(info.origin, 'https://app.example');
    assert.equal(info.cookie, 'session=abc; theme=dark');
    assert.equal(info.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(info.headers['x-forwarded-proto'], 'http');
    assert.equal(info.headers['x-request-id'], 'ws-trace-1');
    assert.equal(info.headers['sec-websocket-extensions'], undefined);
    ws.close();
  });

  it('relays pings and pongs both ways', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/echo'));
    const pong = new Promise<string>((r) => ws.once('pong', (d) => r(d.toString())));
    ws.ping('p1');
    assert.equal(await pong, 'p1', 'the app answered the client ping');
    const server = app.sockets[app.sockets.length - 1]!;
    const serverPong = new Promise<string>((r) => server.once('pong', (d) => r(d.toString())));
    const clientPing = new Promise<string>((r) => ws.once('ping', (d) => r(d.toString())));
    server.ping('s1');
    assert.equal(await clientPing, 's1');
    assert.equal(await serverPong, 's1', 'the client pong reached the app');
    ws.close();
  });

  it('relays a close from the client with code and reason', async () => {
    const n = app.sockets.length;
    const ws = await connect(wsUrl(chain.url, '/ws/echo'));
    const clientClosed = closeOf(ws);
    ws.close(4001, 'client says bye ✓');
    assert.deepEqual(await app.closed(n), { code: 4001, reason: 'client says bye ✓' });
    assert.equal((await clientClosed).code, 4001);
  });

  it('relays a close from the app with code and reason', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/close-me'));
    const closed = closeOf(ws);
    ws.send('x');
    assert.deepEqual(await closed, { code: 4000, reason: 'bye from app' });
  });

  it('gives the client 1011 when the app drops the connection', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/drop'));
    const closed = closeOf(ws);
    ws.send('x');
    assert.equal((await closed).code, 1011);
  });

  it('closes the upstream socket within a second of the client vanishing', async () => {
    const n = app.sockets.length;
    const ws = await connect(wsUrl(chain.url, '/ws/echo'));
    ws.send('hi');
    await nextMessage(ws);
    const t0 = Date.now();
    ws.terminate();
    await app.closed(n);
    assert.ok(Date.now() - t0 < 1500, `upstream closed after ${Date.now() - t0} ms`);
  });

  it('answers 403 from the app as an HTTP response', async () => {
    const r = refusal(await connect(wsUrl(chain.url, '/ws/forbidden')).then(() => assert.fail('opened'), (e: unknown) => e));
    assert.equal(r.status, 403);
    assert.equal(r.body, 'forbidden\n');
  });

  it('answers 502 when the upstream is down', async () => {
    const r = refusal(await connect(wsUrl(chain.url, '/down/ws')).then(() => assert.fail('opened'), (e: unknown) => e));
    assert.equal(r.status, 502);
  });

  it('answers 504 when the upstream gives no response head within response_timeout', async () => {
    const r = refusal(await connect(wsUrl(chain.url, '/silent/ws')).then(() => assert.fail('opened'), (e: unknown) => e));
    assert.equal(r.status, 504);
  });

  it('refuses handshakes on FastCGI routes and routes with websocket = false (400)', async () => {
    for (const path of ['/php/ws', '/nows/ws']) {
      const r = refusal(await connect(wsUrl(chain.url, path)).then(() => assert.fail('opened'), (e: unknown) => e));
      assert.equal(r.status, 400, path);
    }
  });

  it('refuses a handshake with a dot-dot segment (400, as over HTTP) before routing: the app never sees it', async () => {
    const seen = app.handshakes.length;
    // Each would match /small/ (or /) and reach the app with its `..` left for the app to resolve.
    const paths = ['/small/../ws/echo', '/small/%2e%2E/ws/echo', '/small/..;/ws/echo', '/small/..%2fws/echo', '/ws/..%5cws/echo'];
    for (const path of paths) {
      const head = await rawHandshake(chain.url, path);
      assert.match(head, /^HTTP\/1\.1 400 /, `${path}: ${head.split('\r\n')[0]}`);
    }
    assert.deepEqual(app.handshakes.slice(seen).map((h) => h.url), [], 'no handshake reached the app');
    const refused = (): unknown[] => chain.logs.filter((l) => l.type === 'websocket' && paths.includes(String(l.path))).map((l) => [l.status, l.error]);
    await waitFor(() => refused().length === paths.length);
    assert.deepEqual(refused(), paths.map(() => [400, 'M2GW_BAD_REQUEST']));
    // The same path without the dot-dot segment opens: the refusal is the segment's.
    assert.match(await rawHandshake(chain.url, '/small/ws/echo'), /^HTTP\/1\.1 101 /);
  });

  it('closes with 1009 for a client message over websocket_max_message', async () => {
    const ws = await connect(wsUrl(chain.url, '/small/ws/echo'));
    ws.send(Buffer.alloc(1000, 1));
    assert.equal((await nextMessage(ws)).data.length, 1000);
    const closed = closeOf(ws);
    ws.send(Buffer.alloc(65 * 1024, 2));
    assert.equal((await closed).code, 1009);
  });

  it('keeps memory bounded for a slow client: the app is paused, nothing is lost', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/echo'), { maxPayload: 64 << 20 });
    ws.send('start');
    await nextMessage(ws);
    const server = app.sockets[app.sockets.length - 1]!;
    const clientSocket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
    clientSocket.pause();
    const pieceSize = 64 * 1024;
    const total = 48 << 20;
    for (let sent = 0, i = 0; sent < total; sent += pieceSize, i++) {
      const piece = Buffer.alloc(pieceSize);
      piece.writeUInt32BE(i, 0);
      server.send(piece, { binary: true });
    }
    // With the client not reading, m2gw must stop reading too: most of the data stays queued in the app.
    await waitFor(() => server.bufferedAmount > 24 << 20, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(server.bufferedAmount > 24 << 20, `app still has ${server.bufferedAmount} bytes queued`);
    let received = 0;
    let expected = 0;
    let inOrder = true;
    clientSocket.resume();
    while (received < total) {
      const { data } = await nextMessage(ws);
      if (data.readUInt32BE(0) !== expected++) inOrder = false;
      received += data.length;
    }
    assert.ok(inOrder);
    assert.equal(received, total);
    ws.close();
  });
});

describe('WebSocket keep-alive and limits', () => {
  let app: WsUpstream;
  let chain: Chain;

  before(async () => {
    app = await startWsUpstream();
    const downPort = await freePort();
    chain = await startChain({
      // Mongrel2 checks limits every tick_timer seconds; min_ping 2 makes an unattended
      // WebSocket die within a few seconds.
      settings: { 'limits.min_ping': 2, 'limits.tick_timer': 1 },
      toml: `
[gateway]
max_websockets = 2
[upstream.app]
type = "http"
url = "${app.url}"
websocket_ping_interval = "300ms"
[upstream.quiet]
type = "http"
url = "${app.url}"
websocket_ping_interval = "10s"
[[route]]
prefix = "/"
upstream = "app"
[[route]]
prefix = "/quiet/"
upstream = "quiet"
strip_prefix = true
[upstream.down]
type = "http"
url = "http://127.0.0.1:${downPort}"
retries = 0
[[route]]
prefix = "/down/"
upstream = "down"
`,
    });
  });
  after(async () => {
    await chain?.stop();
    await app?.stop();
  });

  it('answers 503 beyond gateway.max_websockets', async () => {
    await waitFor(() => chain.gateway.websocketCount === 0);
    const a = await connect(wsUrl(chain.url, '/ws/echo'));
    const b = await connect(wsUrl(chain.url, '/ws/echo'));
    const r = refusal(await connect(wsUrl(chain.url, '/ws/echo')).then(() => assert.fail('opened'), (e: unknown) => e));
    assert.equal(r.status, 503);
    a.close();
    b.close();
  });

  it('counts a handshake against gateway.max_websockets from its arrival: of six sent together, two open and four get 503', async () => {
    await waitFor(() => chain.gateway.websocketCount === 0);
    // The app answers /ws/slow after 300 ms: all six are with m2gw before the first 101.
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => connect(wsUrl(chain.url, '/ws/slow'))));
    const opened = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [refusal(r.reason).status] : []));
    for (const ws of opened) ws.close();
    assert.equal(opened.length, 2, `${opened.length} opened`);
    assert.deepEqual(refused, [503, 503, 503, 503]);
    await waitFor(() => chain.gateway.websocketCount === 0);
  });

  it('a handshake that does not open gives its slot back: refused by the app, app unreachable, client gone mid-handshake', async () => {
    await waitFor(() => chain.gateway.websocketCount === 0);
    // Three rounds against a limit of two: one slot kept by any of these ways would show below.
    for (let round = 0; round < 3; round++) {
      assert.equal(refusal(await connect(wsUrl(chain.url, '/ws/forbidden')).then(() => assert.fail('opened'), (e: unknown) => e)).status, 403);
      assert.equal(refusal(await connect(wsUrl(chain.url, '/down/ws')).then(() => assert.fail('opened'), (e: unknown) => e)).status, 502);
      const gone = new WebSocket(wsUrl(chain.url, '/ws/slow'));
      gone.on('error', () => undefined);
      await waitFor(() => chain.gateway.websocketCount === 1);
      gone.terminate();
      await waitFor(() => chain.gateway.websocketCount === 0);
    }
    const a = await connect(wsUrl(chain.url, '/ws/echo'));
    const b = await connect(wsUrl(chain.url, '/ws/echo'));
    a.close();
    b.close();
    await waitFor(() => chain.gateway.websocketCount === 0);
  });

  it('closes with 1001 when the client does not answer pings', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/echo'), { autoPong: false });
    const closed = closeOf(ws);
    assert.equal((await closed).code, 1001);
  });

  it('keeps a silent client past Mongrel2 limits.min_ping (pings + ctl keep-alive); without them Mongrel2 kills it', async () => {
    const pinged = await connect(wsUrl(chain.url, '/ws/echo'));
    const quiet = await connect(wsUrl(chain.url, '/quiet/ws/echo'));
    let pings = 0;
    pinged.on('ping', () => pings++);
    let quietClosed = false;
    quiet.on('close', () => (quietClosed = true));
    await new Promise((r) => setTimeout(r, 8_000));
    assert.ok(pings >= 5, `${pings} pings`);
    assert.equal(pinged.readyState, WebSocket.OPEN);
    assert.ok(quietClosed, 'Mongrel2 killed the connection m2gw did not ping (the test can fail)');
    pinged.send('still here');
    assert.equal((await nextMessage(pinged)).data.toString(), 'still here');
    pinged.close();
  });

});
