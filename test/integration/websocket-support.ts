/**
 * Pieces for the WebSocket end-to-end tests: a real `ws` server as the upstream app
 * (echo, plus a few behaviours tests ask for by path) and helpers around the `ws` client.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';

export interface SeenHandshake {
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

export interface WsUpstream {
  readonly port: number;
  readonly url: string;
  readonly handshakes: SeenHandshake[];
  /** Server-side sockets, newest last. */
  readonly sockets: WebSocket[];
  /** Resolves when the server side of the n-th socket (0-based) closed: code and reason it saw. */
  closed(n: number): Promise<{ code: number; reason: string }>;
  stop(): Promise<void>;
}

/**
 * Paths: `/ws/echo` echoes every message (text stays text, binary binary);
 * `/ws/forbidden` answers the upgrade with 403; `/ws/close-me` closes with 4000 "bye from app"
 * on the first message; `/ws/drop` destroys the socket on the first message;
 * `/ws/info` sends one JSON text message describing the handshake; `/ws/slow…` answers the
 * upgrade after 300 ms (handshakes sent together all reach m2gw before the first 101), then echoes.
 */
export async function startWsUpstream(): Promise<WsUpstream> {
  const handshakes: SeenHandshake[] = [];
  const sockets: WebSocket[] = [];
  const closes: Array<Promise<{ code: number; reason: string }>> = [];
  const server = http.createServer((req, res) => {
    // A plain request answered late: a handshake pipelined behind it must wait its turn.
    if (req.url?.startsWith('/http/slow')) {
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 12 }).end('slow answer\n'), 300);
      return;
    }
    res.writeHead(426, { 'content-type': 'text/plain' }).end('upgrade required\n');
  });
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (protocols) => (protocols.has('chat.v2') ? 'chat.v2' : false),
  });
  server.on('upgrade', (req, socket, head) => {
    handshakes.push({ url: req.url ?? '', headers: req.headers });
    if (req.url?.startsWith('/ws/forbidden')) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nforbidden\n');
      return;
    }
    if (req.url?.startsWith('/ws/slow')) setTimeout(() => upgrade(req, socket, head), 300);
    else upgrade(req, socket, head);
  });
  const upgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (socket.destroyed) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws);
      closes.push(new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))));
      ws.on('error', () => undefined);
      const path = req.url ?? '';
      if (path.startsWith('/ws/info')) {
        ws.send(JSON.stringify({ url: req.url, protocol: ws.protocol, origin: req.headers.origin ?? null, cookie: req.headers.cookie ?? null, headers: req.headers }));
      }
      ws.on('message', (data, isBinary) => {
        if (path.startsWith('/ws/close-me')) return ws.close(4000, 'bye from app');
        if (path.startsWith('/ws/drop')) return ws.terminate();
        ws.send(data, { binary: isBinary });
      });
    });
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    handshakes,
    sockets,
    closed: async (n) => {
      for (let i = 0; i < 200 && closes[n] === undefined; i++) await new Promise((r) => setTimeout(r, 25));
      if (closes[n] === undefined) throw new Error(`no upstream socket #${n}`);
      return closes[n];
    },
    async stop() {
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Inbox {
  readonly messages: Array<{ data: Buffer; binary: boolean }>;
  waiter: (() => void) | null;
  closed: number | null;
}
/** Messages are collected from the moment the socket exists: the first can arrive in the same read as the 101. */
const inboxes = new WeakMap<WebSocket, Inbox>();

/** Opens a ws client; resolves on open, rejects on an HTTP refusal (with its status and body). */
export function connect(url: string, opts: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<WebSocket> {
  const { protocols, ...rest } = opts;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols ?? [], { perMessageDeflate: false, ...rest });
    const inbox: Inbox = { messages: [], waiter: null, closed: null };
    inboxes.set(ws, inbox);
    ws.on('message', (data: WebSocket.RawData, binary: boolean) => {
      inbox.messages.push({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), binary });
      inbox.waiter?.();
    });
    ws.on('close', (code: number) => {
      inbox.closed = code;
      inbox.waiter?.();
    });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.once('error', reject);
  });
}

/** The next message on a client opened with connect(). */
export async function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  const inbox = inboxes.get(ws);
  if (!inbox) throw new Error('not a connect() client');
  for (;;) {
    const m = inbox.messages.shift();
    if (m) return m;
    if (inbox.closed !== null) throw new Error(`closed (${inbox.closed}) before a message`);
    await new Promise<void>((r) => (inbox.waiter = r));
    inbox.waiter = null;
  }
}

export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/**
 * A handshake for `path` written byte for byte (a ws client removes dot-segments from its URL
 * before sending): resolves with the response head, or what came before the connection ended.
 */
export function rawHandshake(httpUrl: string, path: string): Promise<string> {
  const { hostname, port } = new URL(httpUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let got = '';
    const done = (): void => {
      socket.destroy();
      resolve(got.includes('\r\n\r\n') ? got.slice(0, got.indexOf('\r\n\r\n')) : got);
    };
    socket.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (got.includes('\r\n\r\n')) done();
    });
    socket.on('close', done);
    socket.on('error', reject);
    socket.setTimeout(10_000, done);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
}

export function wsUrl(httpUrl: string, path: string): string {
  return httpUrl.replace(/^http/, 'ws') + path;
}
