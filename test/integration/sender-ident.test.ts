/**
 * Mongrel2's send_ident is the sender of every request, and m2sh takes any string there; but
 * Mongrel2 drops a reply whose first token is not [A-Za-z0-9-]+. An ident such as `web_1` used to
 * kill the worker (the reply encoder threw in the flush); now it is answered under `web-1`.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { oneAppToml, startChain, type Chain } from './gateway-support.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { request } from '../harness/http-client.js';

for (const protocol of ['json', 'tnetstring'] as const) {
  describe(`send_ident "web_1" (${protocol})`, () => {
    let up: HttpUpstreamInstance;
    let chain: Chain;

    before(async () => {
      up = await startHttpUpstream();
      chain = await startChain({
        protocol,
        sendIdent: 'web_1',
        toml: oneAppToml(up.url),
      });
    });

    after(async () => {
      await chain?.stop();
      await up?.close();
    });

    test('every request is answered, on fresh and kept-alive connections', async () => {
      for (let i = 0; i < 3; i++) {
        const res = await request(`${chain.url}/echo/${i}`, { timeoutMs: 5000 });
        assert.equal(res.status, 200);
      }
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const a = await request(`${chain.url}/echo/a`, { agent, timeoutMs: 5000 });
        const b = await request(`${chain.url}/echo/b`, { agent, timeoutMs: 5000 });
        assert.equal(a.status, 200);
        assert.equal(b.status, 200);
        assert.ok(b.reusedSocket);
      } finally {
        agent.destroy();
      }
      assert.equal(up.requests.length, 5);
      const m2log = await chain.m2.logs();
      assert.doesNotMatch(m2log, /Failed to parse message from handler/);
    });
  });
}
