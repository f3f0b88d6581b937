/**
 * Issue 11, from the side of Mongrel2: a fake Mongrel2 (the only way to send broken frames)
 * pushes 100,000 malformed frames, replies' worth of messages for connections the gateway
 * never saw, and credits for connections it already closed. The gateway stays up, answers
 * the good requests in between (the innocent client here), logs a bounded number of lines
 * and counts every bad frame exactly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import winston from 'winston';
import { fakeMongrel2, routeReplies, type FakeMongrel2 } from '../harness/fake-mongrel2.js';
import { startHttpUpstream, type HttpUpstreamInstance } from '../harness/upstream-http.js';
import { waitFor } from '../harness/wait.js';
import { p99Bound, percentile, recordRow, rssMiB } from './hostile-support.js';
import type { Gateway } from '../../src/gateway/gateway.js';
import { warningCounts } from '../../src/metrics/limit-hits.js';
import { startGateway } from '../../src/process/single.js';
import { fixture, fixtureNames } from '../unit/fixtures.js';

const SENDER = '0b9a6b7e-6c35-4b6c-9a3c-000000000001';
const MALFORMED = 'malformed Mongrel2 message dropped';

function frame(connId: number, headers: Record<string, string>, body = ''): Buffer {
  const h = JSON.stringify(headers);
  return Buffer.from(`${SENDER} ${connId} ${headers.PATH ?? '@*'} ${Buffer.byteLength(h)}:${h},${Buffer.byteLength(body)}:${body},`, 'latin1');
}
const get = (connId: number, p: string, extra: Record<string, string> = {}): Buffer =>
  // DOWNLOAD_CREDITS as Mongrel2 puts on a connection's first request (the fixtures among the
  // mutated frames carry small windows that new connections would otherwise inherit).
  frame(connId, { PATH: p, METHOD: 'GET', VERSION: 'HTTP/1.1', URI: p, host: 'x', REMOTE_ADDR: '127.0.0.1', PATTERN: '/', DOWNLOAD_CREDITS: '1048576', ...extra });
const control = (connId: number, body: Record<string, unknown>, headers: Record<string, string> = {}): Buffer => frame(connId, { METHOD: 'JSON', ...headers }, JSON.stringify(body));

/** A deterministic PRNG, so a failure reproduces. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Frames Mongrel2 never sends: truncated, lying lengths, flipped structure, NULs, non-UTF-8, deep nesting. */
function malformedFrames(n: number): Buffer[] {
  const seeds = fixtureNames((f) => f.endsWith('-protocol.bin')).map(fixture);
  const rnd = prng(11);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const seed = seeds[Math.floor(rnd() * seeds.length)]!;
    const b = Buffer.from(seed);
    const firstColon = b.indexOf(0x3a);
    switch (i % 6) {
      case 0: // truncated inside the headers
        out.push(b.subarray(0, Math.max(1, Math.floor(rnd() * Math.max(1, b.length - 3)))));
        break;
      case 1: // a lying header length
        out.push(Buffer.concat([b.subarray(0, Math.max(0, firstColon - 1)), Buffer.from(String(Math.floor(rnd() * 9))), b.subarray(firstColon)]));
        break;
      case 2: // the structure bytes (spaces, colons, commas) flipped
        for (let k = 0; k < b.length; k++) if ((b[k] === 0x20 || b[k] === 0x3a || b[k] === 0x2c) && rnd() < 0.3) b[k] = 0x00;
        out.push(b);
        break;
      case 3: // non-UTF-8 and NUL in the header block
        out.push(Buffer.concat([b.subarray(0, firstColon + 2), Buffer.from([0xff, 0xfe, 0x00, 0xc3]), b.subarray(firstColon + 2)]));
        break;
      case 4: // deep nesting
        out.push(Buffer.from(`${SENDER} 5 /x 4000:${'['.repeat(2000)}${']'.repeat(2000)},0:,`));
        break;
      default: // a sender outside what Mongrel2 accepts, or no body netstring
        out.push(Buffer.concat([Buffer.from('we ird 7 /x '), b.subarray(b.indexOf(0x20, b.indexOf(0x20, b.indexOf(0x20) + 1) + 1) + 1)]));
    }
  }
  return out;
}

describe('hostile Mongrel2 side (a fake Mongrel2)', () => {
  let up: HttpUpstreamInstance;
  let m2: FakeMongrel2;
  let gateway: Gateway;
  const lines: Array<{ message: string; level: string }> = [];
  let badFrames = 0;
  const waiting = new Map<string, (payload: string) => void>();
  let replies: { stop(): void } | undefined;

  before(async () => {
    up = await startHttpUpstream();
    m2 = await fakeMongrel2(up.url);
    const sink = new Writable({ objectMode: true, write(info: { message: string; level: string }, _e, cb) { lines.push(info); if (process.env.M2GW_TEST_LOG && info.message !== MALFORMED) process.stderr.write(JSON.stringify(info).slice(0, 400) + '\n'); cb(); } });
    const logger = winston.createLogger({ level: process.env.M2GW_TEST_LOG ? "debug" : "info", transports: [new winston.transports.Stream({ stream: sink })] });
    gateway = await startGateway(m2.config, logger, { onBadFrame: () => badFrames++ });
    replies = routeReplies(m2, waiting);
  });

  after(async () => {
    replies?.stop();
    await gateway?.drain(500);
    m2?.close();
    await up?.close();
  });

  /** Sends a good request and resolves with its answer (the first reply payload). */
  async function ask(connId: number, p = '/bytes/10'): Promise<{ payload: string; ms: number }> {
    const t0 = performance.now();
    const answer = new Promise<string>((resolve) => waiting.set(String(connId), resolve));
    await m2.push.send(get(connId, p, { connection: 'close' }));
    const payload = await Promise.race([answer, new Promise<string>((_r, reject) => setTimeout(() => reject(new Error(`no answer for ${connId} (in flight ${gateway.inFlight}, connections ${gateway.connectionCount}, bad frames ${badFrames})`)), 10_000))]);
    waiting.delete(String(connId));
    return { payload, ms: performance.now() - t0 };
  }

  test('100,000 malformed frames: dropped and counted exactly, a bounded number of log lines, good requests answered meanwhile', { timeout: 150_000 }, async () => {
    const baseline: number[] = [];
    for (let i = 0; i < 20; i++) baseline.push((await ask(900_000 + i)).ms);
    const frames = malformedFrames(100_000);
    const warned0 = warningCounts().get(MALFORMED) ?? 0;
    const bad0 = badFrames;
    const t0 = Date.now();
    const during: number[] = [];
    let next = 910_000;
    for (let i = 0; i < frames.length; i += 1000) {
      for (let k = i; k < i + 1000 && k < frames.length; k++) await m2.push.send(frames[k]!);
      const r = await ask(next++);
      assert.match(r.payload, /^HTTP\/1\.1 200 /);
      during.push(r.ms);
    }
    await waitFor(() => badFrames - bad0 >= 100_000 * 0.9, 60_000, 50, 'the frames processed');
    const seconds = (Date.now() - t0) / 1000;
    const dropped = badFrames - bad0;
    assert.equal((warningCounts().get(MALFORMED) ?? 0) - warned0, dropped, 'every dropped frame counted');
    const logged = lines.filter((l) => l.message === MALFORMED).length;
    assert.ok(logged <= 2 * Math.ceil(seconds) + 4, `${logged} log lines for ${dropped} frames in ${seconds.toFixed(1)} s`);
    const p99 = percentile(during, 99);
    recordRow({ suite: 'mongrel2', attack: '100,000 malformed frames on the PULL socket', attackerGot: `${dropped} dropped (counted), ${logged} log lines`, rssMiB: rssMiB(), innocentP99Ms: Math.round(p99 * 10) / 10, baselineP99Ms: Math.round(percentile(baseline, 99) * 10) / 10, innocentRequests: during.length });
    assert.ok(dropped >= 90_000, `${dropped} of 100,000 were malformed`);
    // Each good request here queues behind the 1,000 frames pushed just before it: a sanity bound.
    assert.ok(p99 <= p99Bound(percentile(baseline, 99)), `innocent p99 ${p99.toFixed(1)} ms`);
  });

  test('messages for connections never seen, and credits for closed ones, create nothing and answer nothing', async () => {
    const before = gateway.connectionCount;
    const answered: string[] = [];
    for (let id = 800_000; id < 801_000; id++) waiting.set(String(id), (p) => answered.push(p));
    for (let id = 800_000; id < 801_000; id++) {
      await m2.push.send(control(id, { type: 'disconnect' }));
      await m2.push.send(control(id, { type: 'credits' }, { DOWNLOAD_CREDITS: '4096' }));
    }
    // A connection answered and closed, then credits for it.
    const closed = await ask(801_500);
    assert.match(closed.payload, /^HTTP\/1\.1 200 /);
    for (let k = 0; k < 100; k++) await m2.push.send(control(801_500, { type: 'credits' }, { DOWNLOAD_CREDITS: '100000' }));
    // Something after them, to know they were all processed.
    assert.match((await ask(801_600)).payload, /^HTTP\/1\.1 200 /);
    assert.deepEqual(answered, []);
    assert.ok(gateway.connectionCount <= before + 2, `${gateway.connectionCount - before} states created`);
    recordRow({ suite: 'mongrel2', attack: 'disconnects and credits for 1,000 unknown conn ids; credits for a closed one', attackerGot: 'nothing answered, no state', rssMiB: rssMiB(), innocentP99Ms: NaN, baselineP99Ms: NaN, innocentRequests: 2 });
    for (let id = 800_000; id < 801_000; id++) waiting.delete(String(id));
  });
});
