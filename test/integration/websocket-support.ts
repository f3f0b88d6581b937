/**
 * Pieces for the WebSocket end-to-end tests: a real `ws` server as the upstream app
 * (echo, plus a few behaviours tests ask for by path) and helpers around the `ws` client.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
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
 * `/ws/info` sends one JSON text message describing the handshake.
 */
export async function startWsUpstream(): Promise<WsUpstream> {
  const handshakes: SeenHandshake[] = [];
  const sockets: WebSocket[] = [];
  const closes: Array<Promise<{ code: number; reason: string }>> = [];
  const server = http.createServer((_req, res) => {
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
  });
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

/** Opens a ws client; resolves on open, rejects on an HTTP refusal (with its status). */
export function connect(url: string, opts: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<WebSocket> {
  const { protocols, ...rest } = opts;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols ?? [], { perMessageDeflate: false, ...rest });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.once('error', reject);
  });
}

/** The next message on a client. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: WebSocket.RawData, binary: boolean): void => {
      ws.off('close', onClose);
      resolve({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), binary });
    };
    const onClose = (code: number): void => {
      ws.off('message', onMessage);
      reject(new Error(`closed (${code}) before a message`));
    };
    ws.once('message', onMessage);
    ws.once('close', onClose);
  });
}

export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

export function wsUrl(httpUrl: string, path: string): string {
  return httpUrl.replace(/^http/, 'ws') + path;
}
