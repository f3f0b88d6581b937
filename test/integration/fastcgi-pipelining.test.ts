/**
 * End to end: real Mongrel2 → m2gw → real PHP-FPM, one pipelined FastCGI connection. A client
 * that leaves while its script runs makes m2gw close that connection (the only way to stop a
 * running script); the other clients' requests waiting behind it must not pay for it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { startChain, type Chain } from './gateway-support.js';
import { rawRequest } from '../harness/http-client.js';
import { startPhpFpm, type PhpFpm } from '../harness/php-fpm.js';
import { sleep } from '../harness/wait.js';
import { repoRoot } from '../unit/fixtures.js';

const DOCROOT = path.join(repoRoot, 'test/fixtures/php');

/**
 * A connected client socket and everything it receives until the server closes (rawRequest
 * writes as it connects; these three must be connected before the first of them writes).
 */
async function client(port: number): Promise<{ sock: net.Socket; whole: Promise<string> }> {
  const sock = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const whole = new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', () => undefined);
    sock.once('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
  return { sock, whole };
}

describe('FastCGI pipelining through a real Mongrel2', () => {
  let fpm: PhpFpm;
  let chain: Chain;
  let port = 0;

  before(async () => {
    fpm = await startPhpFpm({ maxChildren: 2, phpAdminValues: { output_buffering: '0' } });
    chain = await startChain({
      toml: `
[upstream.php]
type = "fastcgi"
address = "${fpm.address}"
document_root = "${DOCROOT}"
max_connections = 1
pipeline = 4
response_timeout = "5s"

[[route]]
prefix = "/php/"
upstream = "php"
strip_prefix = true
`,
    });
    port = Number(new URL(chain.url).port);
  });

  after(async () => {
    await chain.stop();
    await fpm.stop();
  });

  test('a client leaving while its script runs costs nothing to the POST and the GET sent right behind it', async () => {
    // A first request, so the three below meet a warm chain: a freshly started Mongrel2 takes
    // ~0.5 s over its first request (its own Proxy() routes too), far more than the 10 ms window
    // in which the GET below must follow the first to be pipelined behind it.
    const warm = await rawRequest(port, 'GET /php/hello.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    assert.match(warm.toString('latin1'), /^HTTP\/1\.1 200 /);
    const a = await client(port);
    const b = await client(port);
    const c = await client(port);
    // Within a few ms of each other, so the GET goes onto the connection behind the running
    // script (pipelining waits only behind a request written under 10 ms ago).
    a.sock.write('GET /php/sleep.php?ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n');
    await sleep(3);
    b.sock.write('POST /php/server.php HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\nConnection: close\r\n\r\nk=v');
    c.sock.write('GET /php/hello.php HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    await sleep(250);
    a.sock.destroy();

    const rb = await b.whole;
    assert.match(rb, /^HTTP\/1\.1 200 /, rb.slice(0, 300));
    // The body may come chunked: the JSON is one chunk.
    const seen = JSON.parse(rb.slice(rb.indexOf('{'), rb.lastIndexOf('}') + 1)) as { post: Record<string, string>; server: Record<string, string> };
    assert.equal(seen.server['REQUEST_METHOD'], 'POST');
    assert.deepEqual(seen.post, { k: 'v' });
    const rc = await c.whole;
    assert.match(rc, /^HTTP\/1\.1 200 /, rc.slice(0, 300));

    const access = (p: string): Array<Record<string, unknown>> => chain.logs.filter((r) => r['type'] === 'access' && String(r['path']).split('?')[0] === p);
    const gone = access('/php/sleep.php');
    assert.equal(gone.length, 1);
    assert.equal(gone[0]!['status'], 499);
    assert.equal(gone[0]!['error'], 'M2GW_CLIENT_GONE');
    assert.deepEqual(
      access('/php/server.php').map((r) => r['status']),
      [200],
    );
  });
});
