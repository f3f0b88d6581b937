/**
 * Issue 9 item 1: Mongrel2 at its defaults (download.flow_control off). Without credits
 * Mongrel2 queues at most 16 messages for a slow client and drops it on the 17th, so a
 * response must never need more: message sizes grow along the response.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { oneAppToml, startChain, type Chain } from './gateway-support.js';
import { startHttpUpstream, patternBytes, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { slowReader, request } from '../harness/http-client.js';

const MiB = 1024 * 1024;

async function peakRssKiB(pid: number): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

describe('Mongrel2 without download.flow_control', () => {
  let up: HttpUpstreamInstance;
  let chain: Chain;

  before(async () => {
    up = await startHttpUpstream();
    chain = await startChain({
      settings: { 'download.flow_control': 0 },
      toml: oneAppToml(up.url, { upstream: 'idle_timeout = "60s"\nresponse_timeout = "60s"' }),
    });
  });

  after(async () => {
    await chain?.stop();
    await up?.close();
  });

  test('warns once per handler that flow control is off, naming the setting', async () => {
    await request(`${chain.url}/echo/1`);
    await request(`${chain.url}/echo/2`);
    const warnings = chain.logs.filter((l) => l.level === 'warn' && /DOWNLOAD_CREDITS/.test(l.message));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(warnings[0]!.message, /download\.flow_control/);
    assert.equal(chain.gateway.flowControl()[0], false);
  });

  test('a client reading at 1 MB/s receives a 100 MiB response complete and byte-exact', async () => {
    const size = 100 * MiB;
    const expected = createHash('sha256').update(patternBytes(size)).digest('hex');
    const rssBefore = process.memoryUsage().rss;
    const res = await slowReader(`${chain.url}/bytes/${size}`, 1_000_000, { timeoutMs: 170_000 });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, size, `got ${res.body.length} of ${size} bytes\n${await chain.m2.logs()}`);
    assert.equal(createHash('sha256').update(res.body).digest('hex'), expected);
    // The memory cost of running without credits (reported in result notes / README).
    const m2Peak = await peakRssKiB(chain.m2.pid);
    process.stderr.write(`# no-flow-control 100 MiB: mongrel2 peak RSS ${Math.round(m2Peak / 1024)} MiB; test process RSS grew ${Math.round((process.memoryUsage().rss - rssBefore) / MiB)} MiB\n`);
  });
});
