/**
 * Issue 9 item 3: a quiet open response outlives Mongrel2's limits.min_ping. Mongrel2
 * kills a connection when min_ping passed without a ping and its read and write rates
 * are both under their minimums; m2gw's `["ctl", {"keep-alive": 1}]` is that ping.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { oneAppToml, startChain, type Chain } from './gateway-support.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';

const MIN_PING_S = 5;
const GAP_MS = 3 * MIN_PING_S * 1000;

describe('long-lived quiet responses through a real Mongrel2 (limits.min_ping = 5)', () => {
  let up: HttpUpstreamInstance;
  let chain: Chain;

  before(async () => {
    // An SSE stream: an event now, then one after each 15 s gap.
    up = await startHttpUpstream((req, res) => {
      const events = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('events') ?? '3');
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let sent = 0;
      const send = (): void => {
        res.write(`data: event ${sent}\n\n`);
        sent++;
        if (sent === events) res.end();
        else timer = setTimeout(send, GAP_MS);
      };
      let timer = setTimeout(send, 0);
      res.on('close', () => clearTimeout(timer));
    });
    chain = await startChain({
      settings: { 'limits.min_ping': MIN_PING_S },
      toml: oneAppToml(up.url, { handler: 'keepalive = "2s"', upstream: 'idle_timeout = "60s"' }),
    });
  });

  after(async () => {
    await chain?.stop();
    await up?.close();
  });

  test('an SSE stream with gaps three times min_ping stays open and delivers every event', async () => {
    const t0 = Date.now();
    const { events, status } = await new Promise<{ events: Array<{ text: string; at: number }>; status: number }>((resolve, reject) => {
      const req = http.get(`${chain.url}/sse?events=3`, { agent: false }, (res) => {
        const events: Array<{ text: string; at: number }> = [];
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          buf += s;
          let i: number;
          while ((i = buf.indexOf('\n\n')) !== -1) {
            events.push({ text: buf.slice(0, i), at: Date.now() - t0 });
            buf = buf.slice(i + 2);
          }
        });
        res.once('end', () => resolve({ events, status: res.statusCode ?? 0 }));
        res.once('error', reject);
      });
      req.once('error', reject);
    });
    assert.equal(status, 200);
    assert.deepEqual(
      events.map((e) => e.text),
      ['data: event 0', 'data: event 1', 'data: event 2'],
      `events received before the stream ended: ${JSON.stringify(events)}\n${await chain.m2.logs()}`,
    );
    // Each event came when the upstream sent it (not batched at the end).
    assert.ok(events[1]!.at >= GAP_MS - 1000 && events[2]!.at >= 2 * GAP_MS - 1000, JSON.stringify(events));
    assert.doesNotMatch(await chain.m2.logs(), /Killed \d+ connections/);
  });
});
