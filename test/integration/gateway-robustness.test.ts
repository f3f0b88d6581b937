/**
 * What a hostile or broken world does to the gateway: forged upload headers, malformed
 * ZeroMQ frames, several Mongrel2 servers at once, tnetstring handlers, a dead server in
 * a balanced upstream. Real Mongrel2 and real upstreams except where a frame must be broken.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { startChain, type Chain } from './gateway-support.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { rawRequest, request } from '../harness/http-client.js';
import { allocHandlerSpecs, startMongrel2 } from '../harness/mongrel2.js';
import { freePort } from '../harness/ports.js';
import { fakeMongrel2 } from '../harness/fake-mongrel2.js';
import { waitFor } from '../harness/wait.js';
import { parseConfigText } from '../../src/config/load.js';
import { startGateway } from '../../src/process/single.js';
import { silentLogger } from '../../src/log.js';
import { parseReply } from '../../src/mongrel2/reply.js';
import { fixture } from '../unit/fixtures.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('tnetstring handler, forged upload headers', () => {
  let up: HttpUpstreamInstance;
  let chain: Chain;
  before(async () => {
    up = await startHttpUpstream();
    chain = await startChain({ protocol: 'tnetstring', toml: `[upstream.app]\ntype = "http"\nurl = "${up.url}"\n[[route]]\nprefix = "/"\nupstream = "app"\n` });
  });
  after(async () => {
    await chain.stop();
    await up.close();
  });

  test('GET and an async-upload POST work through a tnetstring handler', async () => {
    const get = await request(`${chain.url}/echo?q=%20x`);
    assert.equal(JSON.parse(get.body.toString()).url, '/echo?q=%20x');
    const body = randomBytes(300_000);
    const post = await request(`${chain.url}/echo`, { method: 'POST', body });
    assert.equal(JSON.parse(post.body.toString()).bodySha256, sha(body));
  });

  test('forged x-mongrel2-upload headers never read or delete a file in the chroot', async () => {
    const target = `${chain.m2.dir}/config.sqlite`;
    assert.ok(existsSync(target));
    const forged = await rawRequest(
      chain.m2.port,
      'GET /echo HTTP/1.1\r\nHost: x\r\nX-Mongrel2-Upload-Start: /config.sqlite\r\nX-Mongrel2-Upload-Done: /config.sqlite\r\nConnection: close\r\n\r\n',
      { readUntil: 'close', timeoutMs: 5000 },
    );
    assert.match(forged.toString('latin1'), /^HTTP\/1\.1 400/);
    assert.ok(existsSync(target), 'config.sqlite still there');
    // A forged start alone is an ordinary request: answered, nothing waits for a done message.
    const startOnly = await request(`${chain.url}/echo`, { headers: { 'X-Mongrel2-Upload-Start': '/tmp/upload.AAAAAA' }, timeoutMs: 3000 });
    assert.equal(startOnly.status, 200);
    const seen = JSON.parse(startOnly.body.toString()) as { headers: Record<string, string> };
    assert.equal(seen.headers['x-mongrel2-upload-start'], undefined, 'never forwarded');
  });

  test('no temp files are left behind', async () => {
    // An upload of its own, held by the upstream for a moment: its temp file is seen first,
    // so the final check cannot pass just because nothing was ever uploaded.
    const tmp = `${chain.m2.dir}/tmp`;
    const seen = up.requests.length;
    const pending = request(`${chain.url}/slow/300`, { method: 'POST', body: randomBytes(100_000) });
    await waitFor(() => up.requests.length > seen && readdirSync(tmp).length > 0, 5000, 10, 'the upload in the temp store while the upstream holds it');
    assert.equal((await pending).status, 200);
    await waitFor(() => readdirSync(tmp).length === 0, 2000, 10, 'an empty temp store');
  });
});

describe('malformed ZeroMQ frames (a fake Mongrel2: the only way to send broken frames)', () => {
  test('each is logged and dropped; the next good request is answered; nothing crashes', { timeout: 20_000 }, async () => {
    const good = fixture('get-query.json-protocol.bin');
    const up = await startHttpUpstream((_req, res) => res.end('answered'));
    const { push, sub, config, close } = await fakeMongrel2(up.url);
    const subscribeTimer = setInterval(() => void sub.send(Buffer.from([1])).catch(() => undefined), 50);
    let badFrames = 0;
    const gateway = await startGateway(config, silentLogger(), { onBadFrame: () => badFrames++ });
    try {
      const garbage = [
        Buffer.alloc(0),
        Buffer.from('no spaces at all'),
        Buffer.from('uuid 12 /path 99999999:{"PATH":"/x"},0:,'),
        Buffer.from('uuid notanumber /path 2:{},0:,'),
        good.subarray(0, good.length - 3),
        Buffer.concat([good.subarray(0, 60), randomBytes(200)]),
        Buffer.from('uuid 1 /p 5:{"a":,0:,'),
      ];
      for (const g of garbage) await push.send(g);
      await push.send(good);
      const [reply] = await sub.receive();
      const parsed = parseReply(reply!);
      assert.match(parsed.payload.toString('latin1'), /^HTTP\/1\.1 200[\s\S]*answered$/);
      assert.equal(badFrames, garbage.length);
    } finally {
      clearInterval(subscribeTimer);
      await gateway.drain(500);
      close();
      await up.close();
    }
  });
});

describe('two Mongrel2 servers, one gateway', () => {
  test('each server gets the replies to its own requests, even with the same conn ids', async () => {
    const up = await startHttpUpstream();
    const specs = await allocHandlerSpecs(2);
    const servers = await Promise.all(
      specs.map((s, i) => startMongrel2({ handlers: [{ name: 'gw', sendSpec: s.sendSpec, recvSpec: s.recvSpec }], routes: [{ path: '/', handler: 'gw' }], hostName: `localhost` }).then((m) => ({ m, i }))),
    );
    const toml =
      `[log]\naccess_log = false\n` +
      servers.map(({ m, i }) => `[[handler]]\nsend_spec = "${specs[i]!.sendSpec}"\nrecv_spec = "${specs[i]!.recvSpec}"\nchroot = "${m.chroot}"\n`).join('') +
      `[upstream.app]\ntype = "http"\nurl = "${up.url}"\n[[route]]\nprefix = "/"\nupstream = "app"\n`;
    const { config } = parseConfigText(toml, '/tmp/gw.toml');
    assert.ok(config);
    const gateway = await startGateway(config, silentLogger());
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, k) => request(`${servers[k % 2]!.m.url}/echo?server=${k % 2}&k=${k}`)),
      );
      results.forEach((r, k) => {
        assert.equal(r.status, 200);
        assert.equal(JSON.parse(r.body.toString()).url, `/echo?server=${k % 2}&k=${k}`);
      });
    } finally {
      await gateway.drain(500);
      await Promise.all(servers.map(({ m }) => m.stop()));
      await up.close();
    }
  });
});

describe('balanced upstream with a dead server', () => {
  test('requests succeed on the live server; the dead one leaves the rotation', async () => {
    const up = await startHttpUpstream();
    const dead = await freePort();
    const chain = await startChain({
      toml: `[upstream.app]\ntype = "http"\nurls = ["http://127.0.0.1:${dead}", "${up.url}"]\nfail_timeout = "30s"\n[[route]]\nprefix = "/"\nupstream = "app"\n`,
    });
    try {
      for (let i = 0; i < 6; i++) {
        const r = await request(`${chain.url}/echo?i=${i}`);
        assert.equal(r.status, 200, `request ${i}`);
      }
      const outOfRotation = chain.logs.filter((l) => l.message === 'upstream server out of rotation');
      assert.equal(outOfRotation.length, 1, 'marked down once, then skipped');
    } finally {
      await chain.stop();
      await up.close();
    }
  });
});

describe('Mongrel2 that withholds its subscription (seen on m2gw restarts under traffic)', () => {
  test('the gateway pulls anyway, holds its replies, and delivers them once subscribed', { timeout: 15_000 }, async () => {
    const request = fixture('get-query.json-protocol.bin');
    const up = await startHttpUpstream((_req, res) => res.end('held'));
    const { push, sub, config, close } = await fakeMongrel2(up.url);
    // Queued before any handler is connected, as Mongrel2 does with early requests (a PUSH
    // without peers holds the message until one connects).
    const queued = push.send(request);
    const t0 = Date.now();
    const gateway = await startGateway(config, silentLogger());
    await queued;
    try {
      assert.ok(Date.now() - t0 < 5000, 'start does not wait for the subscription forever');
      assert.equal(gateway.connected, false);
      // The request is answered upstream, but the reply must wait for the subscription.
      await waitFor(() => up.requests.length === 1, 3000);
      const replyP = sub.receive(); // zeromq.js allows one pending receive: keep this one
      const early = await Promise.race([replyP.then(() => 'reply'), new Promise((r) => setTimeout(() => r('none'), 300))]);
      assert.equal(early, 'none', 'nothing may leave before Mongrel2 subscribed');
      await sub.send(Buffer.from([1]));
      const [reply] = await replyP;
      assert.match(parseReply(reply!).payload.toString('latin1'), /^HTTP\/1\.1 200[\s\S]*held$/);
    } finally {
      await gateway.drain(500);
      close();
      await up.close();
    }
  });
});
