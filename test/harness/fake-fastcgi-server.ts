/**
 * A scriptable FastCGI server for pool/connection tests: it decodes requests (with the codec's
 * decoder, request-side records) and hands each to a test handler that answers, stalls, or
 * breaks the connection as the test needs. No side effects on import.
 */
import net from 'node:net';
import { RecordDecoder } from '../../src/upstream/fastcgi/record-decoder.js';
import { FLAG_KEEP_CONN, RecordType, decodeNameValuePairs, encodeEndRequest, encodeRecord, STDIN_CHUNK } from '../../src/upstream/fastcgi/records.js';

export interface FakeConn {
  readonly index: number;
  readonly socket: net.Socket;
  /** Records as received: "B1" begin id 1, "P1" params end, "S1:n" stdin bytes, "S1" stdin end. */
  readonly log: string[];
  requests: number;
  closed: boolean;
  readonly closedPromise: Promise<void>;
}

export interface FakeRequest {
  readonly id: number;
  readonly keepConn: boolean;
  readonly params: Map<string, string>;
  /** The body; complete when the handler runs at 'stdin' (the default). */
  readonly stdin: Buffer[];
  readonly conn: FakeConn;
  /** Its place on the connection: 1 for the first request. */
  readonly seq: number;
}

export interface FakeResponder {
  stdout(data: string | Buffer): void;
  stderr(data: string | Buffer): void;
  end(appStatus?: number, protocolStatus?: number): void;
  /** Headers + body + END_REQUEST in one go. */
  reply(head: string, body?: string | Buffer): void;
  /** Close the connection the way PHP-FPM does (FIN). */
  close(): void;
  /** Reset the connection. */
  destroy(): void;
  raw(bytes: Buffer): void;
}

export type FakeHandler = (req: FakeRequest, res: FakeResponder) => void;

export interface FakeServer {
  readonly address: string;
  readonly port: number;
  readonly conns: FakeConn[];
  readonly requests: FakeRequest[];
  setHandler(h: FakeHandler): void;
  close(): Promise<void>;
}

export interface FakeOptions {
  /** When the handler runs: once the params are in, or once the whole body is (default). */
  runAt?: 'params' | 'stdin';
  port?: number;
}

function toBuf(d: string | Buffer): Buffer {
  return typeof d === 'string' ? Buffer.from(d, 'latin1') : d;
}

export async function startFakeFastcgi(handler: FakeHandler, opts: FakeOptions = {}): Promise<FakeServer> {
  let current = handler;
  const conns: FakeConn[] = [];
  const requests: FakeRequest[] = [];
  const server = net.createServer((socket) => {
    let resolveClosed!: () => void;
    const conn: FakeConn = {
      index: conns.length,
      socket,
      log: [],
      requests: 0,
      closed: false,
      closedPromise: new Promise<void>((r) => (resolveClosed = r)),
    };
    conns.push(conn);
    socket.on('close', () => {
      conn.closed = true;
      resolveClosed();
    });
    socket.on('error', () => {});
    const pending = new Map<number, { keepConn: boolean; params: Array<[string, string]>; stdin: Buffer[]; req: FakeRequest | null }>();
    const responder = (id: number): FakeResponder => {
      const write = (b: Buffer): void => {
        if (!socket.destroyed) socket.write(b);
      };
      const stream = (type: number, data: Buffer): void => {
        for (let o = 0; o < data.length; o += STDIN_CHUNK) write(encodeRecord(type, id, data.subarray(o, o + STDIN_CHUNK)));
      };
      return {
        stdout: (d) => stream(RecordType.STDOUT, toBuf(d)),
        stderr: (d) => stream(RecordType.STDERR, toBuf(d)),
        end: (app = 0, proto = 0) => {
          write(encodeRecord(RecordType.STDOUT, id));
          write(encodeEndRequest(id, app, proto));
        },
        reply(head, body = '') {
          this.stdout(Buffer.concat([toBuf(head), Buffer.from('\r\n\r\n'), toBuf(body)]));
          this.end();
        },
        close: () => socket.end(),
        destroy: () => socket.destroy(),
        raw: write,
      };
    };
    const run = (id: number): void => {
      const p = pending.get(id)!;
      if (p.req !== null) return;
      conn.requests++;
      const req: FakeRequest = { id, keepConn: p.keepConn, params: new Map(p.params), stdin: p.stdin, conn, seq: conn.requests };
      p.req = req;
      requests.push(req);
      current(req, responder(id));
    };
    const decoder = new RecordDecoder({
      onStdout() {},
      onStderr() {},
      onEndRequest() {},
      onRecord(type, id, content) {
        switch (type) {
          case RecordType.BEGIN_REQUEST:
            conn.log.push(`B${id}`);
            pending.set(id, { keepConn: (content[2]! & FLAG_KEEP_CONN) !== 0, params: [], stdin: [], req: null });
            return;
          case RecordType.PARAMS:
            if (content.length > 0) {
              pending.get(id)!.params.push(...decodeNameValuePairs(content));
            } else {
              conn.log.push(`P${id}`);
              if (opts.runAt === 'params') run(id);
            }
            return;
          case RecordType.STDIN:
            if (content.length > 0) {
              conn.log.push(`S${id}:${content.length}`);
              pending.get(id)!.stdin.push(content);
            } else {
              conn.log.push(`S${id}`);
              run(id);
            }
            return;
          default:
            conn.log.push(`T${type}:${id}`);
        }
      },
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    conns,
    requests,
    setHandler: (h) => {
      current = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The usual happy answer. */
export const helloHandler: FakeHandler = (req, res) => {
  res.reply('Content-Type: text/plain', `hello ${req.params.get('REQUEST_URI') ?? ''}`);
};
