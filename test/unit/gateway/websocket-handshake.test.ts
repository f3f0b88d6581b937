import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UpstreamError } from '../../../src/errors.js';
import { clientSwitchingHead, upgradeRequest } from '../../../src/gateway/websocket-handshake.js';
import { RequestAbort } from '../../../src/upstream/upstream.js';
import { acceptKey } from '../../../src/websocket/frame.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

describe('clientSwitchingHead', () => {
  it('writes our Upgrade/Connection/Accept, keeps the app headers, drops the hop ones', () => {
    const head = clientSwitchingHead('app', KEY, 101, [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Accept', acceptKey(KEY)],
      ['Sec-WebSocket-Protocol', 'chat.v2'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
      ['Keep-Alive', 'timeout=5'],
    ]);
    assert.ok(Buffer.isBuffer(head));
    assert.equal(
      head.toString('latin1'),
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptKey(KEY)}\r\nSec-WebSocket-Protocol: chat.v2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n`,
    );
  });

  it('refuses a 101 with a wrong or missing Accept, or an extension nobody offered', () => {
    const bad = (headers: Array<[string, string]>, status = 101): void => {
      const r = clientSwitchingHead('app', KEY, status, headers);
      assert.ok(r instanceof UpstreamError && r.code === 'M2GW_UPSTREAM_PROTOCOL', JSON.stringify(headers));
    };
    bad([]);
    bad([['Sec-WebSocket-Accept', acceptKey('x' + KEY)]]);
    bad([['Sec-WebSocket-Accept', acceptKey(KEY)], ['Sec-WebSocket-Extensions', 'permessage-deflate']]);
    bad([['Sec-WebSocket-Accept', acceptKey(KEY)], ['X-Split', 'a\r\nInjected: 1']]);
    bad([['Sec-WebSocket-Accept', acceptKey(KEY)]], 200);
  });
});

describe('upgradeRequest', () => {
  it('is a GET without body asking for websocket, without Sec-WebSocket-Extensions', () => {
    const req = upgradeRequest({
      id: 'r1',
      path: '/cable',
      query: 'x=1',
      hasQuery: true,
      originalUri: '/cable?x=1',
      routePrefix: '/',
      httpVersion: 'HTTP/1.1',
      headers: [
        ['sec-websocket-key', KEY],
        ['sec-websocket-extensions', 'permessage-deflate'],
        ['origin', 'https://a.example'],
      ],
      host: 'a.example',
      hostHeader: 'a.example',
      remoteAddr: '127.0.0.1',
      scheme: 'http',
      serverPort: 80,
      preserveHost: true,
      signal: new RequestAbort(),
    });
    assert.equal(req.method, 'GET');
    assert.equal(req.body, null);
    assert.equal(req.upgrade, 'websocket');
    assert.deepEqual(req.headers, [
      ['sec-websocket-key', KEY],
      ['origin', 'https://a.example'],
    ]);
  });
});
