/**
 * A client that stops reading, through a real Mongrel2 with download.flow_control: its
 * response pauses the upstream (m2gw's queue is full, no credits come back), and without a
 * bound that paused upstream connection (a pool slot) would be held forever, because m2gw's
 * keep-alive pings kept Mongrel2 from ever dropping the client. `send_timeout` is that bound;
 * a client that reads slowly but steadily must never hit it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { ServerResponse } from 'node:http';
import { oneAppToml, startChain, type Chain, type LogRecord } from './gateway-support.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import * as zmq from 'zeromq';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';
import { limitHitCount } from '../../src/metrics/limit-hits.js';

const SEND_TIMEOUT_MS = 1_000;
const CHUNK = 64 * 1024;

/** What the upstream saw of each response: bytes written, and whether it ended or was cut. */
interface Served {
  written: number;
  outcome: 'open' | 'finished' | 'cut';
}

/**
 * /body/<tag>/<bytes>: that many bytes, written with backpressure, so a client that does not
 * read really stops the upstream. What each response came to is recorded under its tag.
 */
function bodyUpstream(served: Map<string, Served>): Promise<HttpUpstreamInstance> {
  return startHttpUpstream((req, res: ServerResponse) => {
    const [, , tag = '', size = '0'] = (req.url ?? '').split('/');
    const total = Number(size);
    const s: Served = { written: 0, outcome: 'open' };
    served.set(tag, s);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    res.on('close', () => {
      if (s.outcome === 'open') s.outcome = res.writableFinished ? 'finished' : 'cut';
    });
    const pump = (): void => {
      while (s.written < total && !res.destroyed) {
        const n = Math.min(CHUNK, total - s.written);
        s.written += n;
        if (!res.write(Buffer.alloc(n, 0x61))) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  });
}

describe('a client that stops reading (download.flow_control, send_timeout = 1s)', () => {
  let up: HttpUpstreamInstance;
  let chain: Chain;
  const served = new Map<string, Served>();

  before(async () => {
    up = await bodyUpstream(served);
    chain = await startChain({
      toml: oneAppToml(up.url, { handler: `keepalive = "200ms"\nsend_timeout = "${SEND_TIMEOUT_MS}ms"`, upstream: 'idle_timeout = "60s"' }),
    });
  });

  after(async () => {
    await chain?.stop();
    await up?.close();
  });

  const accessLine = (path: string): Record<string, unknown> | undefined =>
    chain.logs.find((r) => r['type'] === 'access' && r['path'] === path) as Record<string, unknown> | undefined;

  test('the client is dropped after send_timeout, its upstream response is cut (the slot is freed), the access line says client gone', async () => {
    const hitsBefore = limitHitCount('send_timeout');
    const port = Number(new URL(chain.url).port);
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => undefined);
    let closed = false;
    sock.on('close', () => (closed = true));
    await new Promise<void>((resolve) => sock.once('connect', resolve));
    // Never read: the kernel's buffers fill, Mongrel2 stops returning credits.
    sock.pause();
    sock.write('GET /body/stalled/1073741824 HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await waitFor(() => served.get('stalled')?.outcome === 'cut', 20_000, 50, 'the upstream response to the stalled client was cut');
    const s = served.get('stalled')!;
    assert.ok(s.written < 256 * 1024 * 1024, `the upstream was paused, not drained: ${s.written} bytes written`);
    assert.equal(limitHitCount('send_timeout'), hitsBefore + 1, 'one send_timeout hit');
    await waitFor(() => accessLine('/body/stalled/1073741824') !== undefined, 5_000, 20, 'the access line');
    assert.equal(accessLine('/body/stalled/1073741824')!['error'], 'M2GW_CLIENT_GONE');
    const warned = chain.logs.some((r) => String(r['message']).includes('send_timeout'));
    assert.ok(warned, 'a warning names send_timeout');
    // Mongrel2 got the cancel: the client's connection ends once it reads what was buffered.
    sock.resume();
    await waitFor(() => closed, 15_000, 20, 'the client connection closed by Mongrel2');
  });

  test('a slow client that keeps reading is never dropped: 8 MiB at ~2.5 MB/s arrive whole', async () => {
    const hitsBefore = limitHitCount('send_timeout');
    const total = 8 * 1024 * 1024;
    const port = Number(new URL(chain.url).port);
    const sock = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.write(`GET /body/slow/${total} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    // Each read (up to 64 KiB) is followed by 25 ms of not reading: slower than everything
    // else in the chain (at most ~2.6 MB/s), but never silent for long.
    let received = 0;
    await new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => {
        received += d.length;
        sock.pause();
        setTimeout(() => sock.resume(), 25);
      });
      sock.on('end', resolve);
      sock.on('close', resolve);
    });
    sock.destroy();
    assert.ok(received > total, `the whole body arrived: ${received} bytes for ${total} plus the head`);
    assert.equal(served.get('slow')?.outcome, 'finished');
    assert.equal(limitHitCount('send_timeout'), hitsBefore, 'no send_timeout for a client that reads');
    assert.equal(accessLine(`/body/slow/${total}`)?.['status'], 200);
  });
});

/**
 * Mongrel2 does not always say a client left. When its write to a reset client fails, its
 * deliver task exits first, and the connection task then sends no disconnect (connection.c
 * sends one only while the deliver task runs): a rare race (it failed one CI run of
 * hostile-upstream.test.ts). A relay between Mongrel2's PUSH and m2gw's
 * PULL makes that race certain by dropping each connection's first disconnect; the client's
 * upstream must still be let go long before send_timeout, by the probe m2gw sends while the
 * client owes credits (Mongrel2 answers it with a disconnect for a connection it lost).
 */
describe('a client that leaves while it owes credits, and Mongrel2 loses its disconnect (send_timeout = 60s)', () => {
  let up: HttpUpstreamInstance;
  let chain: Chain;
  let pull: zmq.Pull | undefined;
  let push: zmq.Push | undefined;
  const served = new Map<string, Served>();
  const dropped = new Set<string>();

  before(async () => {
    up = await bodyUpstream(served);
    chain = await startChain({
      pullFrom: async (mongrel2SendSpec) => {
        const relayed = `tcp://127.0.0.1:${await freePort()}`;
        pull = new zmq.Pull();
        push = new zmq.Push();
        pull.connect(mongrel2SendSpec);
        await push.bind(relayed);
        void (async () => {
          for await (const [msg] of pull!) {
            const text = msg!.toString('latin1');
            if (text.includes('"type":"disconnect"')) {
              const connId = text.split(' ')[1]!;
              if (!dropped.has(connId)) {
                dropped.add(connId);
                continue;
              }
            }
            await push!.send(msg!);
          }
        })().catch(() => undefined);
        return relayed;
      },
      toml: oneAppToml(up.url, { handler: 'keepalive = "300ms"\nsend_timeout = "60s"', upstream: 'idle_timeout = "120s"' }),
    });
  });

  after(async () => {
    await chain?.stop();
    pull?.close();
    push?.close();
    await up?.close();
  });

  test('its upstream response is cut within a few keepalives, and its access line says client gone', async () => {
    const port = Number(new URL(chain.url).port);
    const sock = net.connect(port, '127.0.0.1');
    sock.on('error', () => undefined);
    await new Promise<void>((resolve) => sock.once('connect', resolve));
    sock.write('GET /body/gone/1073741824 HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await new Promise<void>((resolve) => sock.once('data', () => resolve()));
    // Stop reading until the chain is stalled on it: the upstream stops writing.
    sock.pause();
    let last = -1;
    await waitFor(() => {
      const now = served.get('gone')?.written ?? 0;
      const still = now === last;
      last = now;
      return still;
    }, 20_000, 300, 'the upstream paused by the stalled client');
    assert.equal(served.get('gone')?.outcome, 'open');
    // Unread bytes in its buffer: the close is a reset, and Mongrel2's pending write fails.
    sock.destroy();
    await waitFor(() => served.get('gone')?.outcome === 'cut', 15_000, 20, 'the upstream response cut after the client left');
    assert.ok(dropped.size >= 1, 'the relay dropped a disconnect: the client was noticed only by the probe');
    const accessLine = (): LogRecord | undefined => chain.logs.find((r) => r['type'] === 'access' && r['path'] === '/body/gone/1073741824');
    await waitFor(() => accessLine() !== undefined, 5_000, 20, 'the access line');
    assert.equal(accessLine()!['error'], 'M2GW_CLIENT_GONE');
  });
});
