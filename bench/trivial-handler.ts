/**
 * The floor: a Mongrel2 handler that answers every request itself, without any
 * upstream, with a fixed Content-Length response. What m2gw adds on top of this is
 * the cost of being a gateway. It does what m2gw does on the Mongrel2 side and no more:
 * parses the JSON headers, batches every reply of one event-loop turn into one
 * multipart send, follows download credits when Mongrel2 grants them, and sends large
 * bodies in messages of `--chunk` bytes (m2gw coalesces to ≥128 KiB without flow
 * control; with it, messages are bounded by the credit window, as m2gw's are).
 *   …/hello → 14 bytes;  …/1m → 1 MiB;  anything else → 404.
 * Prints "ready" once Mongrel2 has subscribed.
 *
 * Usage: node dist/bench/trivial-handler.js --send-spec tcp://… --recv-spec tcp://… [--chunk 131072]
 */
import * as zmq from 'zeromq';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1]!;
  if (fallback === undefined) throw new Error(`missing ${name}`);
  return fallback;
}

const sendSpec = arg('--send-spec');
const recvSpec = arg('--recv-spec');
const CHUNK = Number(arg('--chunk', String(128 * 1024)));
/** Like m2gw: with credits, do not send slivers smaller than this unless it is the rest. */
const MIN_METERED = 8192;

const HELLO = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n', 'latin1');
const MIB_HEAD = Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n', 'latin1');
const MIB = Buffer.concat([MIB_HEAD, Buffer.alloc(1 << 20, 'x')]);
const NOT_FOUND = Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', 'latin1');

interface Conn {
  readonly sender: string;
  readonly id: string;
  /** Responses not yet fully sent, oldest first (pipelined requests are answered in order). */
  readonly pending: Buffer[];
  /**
   * Credit window or null without flow control. Mongrel2 sends DOWNLOAD_CREDITS only with
   * a connection's first request, so the state lives until the disconnect message.
   */
  window: number | null;
  unacked: number;
}

const conns = new Map<string, Conn>();
const pub = new zmq.XPublisher({ noDrop: true, sendHighWaterMark: 10_000, linger: 0 });
const pull = new zmq.Pull({ linger: 0 });

let outbox: Buffer[] = [];
let sending = false;
let flushScheduled = false;

function reply(conn: Conn, payload: Buffer): void {
  const ids = conn.id;
  const prefix = Buffer.from(`${conn.sender} ${ids.length}:${ids}, `, 'latin1');
  outbox.push(Buffer.concat([prefix, payload]));
  if (!flushScheduled && !sending) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function flush(): void {
  flushScheduled = false;
  if (sending || outbox.length === 0) return;
  const frames = outbox;
  outbox = [];
  sending = true;
  pub.send(frames).then(
    () => {
      sending = false;
      if (outbox.length > 0) flush();
    },
    (err: unknown) => {
      process.stderr.write(`send failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}

/** Send as much of the connection's pending responses as its window allows. */
function pump(conn: Conn): void {
  while (conn.pending.length > 0) {
    const head = conn.pending[0]!;
    let size = Math.min(head.length, CHUNK);
    if (conn.window !== null) {
      const room = conn.window - conn.unacked;
      if (room <= 0 || (room < MIN_METERED && room < head.length)) return;
      size = Math.min(head.length, room);
      conn.unacked += size;
    }
    reply(conn, head.subarray(0, size));
    if (size === head.length) conn.pending.shift();
    else conn.pending[0] = head.subarray(size);
  }
}

function onMessage(msg: Buffer): void {
  const sp1 = msg.indexOf(32);
  const sp2 = msg.indexOf(32, sp1 + 1);
  const sp3 = msg.indexOf(32, sp2 + 1);
  const sender = msg.toString('latin1', 0, sp1);
  const id = msg.toString('latin1', sp1 + 1, sp2);
  const path = msg.toString('latin1', sp2 + 1, sp3);
  const colon = msg.indexOf(58, sp3 + 1);
  const hlen = Number(msg.toString('latin1', sp3 + 1, colon));
  const headers = JSON.parse(msg.toString('utf8', colon + 1, colon + 1 + hlen)) as Record<string, unknown>;
  const key = `${sender} ${id}`;
  const credits = typeof headers['DOWNLOAD_CREDITS'] === 'string' ? Number(headers['DOWNLOAD_CREDITS']) : null;

  if (path === '@*') {
    const bodyStart = colon + 1 + hlen + 1;
    const bcolon = msg.indexOf(58, bodyStart);
    const blen = Number(msg.toString('latin1', bodyStart, bcolon));
    const body = JSON.parse(msg.toString('utf8', bcolon + 1, bcolon + 1 + blen)) as { type?: string };
    const conn = conns.get(key);
    if (!conn) return;
    if (body.type === 'disconnect') conns.delete(key);
    else if (body.type === 'credits' && credits !== null) {
      conn.unacked = Math.max(0, conn.unacked - credits);
      pump(conn);
    }
    return;
  }

  let conn = conns.get(key);
  // DOWNLOAD_CREDITS comes only with a connection's first request: a new connection that
  // reuses the id of one whose disconnect we missed starts from a clean window.
  if (!conn || credits !== null) {
    conn = { sender, id, pending: [], window: credits, unacked: 0 };
    conns.set(key, conn);
  }
  const leaf = path.slice(path.lastIndexOf('/') + 1);
  conn.pending.push(leaf === 'hello' ? HELLO : leaf === '1m' ? MIB : NOT_FOUND);
  pump(conn);
}

async function main(): Promise<void> {
  pub.connect(recvSpec);
  // Pull only once Mongrel2's SUB has subscribed: a PUB drops replies before that.
  for (;;) {
    const [sub] = await pub.receive();
    if (sub && sub[0] === 1) break;
  }
  void (async () => {
    try {
      for (;;) await pub.receive();
    } catch {
      // closed
    }
  })();
  pull.connect(sendSpec);
  process.stdout.write('ready\n');
  for await (const [msg] of pull) {
    if (msg) onMessage(msg);
  }
}

process.on('SIGTERM', () => {
  pull.close();
  pub.close();
  process.exit(0);
});
main().catch((err: unknown) => {
  process.stderr.write(`trivial handler: ${String(err)}\n`);
  process.exit(1);
});
