/**
 * WebSockets end to end: a real `ws` client → real Mongrel2 → m2gw → a real `ws` server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startChain, type Chain } from './gateway-support.js';
import { closeOf, connect, nextMessage, startWsUpstream, wsUrl, type WsUpstream } from './websocket-support.js';

describe('WebSocket through Mongrel2 and m2gw', () => {
  let app: WsUpstream;
  let chain: Chain;

  before(async () => {
    app = await startWsUpstream();
    chain = await startChain({
      toml: `
[upstream.app]
type = "http"
url = "${app.url}"
websocket_ping_interval = "30s"
[[route]]
prefix = "/"
upstream = "app"
`,
    });
  });
  after(async () => {
    await chain?.stop();
    await app?.stop();
  });

  it('echoes text and binary messages', async () => {
    const ws = await connect(wsUrl(chain.url, '/ws/echo'));
    ws.send('hello websocket');
    const text = await nextMessage(ws);
    assert.equal(text.data.toString(), 'hello websocket');
    assert.equal(text.binary, false);
    ws.send(Buffer.from([0, 1, 2, 255]));
    const bin = await nextMessage(ws);
    assert.deepEqual(bin.data, Buffer.from([0, 1, 2, 255]));
    assert.equal(bin.binary, true);
    const closed = closeOf(ws);
    ws.close(1000, 'done');
    assert.deepEqual(await closed, { code: 1000, reason: 'done' });
  });
});
