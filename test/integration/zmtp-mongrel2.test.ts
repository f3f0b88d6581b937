/**
 * Our ZMTP toward a real Mongrel2 1.12 (libzmq 4.3 underneath), end to end through the
 * gateway: Mongrel2 restarted under m2gw, ipc:// handler specs, replies and requests of
 * several MiB in one frame, and a burst of requests that reaches us in a few reads.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { parseConfigText } from '../../src/config/load.js';
import type { Gateway } from '../../src/gateway/gateway.js';
import { silentLogger } from '../../src/log.js';
import { startGateway } from '../../src/process/single.js';
import { request } from '../harness/http-client.js';
import { allocHandlerSpecs, startMongrel2, type M2HandlerSpec, type Mongrel2Instance, type StartMongrel2Options } from '../harness/mongrel2.js';
import { freePort } from '../harness/ports.js';
import { patternBytes, startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { waitFor } from '../harness/wait.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function gatewayFor(m2: Mongrel2Instance, handler: { sendSpec: string; recvSpec: string }, up: HttpUpstreamInstance): Promise<Gateway> {
  const toml =
    `[log]\naccess_log = false\n[[handler]]\nsend_spec = "${handler.sendSpec}"\nrecv_spec = "${handler.recvSpec}"\nchroot = "${m2.chroot}"\n` +
    `[upstream.app]\ntype = "http"\nurl = "${up.url}"\n[[route]]\nprefix = "/"\nupstream = "app"\n`;
  const { config } = parseConfigText(toml, `${m2.dir}/gw.toml`);
  assert.ok(config);
  return startGateway(config, silentLogger());
}

function m2Options(handler: M2HandlerSpec, extra: Partial<StartMongrel2Options> = {}): StartMongrel2Options {
  return { handlers: [handler], routes: [{ path: '/', handler: handler.name }], ...extra };
}

describe('ZMTP toward a real Mongrel2', () => {
  test('Mongrel2 restarted under a running m2gw: service resumes, every request after the restart is answered', { timeout: 60_000 }, async () => {
    const up = await startHttpUpstream();
    const [spec] = await allocHandlerSpecs(1);
    const port = await freePort();
    const handler: M2HandlerSpec = { name: 'gw', sendSpec: spec!.sendSpec, recvSpec: spec!.recvSpec, sendIdent: randomUUID() };
    let m2 = await startMongrel2(m2Options(handler, { port }));
    const gateway = await gatewayFor(m2, spec!, up);
    try {
      assert.equal((await request(`${m2.url}/echo?before`)).status, 200);
      for (let round = 1; round <= 2; round++) {
        await m2.stop();
        m2 = await startMongrel2(m2Options(handler, { port }));
        // Sent at once, while m2gw is still reconnecting: Mongrel2 holds them for the PULL,
        // and each reply must wait for the new subscription instead of being dropped.
        const results = await Promise.all(Array.from({ length: 20 }, (_, k) => request(`${m2.url}/echo?round=${round}&k=${k}`, { timeoutMs: 10_000 })));
        results.forEach((r, k) => {
          assert.equal(r.status, 200, `round ${round} request ${k}`);
          assert.equal(JSON.parse(r.body.toString()).url, `/echo?round=${round}&k=${k}`);
        });
        assert.equal(gateway.connected, true);
      }
    } finally {
      await gateway.drain(500);
      await m2.stop();
      await up.close();
    }
  });

  test('ipc:// send_spec and recv_spec, end to end', { timeout: 30_000 }, async () => {
    const up = await startHttpUpstream();
    // Mongrel2 binds the relative path inside its chroot (or its cwd when not root): the
    // instance dir either way.
    const handler: M2HandlerSpec = { name: 'gw', sendSpec: 'ipc://run/m2gw-send', recvSpec: 'ipc://run/m2gw-recv' };
    const m2 = await startMongrel2(m2Options(handler));
    const gateway = await gatewayFor(m2, { sendSpec: `ipc://${m2.dir}/run/m2gw-send`, recvSpec: `ipc://${m2.dir}/run/m2gw-recv` }, up);
    try {
      await waitFor(() => gateway.connected, 10_000, 10, 'subscribed over ipc');
      const body = randomBytes(50_000);
      const r = await request(`${m2.url}/echo`, { method: 'POST', body });
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body.toString()).bodySha256, sha(body));
    } finally {
      await gateway.drain(500);
      await m2.stop();
      await up.close();
    }
  });

  for (const flowControl of [1, 0]) {
    test(`multi-MiB frames both ways (download.flow_control = ${flowControl})`, { timeout: 60_000 }, async () => {
      const up = await startHttpUpstream();
      const [spec] = await allocHandlerSpecs(1);
      // A body under limits.content_length arrives inside the request message: one 3 MiB frame.
      const m2 = await startMongrel2(m2Options({ name: 'gw', ...spec! }, { settings: { 'limits.content_length': 4 * 1024 * 1024, 'download.flow_control': flowControl } }));
      const gateway = await gatewayFor(m2, spec!, up);
      try {
        const size = 6 * 1024 * 1024 + 13;
        const big = await request(`${m2.url}/bytes/${size}`, { timeoutMs: 30_000 });
        assert.equal(big.status, 200);
        assert.equal(big.body.length, size);
        assert.ok(big.body.equals(patternBytes(size)), 'reply bytes intact');
        const upload = randomBytes(3 * 1024 * 1024);
        const r = await request(`${m2.url}/echo`, { method: 'POST', body: upload, timeoutMs: 30_000 });
        assert.equal(r.status, 200);
        const seen = JSON.parse(r.body.toString()) as { bodyLength: number; bodySha256: string };
        assert.equal(seen.bodyLength, upload.length);
        assert.equal(seen.bodySha256, sha(upload));
      } finally {
        await gateway.drain(500);
        await m2.stop();
        await up.close();
      }
    });
  }

  test('a burst of requests queued in Mongrel2 before m2gw connects arrives in a few reads and is answered', { timeout: 60_000 }, async () => {
    const up = await startHttpUpstream();
    const [spec] = await allocHandlerSpecs(1);
    const m2 = await startMongrel2(m2Options({ name: 'gw', ...spec! }));
    const agent = new http.Agent({ keepAlive: false, maxSockets: 300 });
    let gateway: Gateway | null = null;
    try {
      const n = 300;
      const pending = Array.from({ length: n }, (_, k) => request(`${m2.url}/echo?k=${k}`, { agent, timeoutMs: 30_000 }));
      // Give Mongrel2 the requests before anyone pulls: its PUSH queues them and hands the
      // whole backlog over the new connection at once.
      await new Promise((r) => setTimeout(r, 500));
      gateway = await gatewayFor(m2, spec!, up);
      const results = await Promise.all(pending);
      results.forEach((r, k) => {
        assert.equal(r.status, 200, `request ${k}`);
        assert.equal(JSON.parse(r.body.toString()).url, `/echo?k=${k}`);
      });
    } finally {
      agent.destroy();
      await gateway?.drain(500);
      await m2.stop();
      await up.close();
    }
  });
});
