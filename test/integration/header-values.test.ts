/**
 * A request whose header values hold a control byte (CR, LF, NUL or another; HTAB is allowed)
 * is refused with 400 by the gateway for every kind of upstream alike: an HTTP upstream, a
 * PHP-FPM pool (where a CR LF is no desync, FastCGI params being length-framed, but the script
 * would find it in $_SERVER) and a WebSocket handshake. A real Mongrel2 never sends one, so a
 * fake one does; the upstreams are real (node:http and PHP-FPM). Values a real client may send
 * (HTAB, obs-text bytes) still pass, byte for byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fakeChain, m2frame, m2requestHeaders, type FakeChain } from '../harness/fake-mongrel2.js';
import { startPhpFpm, type PhpFpm } from '../harness/php-fpm.js';
import { repoRoot } from '../unit/fixtures.js';

const DOCROOT = path.join(repoRoot, 'test/fixtures/php');
const statusOf = (s: string): string => /^HTTP\/1\.1 (\d{3})/.exec(s)?.[1] ?? 'none';

describe('control bytes in request header values: 400 for every upstream, before it is reached', () => {
  let app: http.Server;
  const seen: IncomingMessage[] = [];
  let fpm: PhpFpm;
  let chain: FakeChain;
  const send = (build: (connId: number) => Buffer): Promise<string> => chain.send(build);

  before(async () => {
    app = http.createServer((req, res) => {
      seen.push(req);
      res.end(`app saw ${JSON.stringify(req.headers['x-multi'] ?? null)}`);
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    fpm = await startPhpFpm({ maxChildren: 2 });
    const url = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    chain = await fakeChain(url, `[upstream.php]\ntype = "fastcgi"\naddress = "${fpm.address}"\ndocument_root = "${DOCROOT}"\n[[route]]\nprefix = "/php/"\nupstream = "php"\nstrip_prefix = true\n`, 9000);
  });

  after(async () => {
    await chain?.close();
    await fpm?.stop();
    await new Promise<void>((resolve) => (app ? app.close(() => resolve()) : resolve()));
  });

  const get = (p: string, extra: Record<string, string | string[]>) => (id: number) => m2frame(id, p, m2requestHeaders(p, extra));
  const bad: Array<[string, Record<string, string | string[]>]> = [
    ['CR LF', { 'x-multi': 'a\r\nX-Injected: 1' }],
    ['a bare LF', { 'x-multi': 'a\nb' }],
    ['NUL', { 'x-multi': 'a\0b' }],
    ['0x01', { 'x-multi': 'a\x01b' }],
    ['DEL', { 'x-multi': 'a\x7fb' }],
    ['CR LF in the second value of a repeated header', { 'x-multi': ['fine', 'a\r\nb'] }],
    ['CR LF in REMOTE_ADDR', { REMOTE_ADDR: '127.0.0.1\r\nX-Injected: 1' }],
  ];

  for (const [what, extra] of bad) {
    test(`${what}: PHP-FPM route 400, the script never runs`, async () => {
      const payload = await send(get('/php/server.php', extra));
      assert.equal(statusOf(payload), '400', payload.slice(0, 300));
      assert.doesNotMatch(payload, /"server"/);
    });

    test(`${what}: HTTP route 400, the app sees no request`, async () => {
      const before = seen.length;
      const payload = await send(get('/a', extra));
      assert.equal(statusOf(payload), '400', payload.slice(0, 300));
      assert.equal(seen.length, before);
    });
  }

  test('CR LF in the path of the message (its PATH header clean): 400 on both routes', async () => {
    const before = seen.length;
    for (const p of ['/php/server.php', '/a']) {
      const payload = await send((id) => m2frame(id, `${p}\r\nX-Injected:\t1`, m2requestHeaders(p)));
      assert.equal(statusOf(payload), '400', payload.slice(0, 300));
    }
    assert.equal(seen.length, before);
  });

  test('a WebSocket handshake with CR LF in a header value: 400, the app sees no handshake', async () => {
    const before = seen.length;
    const headers = m2requestHeaders('/ws', {
      METHOD: 'WEBSOCKET_HANDSHAKE',
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
      'x-multi': 'a\r\nb',
    });
    const payload = await send((id) => m2frame(id, '/ws', headers));
    assert.equal(statusOf(payload), '400', payload.slice(0, 300));
    assert.equal(seen.length, before);
  });

  test('HTAB and obs-text bytes pass to both, byte for byte', async () => {
    // The UTF-8 bytes of "é", as Mongrel2 passes them: two obs-text bytes.
    const value = 'a\tb \xc3\xa9';
    const php = await send(get('/php/server.php', { 'x-multi': value }));
    assert.equal(statusOf(php), '200', php.slice(0, 300));
    // The JSON document inside the (chunked) body.
    const body = Buffer.from(php.slice(php.indexOf('{'), php.lastIndexOf('}') + 1), 'latin1').toString('utf8');
    assert.equal((JSON.parse(body) as { server: Record<string, string> }).server['HTTP_X_MULTI'], 'a\tb é');
    const before = seen.length;
    const viaHttp = await send(get('/a', { 'x-multi': value }));
    assert.equal(statusOf(viaHttp), '200', viaHttp.slice(0, 300));
    assert.equal(seen.length, before + 1);
    const raw = seen.at(-1)!.rawHeaders;
    assert.equal(raw[raw.indexOf('x-multi') + 1], value);
  });
});
