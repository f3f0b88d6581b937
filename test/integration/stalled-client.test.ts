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
import { startChain, type Chain } from './gateway-support.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { waitFor } from '../harness/wait.js';
import { limitHitCount } from '../../src/metrics/limit-hits.js';

const SEND_TIMEOUT_MS = 1_000;
const CHUNK = 64 * 1024;

/** What the upstream saw of each response: bytes written, and whether it ended or was cut. */
interface Served {
  written: number;
  outcome: 'open' | 'finished' | 'cut';
}

describe('a client that stops reading (download.flow_control, send_timeout = 1s)', () => {
  let up: HttpUpstreamInstance;
  let chain: Chain;
  const served = new Map<string, Served>();

  before(async () => {
    // /body/<tag>/<bytes>: that many bytes, written with backpressure, so a client that does
    // not read really stops the upstream.
    up = await startHttpUpstream((req, res: ServerResponse) => {
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
    chain = await startChain({
      toml: `
keepalive = "200ms"
send_timeout = "${SEND_TIMEOUT_MS}ms"
[upstream.app]
type = "http"
url = "${up.url}"
idle_timeout = "60s"
[[route]]
prefix = "/"
upstream = "app"
`,
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
