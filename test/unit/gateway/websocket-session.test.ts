/**
 * WebSocketSession against its promises (websocket-session.ts): the client half is a real
 * ClientConnection whose Mongrel2 replies are recorded, the upstream half a real loopback TCP
 * socket whose other end plays the app. What reaches the client is decoded as server frames,
 * what reaches the app as masked client frames. End to end through Mongrel2:
 * test/integration/websocket.test.ts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { M2gwError } from '../../../src/errors.js';
import { ClientConnection, HIGH_WATER, type FlushScheduler } from '../../../src/gateway/client-connection.js';
import { WebSocketSession, type WebSocketLimits, type WebSocketReport } from '../../../src/gateway/websocket-session.js';
import { parseReply } from '../../../src/mongrel2/reply.js';
import { RequestAbort, type ResponseController } from '../../../src/upstream/upstream.js';
import { CLOSE_CODE, FrameDecoder, OPCODE, acceptKey, encodeClosePayload, encodeFrame, encodeFrameHead, parseClosePayload, type FrameHandler, type FrameHead } from '../../../src/websocket/frame.js';
import { socketPair } from '../../harness/socket-pair.js';

const CLIENT_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const LIMITS: WebSocketLimits = { pingIntervalMs: 60_000, maxMessageBytes: 1024, idleTimeoutMs: 60_000 };
const NO_CTL: ResponseController = { pause: () => undefined, resume: () => undefined, abort: () => undefined } as unknown as ResponseController;


interface Frame {
  opcode: number;
  payload: Buffer;
}

function frameCollector(frames: Frame[]): FrameHandler {
  let parts: Buffer[] = [];
  let opcode = 0;
  return {
    onDataStart(h: FrameHead): void {
      parts = [];
      opcode = h.opcode;
    },
    onDataPayload: (c) => void parts.push(Buffer.from(c)),
    onDataEnd: () => void frames.push({ opcode, payload: Buffer.concat(parts) }),
    onControl: (op, payload) => void frames.push({ opcode: op, payload: Buffer.from(payload) }),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A session with its client half recorded and (after open()) its upstream half connected to an app socket. */
function setup(limits: WebSocketLimits = LIMITS) {
  const replies: Buffer[] = [];
  const sched: FlushScheduler = { schedule: (c) => void setImmediate(() => c.flush()) };
  const conn = new ClientConnection('0:7', '7', { send: (f) => void replies.push(f) }, 'uuid-1', sched);
  conn.keepAliveMs = 0;
  const reports: WebSocketReport[] = [];
  let opened = 0;
  const abort = new RequestAbort();
  const session = new WebSocketSession({
    key: '0:7',
    conn,
    requestId: 'req-1',
    uri: '/ws',
    upstreamName: 'app',
    clientKey: CLIENT_KEY,
    limits,
    abort,
    hooks: { onOpened: () => void opened++, onMessage: () => undefined, onEnded: (_s, r) => void reports.push(r) },
  });
  const appFrames: Frame[] = [];
  const appDecoder = new FrameDecoder(frameCollector(appFrames), { masking: 'required', maxMessageBytes: 1 << 20 });
  let app: net.Socket | null = null;
  let appEnded = false;

  /** Bytes sent to the client (reply payloads, in order), the close messages, the ctl messages. */
  const client = () => {
    const parsed = replies.map((r) => parseReply(r));
    const data = Buffer.concat(parsed.filter((p) => !p.extended).map((p) => p.payload));
    const closes = parsed.filter((p) => !p.extended && p.payload.length === 0).length;
    const ctl = parsed.filter((p) => p.extended).map((p) => p.payload.toString('latin1'));
    const headEnd = data.indexOf('\r\n\r\n');
    const head = headEnd >= 0 ? data.subarray(0, headEnd + 4).toString('latin1') : data.toString('latin1');
    const frames: Frame[] = [];
    if (headEnd >= 0 && head.startsWith('HTTP/1.1 101')) {
      new FrameDecoder(frameCollector(frames), { masking: 'forbidden', maxMessageBytes: 1 << 20 }).push(data.subarray(headEnd + 4));
    }
    return { head, frames, closes, ctl };
  };

  return {
    conn,
    session,
    reports,
    abort,
    opened: () => opened,
    appFrames,
    appEnded: () => appEnded,
    app: () => app!,
    client,
    /** The upstream answers the upgrade with a valid 101 and hands over its socket. */
    async open(accept = acceptKey(CLIENT_KEY)): Promise<void> {
      const pair = await socketPair();
      app = pair.app;
      app.on('data', (c: Buffer) => appDecoder.push(c));
      app.on('end', () => (appEnded = true));
      app.on('error', () => undefined);
      session.onResponseUpgrade(101, [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Accept', accept]], pair.ours);
    },
  };
}

describe('WebSocketSession', () => {
  it('a refused handshake is an ordinary HTTP answer, then the connection closes; one report, never opened', async () => {
    const t = setup();
    t.session.refuse(new M2gwError('M2GW_NO_ROUTE', 'no route for /ws', 'route'));
    await until('the answer', () => t.client().closes === 1);
    assert.match(t.client().head, /^HTTP\/1\.1 404 /);
    assert.equal(t.reports.length, 1);
    assert.equal(t.reports[0]!.status, 404);
    assert.equal(t.reports[0]!.closeCode, null);
    assert.equal(t.opened(), 0);
    t.session.clientGone();
    assert.equal(t.reports.length, 1, 'reported once');
  });

  it('an upgrade with a wrong Sec-WebSocket-Accept is a 502 and the upstream socket is destroyed', async () => {
    const t = setup();
    await t.open('bm90IHRoZSByaWdodCBrZXk=');
    await until('the 502', () => t.client().closes === 1);
    assert.match(t.client().head, /^HTTP\/1\.1 502 /);
    assert.equal(t.reports[0]!.error?.code, 'M2GW_UPSTREAM_PROTOCOL');
    await until('the app sees its socket end', () => t.appEnded());
    assert.equal(t.opened(), 0);
  });

  it('open: the client gets our 101 for its key; messages cross both ways, masked toward the app, unmasked toward the client', async () => {
    const t = setup();
    await t.open();
    assert.equal(t.opened(), 1);
    assert.ok(t.session.isOpen);
    t.session.onClientMessage(0x80 | OPCODE.TEXT, Buffer.from('hello app'));
    await until('the app gets the message', () => t.appFrames.length === 1);
    assert.deepEqual(t.appFrames[0], { opcode: OPCODE.TEXT, payload: Buffer.from('hello app') });
    t.app().write(encodeFrame(OPCODE.BINARY, Buffer.from([1, 2, 3])));
    await until('the client gets the reply', () => t.client().frames.length === 1);
    const c = t.client();
    assert.match(c.head, /^HTTP\/1\.1 101 /);
    assert.match(c.head, new RegExp(`\r\nSec-WebSocket-Accept: ${acceptKey(CLIENT_KEY).replace(/[+/=]/g, (x) => '\\' + x)}\r\n`));
    assert.deepEqual(c.frames[0], { opcode: OPCODE.BINARY, payload: Buffer.from([1, 2, 3]) });
    t.session.closeBoth(CLOSE_CODE.GOING_AWAY, 'test over');
  });

  it("the client's close reaches the app with its code and reason, is echoed to the client, and ends the connection", async () => {
    const t = setup();
    await t.open();
    t.session.onClientMessage(0x80 | OPCODE.CLOSE, encodeClosePayload(1000, 'bye'));
    await until('the app gets the close', () => t.appFrames.some((f) => f.opcode === OPCODE.CLOSE));
    assert.deepEqual(parseClosePayload(t.appFrames.find((f) => f.opcode === OPCODE.CLOSE)!.payload), { code: 1000, reason: 'bye' });
    await until('the close message', () => t.client().closes === 1);
    const echo = t.client().frames.find((f) => f.opcode === OPCODE.CLOSE)!;
    assert.deepEqual(parseClosePayload(echo.payload), { code: 1000, reason: 'bye' });
    assert.equal(t.reports.length, 1);
    assert.equal(t.reports[0]!.closeCode, 1000);
    assert.equal(t.reports[0]!.closedBy, 'client');
    assert.equal(t.reports[0]!.status, 101);
  });

  it("the app's close reaches the client, the app's closing handshake is answered", async () => {
    const t = setup();
    await t.open();
    t.app().write(encodeFrame(OPCODE.CLOSE, encodeClosePayload(1001, 'restarting')));
    await until('the close message', () => t.client().closes === 1);
    assert.deepEqual(parseClosePayload(t.client().frames.find((f) => f.opcode === OPCODE.CLOSE)!.payload), { code: 1001, reason: 'restarting' });
    await until('the app gets its close answered', () => t.appFrames.some((f) => f.opcode === OPCODE.CLOSE));
    assert.equal(t.reports[0]!.closedBy, 'upstream');
    assert.equal(t.reports[0]!.closeCode, 1001);
  });

  it('an app that drops without a close frame: the client gets 1011, the report says 1006 and M2GW_UPSTREAM_RESET', async () => {
    const t = setup();
    await t.open();
    t.app().destroy();
    await until('the close message', () => t.client().closes === 1);
    assert.equal(parseClosePayload(t.client().frames.find((f) => f.opcode === OPCODE.CLOSE)!.payload).code, CLOSE_CODE.INTERNAL_ERROR);
    assert.equal(t.reports[0]!.closeCode, CLOSE_CODE.ABNORMAL);
    assert.equal(t.reports[0]!.error?.code, 'M2GW_UPSTREAM_RESET');
  });

  it('a client message over max_message is closed with 1009 on both sides', async () => {
    const t = setup();
    await t.open();
    t.session.onClientMessage(0x80 | OPCODE.BINARY, Buffer.alloc(LIMITS.maxMessageBytes + 1));
    await until('the close message', () => t.client().closes === 1);
    assert.equal(parseClosePayload(t.client().frames.find((f) => f.opcode === OPCODE.CLOSE)!.payload).code, CLOSE_CODE.MESSAGE_TOO_BIG);
    await until('the app gets the close', () => t.appFrames.some((f) => f.opcode === OPCODE.CLOSE));
    assert.equal(parseClosePayload(t.appFrames.find((f) => f.opcode === OPCODE.CLOSE)!.payload).code, CLOSE_CODE.MESSAGE_TOO_BIG);
    assert.equal(t.appFrames.filter((f) => f.opcode === OPCODE.BINARY).length, 0, 'the message itself never reached the app');
    assert.equal(t.reports[0]!.closedBy, 'm2gw');
  });

  it('a silent client is pinged; its pong is swallowed, a pong of its own is forwarded; an unanswered ping closes with 1001', async () => {
    const t = setup({ ...LIMITS, pingIntervalMs: 120 });
    await t.open();
    await until('a ping to the client', () => t.client().frames.some((f) => f.opcode === OPCODE.PING), 3000);
    const ping = t.client().frames.find((f) => f.opcode === OPCODE.PING)!;
    assert.match(ping.payload.toString('latin1'), /^m2gw-ping:/);
    t.session.onClientMessage(0x80 | OPCODE.PONG, ping.payload);
    t.session.onClientMessage(0x80 | OPCODE.PONG, Buffer.from('unsolicited'));
    await until('the unsolicited pong at the app', () => t.appFrames.some((f) => f.opcode === OPCODE.PONG));
    assert.deepEqual(
      t.appFrames.filter((f) => f.opcode === OPCODE.PONG).map((f) => f.payload.toString()),
      ['unsolicited'],
      "our ping's pong is not the app's business",
    );
    assert.ok(t.client().ctl.some((c) => c.includes('keep-alive')), 'Mongrel2 got a keep-alive ctl too');
    // Now stay silent through the next ping: no pong within the interval closes the socket.
    await until('the no-pong close', () => t.reports.length === 1, 3000);
    assert.equal(t.reports[0]!.closeCode, CLOSE_CODE.GOING_AWAY);
    assert.equal(t.reports[0]!.closedBy, 'm2gw');
  });

  it('a ping that falls due while a relayed frame is half sent waits for its end: the frame arrives intact, then the ping', async () => {
    const t = setup({ ...LIMITS, pingIntervalMs: 200 });
    await t.open();
    const payload = Buffer.alloc(1000, 0x61);
    t.app().write(Buffer.concat([encodeFrameHead(true, OPCODE.BINARY, payload.length), payload.subarray(0, 10)]));
    // Two ping intervals with the client silent: a ping fell due mid-frame, and a pong clock
    // started then would already have closed the WebSocket.
    await sleep(450);
    assert.equal(t.reports.length, 0, 'still open: the client could not have answered a ping it never got');
    t.app().write(payload.subarray(10));
    await until('the frame, then the ping', () => t.client().frames.length >= 2, 3000);
    const frames = t.client().frames;
    assert.deepEqual(frames[0], { opcode: OPCODE.BINARY, payload });
    assert.equal(frames[1]!.opcode, OPCODE.PING);
    assert.match(frames[1]!.payload.toString('latin1'), /^m2gw-ping:/);
    t.session.onClientMessage(0x80 | OPCODE.PONG, frames[1]!.payload);
    assert.equal(t.reports.length, 0);
    t.session.closeBoth(CLOSE_CODE.GOING_AWAY, 'test over');
  });

  it("pongs toward a client that reads nothing pause the app like data does; nothing is lost once it reads", async () => {
    const t = setup();
    t.conn.resetCredits(64 * 1024); // flow control, and the client returns no credits
    await t.open();
    // What a client that pings and never reads gets: the app's automatic pongs, ~2.5 MB of them.
    const count = 20_000;
    const pong = encodeFrame(OPCODE.PONG, Buffer.alloc(125, 0x6f));
    t.app().write(Buffer.concat(Array.from({ length: count }, () => pong)));
    await sleep(300);
    // One socket read may be decoded before the pause takes effect.
    assert.ok(t.conn.queuedBytes < HIGH_WATER + 128 * 1024, `${t.conn.queuedBytes} bytes queued for the client`);
    assert.equal(t.reports.length, 0);
    t.conn.resetCredits(1 << 30);
    t.conn.credit(0);
    await until('every pong at the client', () => t.client().frames.length === count, 10_000);
    assert.ok(t.client().frames.every((f) => f.opcode === OPCODE.PONG));
    t.session.closeBoth(CLOSE_CODE.GOING_AWAY, 'test over');
  });

  it('pings toward an app that does not read: the WebSocket closes with 1008 instead of queueing without bound', async () => {
    const t = setup();
    await t.open();
    t.app().pause();
    const payload = Buffer.alloc(125, 0x70);
    // The kernel's socket buffers take a few MiB first; then the queue reaches its bound.
    for (let i = 0; i < 1_000_000 && t.reports.length === 0; i++) t.session.onClientMessage(0x80 | OPCODE.PING, payload);
    assert.equal(t.reports.length, 1);
    assert.equal(t.reports[0]!.closeCode, CLOSE_CODE.POLICY_VIOLATION);
    assert.equal(t.reports[0]!.closedBy, 'm2gw');
    await until('the close message', () => t.client().closes === 1);
    assert.equal(parseClosePayload(t.client().frames.find((f) => f.opcode === OPCODE.CLOSE)!.payload).code, CLOSE_CODE.POLICY_VIOLATION);
  });

  it('no message either way for idle_timeout closes both sides with 1001', async () => {
    const t = setup({ ...LIMITS, idleTimeoutMs: 150 });
    await t.open();
    await until('the idle close', () => t.reports.length === 1, 3000);
    assert.equal(t.reports[0]!.closeCode, CLOSE_CODE.GOING_AWAY);
    await until('the app gets the close', () => t.appFrames.some((f) => f.opcode === OPCODE.CLOSE));
    assert.equal(parseClosePayload(t.appFrames.find((f) => f.opcode === OPCODE.CLOSE)!.payload).reason, 'idle timeout');
  });

  it('the client gone (Mongrel2 disconnect): the app gets 1001 and its socket ends; reported as 1006 by the client, once', async () => {
    const t = setup();
    await t.open();
    t.session.clientGone();
    await until('the app gets the close', () => t.appFrames.some((f) => f.opcode === OPCODE.CLOSE));
    assert.equal(parseClosePayload(t.appFrames.find((f) => f.opcode === OPCODE.CLOSE)!.payload).code, CLOSE_CODE.GOING_AWAY);
    await until('the app socket ends', () => t.appEnded());
    assert.equal(t.reports.length, 1);
    assert.equal(t.reports[0]!.closeCode, CLOSE_CODE.ABNORMAL);
    assert.equal(t.reports[0]!.closedBy, 'client');
    t.session.clientGone();
    t.session.closeBoth(1000, 'again');
    assert.equal(t.reports.length, 1, 'onEnded exactly once');
  });

  it('a 101 for a connection already gone ends the handshake: the app socket is cut, one report (its max_websockets slot is given back)', async () => {
    const t = setup();
    t.conn.abandon(); // gone without a disconnect reaching the session
    await t.open();
    assert.equal(t.opened(), 0);
    assert.equal(t.reports.length, 1);
    assert.equal(t.reports[0]!.error?.code, 'M2GW_CLIENT_GONE');
    await until('the app sees its socket end', () => t.appEnded());
  });

  it('a client gone during the handshake aborts the upstream request', async () => {
    const t = setup();
    let aborted: unknown = null;
    t.abort.addEventListener('abort', () => (aborted = t.abort.reason));
    t.session.clientGone();
    assert.ok(aborted instanceof M2gwError);
    assert.equal((aborted as M2gwError).code, 'M2GW_CLIENT_GONE');
    assert.equal(t.reports.length, 1);
    // A late upstream answer changes nothing.
    t.session.onResponseStart(NO_CTL, 101, []);
    assert.equal(t.reports.length, 1);
  });
});
