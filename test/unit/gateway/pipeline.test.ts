/**
 * Issue 11 item 5 (the pipelined queue is bounded, queued requests count toward
 * max_in_flight, replies do not pile up for a client that does not read) and item 6 (one
 * connection's failing flush never stops the others').
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientConnection, HIGH_WATER } from '../../../src/gateway/client-connection.js';
import { ConnectionTable, type ConnState, type Pending } from '../../../src/gateway/connections.js';
import { MAX_PIPELINED_PER_CONNECTION } from '../../../src/gateway/limits.js';
import { Pipeline } from '../../../src/gateway/pipeline.js';
import { limitHitCount } from '../../../src/metrics/limit-hits.js';
import type { Mongrel2Request } from '../../../src/mongrel2/request.js';

function state(id = '1'): ConnState {
  const conn = new ClientConnection(`0:${id}`, id, { send: () => undefined }, 'u', { schedule: () => undefined });
  return { conn, handler: {} as ConnState['handler'], queue: [], active: null, uploadPath: null, uploadCheck: false, streamUpload: null };
}
const pending = (n: number): Pending => ({ req: { connId: String(n) } as unknown as Mongrel2Request, bodyFile: null, refusal: null });

test('a connection queues at most MAX_PIPELINED_PER_CONNECTION, then one 503 that closes; the rest is dropped', () => {
  const started: Pending[] = [];
  const p = new Pipeline((_s, x) => void started.push(x), () => 1, 1_000_000, () => undefined);
  const s = state();
  s.active = {} as ConnState['active'];
  const hits = limitHitCount('pipeline_queue');
  for (let i = 0; i < 10_000; i++) p.enqueue(s, pending(i));
  assert.equal(s.queue.length, MAX_PIPELINED_PER_CONNECTION + 1);
  const last = s.queue.at(-1)!;
  assert.equal(last.refusal?.code, 'M2GW_SATURATED');
  assert.equal(last.closeAfter, true);
  assert.equal(limitHitCount('pipeline_queue'), hits + 1);
  assert.equal(p.queued, MAX_PIPELINED_PER_CONNECTION + 1);
  p.drop(s);
  assert.equal(p.queued, 0);
});

test('queued requests count toward max_in_flight across connections', () => {
  let active = 2;
  const p = new Pipeline(() => undefined, () => active, 5, () => undefined);
  const a = state('1');
  const b = state('2');
  a.active = b.active = {} as ConnState['active'];
  for (let i = 0; i < 3; i++) p.enqueue(a, pending(i));
  assert.equal(a.queue.length, 3);
  assert.equal(a.queue.every((x) => x.refusal === null), true);
  p.enqueue(b, pending(9));
  assert.equal(b.queue[0]!.refusal?.code, 'M2GW_SATURATED', '2 active + 3 queued = max_in_flight: the next is refused');
  active = 0;
});

test('the next request waits while the replies already queued for the client are over HIGH_WATER', () => {
  const started: Pending[] = [];
  const p = new Pipeline((_s, x) => void started.push(x), () => 0, 1000, () => undefined);
  const s = state();
  s.active = {} as ConnState['active'];
  p.enqueue(s, pending(1));
  s.active = null;
  s.conn.window = 1; // metered: nothing leaves until credits arrive
  s.conn.write(Buffer.alloc(HIGH_WATER + 1));
  p.advance(s, false);
  assert.equal(started.length, 0);
  p.enqueue(s, pending(2));
  assert.equal(started.length, 0, 'nothing overtakes the waiting queue');
  s.conn.window = null;
  s.conn.flushSoon();
  s.conn.flush();
  assert.deepEqual(started.map((x) => x.req.connId), ['1']);
});

test('a connection whose flush throws is given up alone; the others in the same turn are flushed', async () => {
  const failed: string[] = [];
  const table = new ConnectionTable({}, (conn) => failed.push(conn.key));
  const sent: string[] = [];
  const bad = new ClientConnection('0:1', '1', { send: () => { throw new Error('cannot encode'); } }, 'u', table);
  const good = new ClientConnection('0:2', '2', { send: () => void sent.push('good') }, 'u', table);
  bad.write(Buffer.from('x'), true);
  good.write(Buffer.from('y'), true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(failed, ['0:1']);
  assert.deepEqual(sent, ['good']);
});

/** A pipeline whose start marks the connection active and records the started request's connId. */
function recordingPipeline(): { p: Pipeline; started: string[] } {
  const started: string[] = [];
  const p = new Pipeline((s, x) => {
    started.push(x.req.connId);
    s.active = {} as ConnState['active'];
  }, () => 0, 1000, () => undefined);
  return { p, started };
}

test('an async upload holds its place from its start: requests pipelined after it wait, in order, until its done fills it', () => {
  const { p, started } = recordingPipeline();
  const s = state();
  const upload = (n: number, path: string): Pending => ({ ...pending(n), awaitingUpload: path });
  p.enqueue(s, upload(1, '/tmp/upload.A'));
  assert.deepEqual(started, [], 'the upload start starts nothing');
  p.enqueue(s, pending(2));
  assert.deepEqual(started, [], 'a request pipelined after the upload waits for it');
  assert.equal(p.fill(s, '/tmp/upload.A', pending(1)), true);
  assert.deepEqual(started, ['1'], 'the done fills the place, and it is the head: it starts');
  s.active = null;
  p.advance(s, false);
  assert.deepEqual(started, ['1', '2']);
});

test('an upload behind an active and a queued request keeps its place between them', () => {
  const { p, started } = recordingPipeline();
  const s = state();
  p.enqueue(s, pending(1)); // starts
  p.enqueue(s, pending(2));
  p.enqueue(s, { ...pending(3), awaitingUpload: '/tmp/upload.B' });
  p.enqueue(s, pending(4));
  const finish = (): void => {
    s.active = null;
    p.advance(s, false);
  };
  finish();
  assert.deepEqual(started, ['1', '2']);
  finish();
  assert.deepEqual(started, ['1', '2'], 'the upload\'s place is next but its done has not come: nothing starts');
  assert.equal(p.fill(s, '/tmp/upload.B', pending(3)), true);
  assert.deepEqual(started, ['1', '2', '3']);
  finish();
  assert.deepEqual(started, ['1', '2', '3', '4']);
  assert.equal(p.queued, 0);
});

test('a dropped placeholder is reported (its late done deletes the file) and cannot be filled', () => {
  const dropped: string[] = [];
  const p = new Pipeline((s) => void (s.active = {} as ConnState['active']), () => 0, 1000, (_s, path) => void dropped.push(path));
  const s = state();
  p.enqueue(s, pending(1));
  p.enqueue(s, { ...pending(2), awaitingUpload: '/tmp/upload.C' });
  s.active = null;
  p.advance(s, true); // the first response closed the connection
  assert.deepEqual(dropped, ['/tmp/upload.C']);
  assert.equal(p.fill(s, '/tmp/upload.C', pending(2)), false);
  assert.equal(p.queued, 0);
});
