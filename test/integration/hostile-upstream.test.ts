/**
 * Issue 11, hostile upstreams, end to end through a real Mongrel2: PHP-FPM that breaks
 * response framing (real PHP scripts), an HTTP server that writes broken bytes (a raw socket:
 * node:http would refuse to), and a FastCGI server that lies about record lengths (a fake one:
 * the fault is what is being injected). For each, the attacker's client gets the right status,
 * never bytes that would desync a kept-alive connection, and an innocent client on the same
 * gateway keeps being answered.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { startChain, type Chain } from './gateway-support.js';
import { innocentClient, p99Bound, percentile, recordRow, rssMiB, underAttack, type InnocentClient } from './hostile-support.js';
import { startPhpFpm, type PhpFpm } from '../harness/php-fpm.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { rawRequest } from '../harness/http-client.js';
import { sleep, waitFor } from '../harness/wait.js';
import { startFakeFastcgi, type FakeServer } from '../harness/fake-fastcgi-server.js';
import { RecordType } from '../../src/upstream/fastcgi/records.js';
import { repoRoot } from '../unit/fixtures.js';

const DOCROOT = path.join(repoRoot, 'test/fixtures/php-hostile');
const SUITE = 'upstream';

/** A raw HTTP/1.1 server: each request path names what it writes back. */
function rawUpstream(behaviours: Record<string, (sock: net.Socket) => void>): Promise<{ port: number; sockets: Set<net.Socket>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let head = '';
    sock.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const target = head.slice(head.indexOf(' ') + 1, head.indexOf(' ', head.indexOf(' ') + 1));
      head = head.slice(end + 4);
      const behave = behaviours[target.replace(/\?.*/, '')];
      if (behave) behave(sock);
      else sock.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        sockets,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    ),
  );
}

const canned = (raw: string) => (sock: net.Socket): void => void sock.write(raw, 'latin1');
const statusOf = (b: Buffer): string => /^HTTP\/1\.1 (\d{3})/.exec(b.toString('latin1'))?.[1] ?? 'none';

describe('hostile upstreams through a real Mongrel2', () => {
  let fpm: PhpFpm;
  let raw: Awaited<ReturnType<typeof rawUpstream>>;
  let fake: FakeServer;
  let good: HttpUpstreamInstance;
  let chain: Chain;
  let innocent: InnocentClient;
  let baseline = 0;
  let endlessWrites = 0;

  before(async () => {
    fpm = await startPhpFpm({ maxChildren: 2, phpAdminValues: { output_buffering: '0' } });
    good = await startHttpUpstream();
    fake = await startFakeFastcgi((_req, res) => res.reply('Content-Type: text/plain', 'fine'));
    raw = await rawUpstream({
      '/crlf': canned('HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: x=1\r\nContent-Length: 2\r\n\r\nok'),
      '/nul': canned('HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\nok'),
      '/length-and-chunked': canned('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHELLO\r\n0\r\n\r\n'),
      '/negative-length': canned('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nHELLO'),
      '/huge-length': canned('HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nHELLO'),
      '/bad-status-line': canned('HTTP/1.1 2000 Fine\r\nContent-Length: 2\r\n\r\nok'),
      '/garbage-status-line': canned('SURPRISE\r\n\r\n'),
      '/headers-10000': (s) => {
        let h = 'HTTP/1.1 200 OK\r\n';
        for (let i = 0; i < 10_000; i++) h += `X-H${i}: v\r\n`;
        s.write(h + 'Content-Length: 2\r\n\r\nok');
      },
      '/connection-names-length': canned('HTTP/1.1 200 OK\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nHELLO'),
      '/switching': canned('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'),
      '/reset-mid-body': (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(1000));
        setTimeout(() => s.resetAndDestroy(), 50);
      },
      '/slow-drip': (s) => {
        s.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nx');
        const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write('x')), 1500);
        s.on('close', () => clearInterval(t));
      },
      '/endless': (s) => {
        s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        const chunk = '10000\r\n' + 'e'.repeat(0x10000) + '\r\n';
        // Every write counts, also the one that fills the socket's buffer (a chunk is larger
        // than a socket's high-water mark, so that may be every one).
        const pump = (): void => {
          while (!s.destroyed) {
            endlessWrites++;
            if (!s.write(chunk)) {
              s.once('drain', pump);
              return;
            }
          }
        };
        pump();
      },
    });
    chain = await startChain({
      toml: `
keepalive = "2s"
[upstream.php]
type = "fastcgi"
address = "${fpm.address}"
document_root = "${DOCROOT}"
max_connections = 2

[upstream.raw]
type = "http"
url = "http://127.0.0.1:${raw.port}"
idle_timeout = "700ms"
response_timeout = "3s"
retries = 0

[upstream.fake]
type = "fastcgi"
address = "${fake.address}"
document_root = "${DOCROOT}"
max_connections = 2

[upstream.good]
type = "http"
url = "${good.url}"

[[route]]
prefix = "/php/"
upstream = "php"
strip_prefix = true

[[route]]
prefix = "/raw/"
upstream = "raw"
strip_prefix = true

[[route]]
prefix = "/fake/"
upstream = "fake"
strip_prefix = true

[[route]]
prefix = "/good/"
upstream = "good"
strip_prefix = true
`,
    });
    innocent = innocentClient(`${chain.url}/good/bytes/100`);
    await waitFor(() => innocent.take().length > 0, 10_000);
    await sleep(500);
    baseline = percentile(innocent.take(), 99);
  });

  after(async () => {
    await innocent?.stop();
    await chain?.stop();
    await Promise.all([fpm?.stop(), raw?.close(), fake?.close(), good?.close()]);
  });

  /** One attack; asserts the innocent client's p99 and records the table row. */
  async function attack(name: string, run: () => Promise<string>): Promise<void> {
    const { result, p99, requests } = await underAttack(innocent, run);
    recordRow({ suite: SUITE, attack: name, attackerGot: result, rssMiB: rssMiB(), innocentP99Ms: Math.round(p99 * 10) / 10, baselineP99Ms: Math.round(baseline * 10) / 10, innocentRequests: requests });
    assert.ok(p99 <= p99Bound(baseline), `${name}: innocent p99 ${p99.toFixed(1)} ms against a baseline of ${baseline.toFixed(1)} ms`);
  }

  const get = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

  test('PHP body longer than its Content-Length: cut, closed, the smuggled response never answers the next pipelined request', async () => {
    await attack('PHP Content-Length 5, body smuggles a response (pipelined)', async () => {
      const out = (await rawRequest(chain.m2.port, get('/php/respond.php?mode=smuggle') + get('/php/respond.php?mode=ok'), { timeoutMs: 5000 })).toString('latin1');
      assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
      assert.ok(out.endsWith('\r\n\r\nHELLO'), JSON.stringify(out));
      assert.doesNotMatch(out, /Smuggled|SPOOFED/);
      assert.equal(out.match(/HTTP\/1\.1/g)!.length, 1, 'one response, then the connection closed');
      return '200, body cut at 5 bytes, connection closed';
    });
  });

  test('PHP body shorter than its Content-Length: the connection closes instead of eating the next response', async () => {
    await attack('PHP Content-Length 100, 5-byte body (pipelined)', async () => {
      const out = (await rawRequest(chain.m2.port, get('/php/respond.php?mode=short') + get('/php/respond.php?mode=ok'), { timeoutMs: 5000 })).toString('latin1');
      assert.match(out, /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 100\r\n/);
      assert.ok(out.endsWith('HELLO'));
      assert.equal(out.match(/HTTP\/1\.1/g)!.length, 1);
      return '200 then close after 5 bytes';
    });
  });

  for (const mode of ['two-lengths', 'negative-length', 'huge-length', 'length-and-chunked', 'switching', 'many-headers']) {
    test(`PHP ${mode}: 502`, async () => {
      await attack(`PHP ${mode}`, async () => {
        const out = await rawRequest(chain.m2.port, get(`/php/respond.php?mode=${mode}`, 'Connection: close\r\n'), { timeoutMs: 5000 });
        assert.equal(statusOf(out), '502', out.toString('latin1').slice(0, 300));
        assert.doesNotMatch(out.toString('latin1'), /HELLO/);
        return '502';
      });
    });
  }

  test('PHP and HTTP upstreams: Connection naming content-length keeps the framing on a kept-alive connection', async () => {
    await attack('Connection: content-length (PHP and HTTP)', async () => {
      for (const p of ['/php/respond.php?mode=connection-names-length', '/raw/connection-names-length']) {
        const out = (await rawRequest(chain.m2.port, get(p) + get('/good/bytes/3', 'Connection: close\r\n'), { timeoutMs: 5000 })).toString('latin1');
        const [first, second] = out.split(/(?=HTTP\/1\.1 )/);
        assert.match(first!, /^HTTP\/1\.1 200 OK\r\n(?:[^\r\n]+\r\n)*Content-Length: 5\r\n(?:[^\r\n]+\r\n)*\r\nHELLO$/, p);
        assert.match(second ?? '', /^HTTP\/1\.1 200 OK\r\n/, `${p}: the next response is read as one`);
      }
      return '200 with Content-Length, connection kept';
    });
  });

  for (const p of ['/crlf', '/nul', '/length-and-chunked', '/negative-length', '/huge-length', '/bad-status-line', '/garbage-status-line', '/headers-10000', '/switching']) {
    test(`HTTP upstream ${p}: 502`, async () => {
      await attack(`HTTP upstream ${p.slice(1)}`, async () => {
        const out = await rawRequest(chain.m2.port, get(`/raw${p}`, 'Connection: close\r\n'), { timeoutMs: 5000 });
        assert.equal(statusOf(out), '502', out.toString('latin1').slice(0, 300));
        assert.doesNotMatch(out.toString('latin1'), /x=1|HELLO/);
        return '502';
      });
    });
  }

  test('HTTP upstream reset mid-body: the client gets the head and part of the body, then a close', async () => {
    await attack('HTTP upstream reset mid-body', async () => {
      const out = (await rawRequest(chain.m2.port, get('/raw/reset-mid-body') + get('/good/bytes/3'), { timeoutMs: 5000 })).toString('latin1');
      assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
      assert.equal(out.match(/HTTP\/1\.1/g)!.length, 1);
      return '200 head + 1000 of 100000 bytes, then close';
    });
  });

  test('HTTP upstream dripping slower than idle_timeout: the connection is closed', async () => {
    await attack('HTTP upstream slow drip past idle_timeout', async () => {
      const t0 = Date.now();
      const out = (await rawRequest(chain.m2.port, get('/raw/slow-drip'), { timeoutMs: 8000 })).toString('latin1');
      assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
      assert.ok(Date.now() - t0 < 5000);
      return '200 head, closed after idle_timeout';
    });
  });

  test('an endless upstream body to a client that stops reading, then leaves: memory stays bounded, the upstream is cut off', async () => {
    await attack('HTTP upstream endless body, client stalls then leaves', async () => {
      const sock = net.connect(chain.m2.port, '127.0.0.1');
      sock.write(get('/raw/endless'));
      await new Promise<void>((r) => sock.once('data', () => r()));
      // The client stops reading: its socket buffers fill, Mongrel2 stops granting credits, and the
      // gateway must stop reading the upstream. One that read on regardless would take in the
      // endless body at loopback speed (hundreds of MiB a second) and hold it.
      sock.pause();
      await sleep(1_000);
      const stalledMiB = (endlessWrites * 0x10000) / 1048576;
      sock.destroy();
      // Mongrel2 says the client left at once, except when its failed write wins a race and it
      // says nothing (once in a CI run on Node 24: this wait timed out); then the probe m2gw
      // sends every keepalive (2 s here) while the client owes credits brings the disconnect.
      await waitFor(() => raw.sockets.size === 0, 30_000, 20, 'the upstream connection closed');
      const writes = endlessWrites;
      await sleep(300);
      assert.equal(endlessWrites, writes, 'nothing more is read from the upstream');
      // What the gateway could have buffered is bounded by what the upstream managed to write
      // (the pump writes only when its socket drains, that is, when the gateway reads): the
      // credit window and the sockets' buffers, a few MiB. This, not the RSS of this process, is
      // the measure: that RSS also holds the innocent client's load and the V8 heap's own growth
      // over up to 30 s, which once came to 208 MiB on a loaded CI run.
      const upstreamMiB = (writes * 0x10000) / 1048576;
      assert.ok(stalledMiB < 32, `the upstream wrote ${stalledMiB} MiB while the client read nothing`);
      assert.ok(upstreamMiB < 32, `the upstream wrote ${upstreamMiB} MiB in all`);
      return 'client stalled: upstream paused; client gone: upstream closed';
    });
  });

  test('FastCGI records with bogus lengths: 502', async () => {
    await attack('FastCGI bogus record lengths', async () => {
      const results: string[] = [];
      const cases: Array<(raw: (b: Buffer) => void, destroy: () => void, id: number) => void> = [
        // A STDOUT header claiming 65,535 bytes, 10 sent, then EOF.
        (w, _d, id) => {
          const h = Buffer.from([1, RecordType.STDOUT, id >> 8, id & 0xff, 0xff, 0xff, 0, 0]);
          w(Buffer.concat([h, Buffer.from('Status: 200')]));
          setTimeout(_d, 20);
        },
        // A record of an unknown version.
        (w, d, id) => {
          w(Buffer.from([9, RecordType.STDOUT, id >> 8, id & 0xff, 0, 2, 0, 0, 0x41, 0x42]));
          setTimeout(d, 20);
        },
        // Padding length longer than what follows, then a valid-looking END_REQUEST inside it.
        (w, d, id) => {
          w(Buffer.from([1, RecordType.STDOUT, id >> 8, id & 0xff, 0, 0, 255, 0]));
          setTimeout(d, 20);
        },
      ];
      for (const c of cases) {
        fake.setHandler((req, res) => c(res.raw, res.destroy, req.id));
        const out = await rawRequest(chain.m2.port, get('/fake/respond.php', 'Connection: close\r\n'), { timeoutMs: 8000 });
        results.push(statusOf(out));
      }
      fake.setHandler((_req, res) => res.reply('Content-Type: text/plain', 'fine'));
      assert.deepEqual(results, ['502', '502', '502']);
      return '502';
    });
  });

  test('still up, and no request left in flight', async () => {
    await waitFor(() => chain.gateway.inFlight <= 1, 5000);
    const ok = await rawRequest(chain.m2.port, get('/good/bytes/3', 'Connection: close\r\n'));
    assert.equal(statusOf(ok), '200');
  });
});
