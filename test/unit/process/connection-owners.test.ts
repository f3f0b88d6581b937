/**
 * Connection ownership in the supervisor (ConnectionOwners), over real Mongrel2 messages
 * (shared fixtures with their connection id rewritten).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionOwners, type MessageTarget } from '../../../src/process/connection-owners.js';
import { fixture, onConnection } from '../fixtures.js';

const GET = fixture('get-query.json-protocol.bin');
const GET_TNET = fixture('get-query.tnet-protocol.bin');
const DISCONNECT = fixture('disconnect.json-protocol.bin');
const DISCONNECT_TNET = fixture('disconnect.tnet-protocol.bin');
const CREDITS = fixture('download-credits.json-protocol.bin');
const UPLOAD_START = fixture('chunked-post-upload-start.json-protocol.bin');
const UPLOAD_DONE = fixture('chunked-post-upload-done.json-protocol.bin');

const on = onConnection;

interface Recorder extends MessageTarget {
  readonly got: Array<{ handlerIndex: number; msg: Buffer }>;
}

function worker(id: number): Recorder {
  const got: Recorder['got'] = [];
  return { id, got, deliver: (handlerIndex, msg) => got.push({ handlerIndex, msg }) };
}

function setup(opts: { maxParked?: number } = {}) {
  const refused: Array<[number, string, string]> = [];
  const bad: unknown[] = [];
  const d = new ConnectionOwners(
    {
      refuse: (h, sender, connId) => refused.push([h, sender, connId]),
      badFrame: (_h, _msg, err) => bad.push(err),
    },
    opts,
  );
  return { d, refused, bad };
}

test('new connections go to the worker with the fewest connections', () => {
  const { d } = setup();
  const a = worker(1);
  const b = worker(2);
  d.add(a, true);
  d.add(b, true);
  for (let id = 1; id <= 6; id++) d.deliver(0, on(GET, id));
  assert.equal(a.got.length, 3);
  assert.equal(b.got.length, 3);
  assert.equal(d.ownedBy(1), 3);
  assert.equal(d.ownedBy(2), 3);
});

test('every later message of a connection reaches its owner, even when the other worker has fewer connections', () => {
  const { d } = setup();
  const a = worker(1);
  const b = worker(2);
  d.add(a, true);
  d.add(b, true);
  d.deliver(0, on(GET, 7)); // → a (tie, first)
  d.deliver(0, on(GET, 8)); // → b
  d.deliver(0, on(GET, 9)); // → a (tie again, rotation)
  assert.equal(d.ownerOf(0, '7'), 1);
  assert.equal(d.ownerOf(0, '9'), 1);
  // a owns 2, b owns 1: a new connection would go to b. Connection 7's messages must not.
  d.deliver(0, on(GET, 7));
  d.deliver(0, on(CREDITS, 7));
  d.deliver(0, on(DISCONNECT, 7));
  const aIds = a.got.map((m) => m.msg.toString('latin1').split(' ')[1]);
  assert.deepEqual(aIds, ['7', '9', '7', '7', '7']);
  assert.equal(b.got.length, 1);
  // The disconnect ended the ownership: id 7 reused by a new client goes to the least busy worker.
  assert.equal(d.ownerOf(0, '7'), null);
  d.deliver(0, on(GET, 7));
  assert.equal(d.ownerOf(0, '7'), 2, 'b had fewer connections');
});

test('a tnetstring disconnect also ends the ownership', () => {
  const { d } = setup();
  const a = worker(1);
  d.add(a, true);
  d.deliver(0, on(GET_TNET, 3));
  d.deliver(0, on(DISCONNECT_TNET, 3));
  assert.equal(a.got.length, 2);
  assert.equal(d.ownerOf(0, '3'), null);
});

test('the same conn id on two handlers is two connections', () => {
  const { d } = setup();
  const a = worker(1);
  const b = worker(2);
  d.add(a, true);
  d.add(b, true);
  d.deliver(0, on(GET, 5));
  d.deliver(1, on(GET, 5));
  assert.equal(d.ownerOf(0, '5'), 1);
  assert.equal(d.ownerOf(1, '5'), 2);
  d.deliver(1, on(DISCONNECT, 5));
  assert.deepEqual(
    b.got.map((m) => m.handlerIndex),
    [1, 1],
  );
  assert.equal(d.ownerOf(0, '5'), 1, 'handler 0 connection untouched');
});

test('credits and disconnects for a connection nobody owns are dropped', () => {
  const { d, refused } = setup();
  const a = worker(1);
  d.add(a, true);
  d.deliver(0, on(CREDITS, 11));
  d.deliver(0, on(DISCONNECT, 11));
  assert.equal(a.got.length, 0);
  assert.equal(d.connectionCount, 0);
  assert.equal(refused.length, 0);
});

test('upload start and done stay on one worker', () => {
  const { d } = setup();
  const a = worker(1);
  const b = worker(2);
  d.add(a, true);
  d.add(b, true);
  d.deliver(0, on(UPLOAD_START, 40));
  d.deliver(0, on(GET, 41));
  d.deliver(0, on(GET, 42)); // a now holds two, b one
  d.deliver(0, on(UPLOAD_DONE, 40));
  assert.equal(a.got.filter((m) => m.msg.toString('latin1').split(' ')[1] === '40').length, 2);
});

test('a close report drops the ownership only if nothing newer was sent to that worker for it', () => {
  const { d } = setup();
  const a = worker(1);
  d.add(a, true);
  d.deliver(0, on(GET, 1)); // seq 1
  d.deliver(0, on(GET, 2)); // seq 2
  d.deliver(0, on(GET, 1)); // seq 3: a new request on 1 (e.g. id reused after our close)
  d.applyClosed(1, [['0:1', 2]]); // closed when it had seen 2 messages: stale
  assert.equal(d.ownerOf(0, '1'), 1, 'kept: the worker holds a newer message for it');
  d.applyClosed(1, [['0:1', 3]]);
  assert.equal(d.ownerOf(0, '1'), null);
  d.applyClosed(2, [['0:2', 99]]);
  assert.equal(d.ownerOf(0, '2'), 1, 'another worker cannot release it');
});

test('retiring: idle connections move to the new generation, busy ones stay', () => {
  const { d } = setup();
  const old = worker(1);
  d.add(old, true);
  for (let id = 1; id <= 4; id++) d.deliver(0, on(GET, id));
  const fresh = worker(2);
  d.add(fresh, true);
  d.setAccepting(1, false);
  d.deliver(0, on(GET, 5)); // new connection: new generation
  assert.equal(d.ownerOf(0, '5'), 2);
  d.deliver(0, on(GET, 4)); // seq 5 on the old worker
  // The old worker saw 4 messages; 1 and 2 busy; 3 idle; 4 got a message it has not seen.
  assert.equal(d.applyBusy(1, ['0:1', '0:2'], 4), 3);
  assert.equal(d.ownerOf(0, '3'), null);
  assert.equal(d.ownerOf(0, '4'), 1);
  d.deliver(0, on(GET, 3));
  assert.equal(d.ownerOf(0, '3'), 2, 'moved connection lands on the new generation');
  assert.equal(d.applyBusy(1, [], 5), 0);
  assert.equal(d.ownedBy(1), 0);
});

test('a dead worker: its connections are returned for closing and forgotten', () => {
  const { d } = setup();
  const a = worker(1);
  const b = worker(2);
  d.add(a, true);
  d.add(b, true);
  for (let id = 1; id <= 4; id++) d.deliver(0, on(GET, id));
  const keys = d.remove(1).sort();
  assert.deepEqual(keys, ['0:1', '0:3']);
  d.deliver(0, on(GET, 1));
  assert.equal(d.ownerOf(0, '1'), 2);
  assert.equal(d.senderOf(0), GET.toString('latin1').split(' ')[0]);
});

test('no accepting worker: new connections wait, in order, and are replayed when one is ready', () => {
  const { d, refused } = setup();
  d.deliver(0, on(GET, 1));
  d.deliver(0, on(GET, 2));
  d.deliver(0, on(DISCONNECT, 1)); // belongs to a waiting connection: waits too
  assert.equal(d.parkedCount, 3);
  const a = worker(1);
  d.add(a, true);
  assert.equal(d.parkedCount, 0);
  assert.deepEqual(
    a.got.map((m) => m.msg.toString('latin1').split(' ').slice(1, 3).join(' ')),
    ['1 /json/get', '2 /json/get', '1 @*'],
  );
  assert.equal(d.ownerOf(0, '1'), null, 'the replayed disconnect ended it');
  assert.equal(refused.length, 0);
});

test('too many waiting messages: the excess is refused', () => {
  const { d, refused } = setup({ maxParked: 2 });
  for (let id = 1; id <= 3; id++) d.deliver(0, on(GET, id));
  assert.equal(d.parkedCount, 2);
  assert.deepEqual(
    refused.map((r) => r[2]),
    ['3'],
  );
});

test('shutting down: new connections are refused, owned ones still reach their owner', () => {
  const { d, refused } = setup();
  const a = worker(1);
  d.add(a, true);
  d.deliver(0, on(GET, 1));
  d.refuseNew();
  d.deliver(0, on(GET, 1));
  d.deliver(0, on(GET, 2));
  assert.equal(a.got.length, 2);
  assert.deepEqual(refused, [[0, GET.toString('latin1').split(' ')[0], '2']]);
});

test('a message without a valid routing key is reported, not routed', () => {
  const { d, bad } = setup();
  const a = worker(1);
  d.add(a, true);
  d.deliver(0, Buffer.from('no-spaces-at-all'));
  d.deliver(0, Buffer.from('sender x1 /path 2:{},0:,'));
  assert.equal(bad.length, 2);
  assert.equal(a.got.length, 0);
});

test('the flow-control window is learnt from a first request, for workers that will only see later ones', () => {
  const { d } = setup();
  const a = worker(1);
  d.add(a, true);
  d.deliver(0, on(GET, 1)); // no DOWNLOAD_CREDITS (flow control off on that capture)
  d.deliver(0, on(CREDITS, 1)); // a control message's header does not count
  assert.deepEqual(d.creditWindows([0, 1]), [null, null]);
  d.deliver(1, on(fixture('upload-stream-first.json-protocol.bin'), 2));
  assert.deepEqual(d.creditWindows([0, 1]), [null, 102400]);
});

test('a worker reading a lent PULL: its opened, closed and orphan reports keep the table as deliver() would', () => {
  const orphans: Array<[number, string, string]> = [];
  const fresh: boolean[] = [];
  const forgot: string[] = [];
  const d = new ConnectionOwners({
    refuse: () => assert.fail('nothing refused'),
    badFrame: () => assert.fail('no bad frame'),
    orphanControl: (h, connId, kind) => orphans.push([h, connId, kind]),
    newConnection: (_h, flow) => fresh.push(flow),
    forgot: (h, connId) => forgot.push(`${h}:${connId}`),
  });
  const a = worker(1);
  d.add(a, true);
  d.deliver(0, on(GET, 5)); // through the supervisor before lending
  assert.deepEqual(d.ownedOn(1, 0), ['0:5']);
  assert.deepEqual(d.ownedOn(1, 3), []);
  // The worker has not yet taken what the supervisor sends it meanwhile on another handler (not lent).
  const seenAtClose = d.sentTo(1);
  d.deliver(1, on(GET, 80));
  d.applyOpened(1, [
    ['0:6', 'f1b0e2a1-0000-4000-8000-000000000000', 16384],
    ['0:7', 'f1b0e2a1-0000-4000-8000-000000000000', 0],
  ]);
  assert.equal(d.ownerOf(0, '6'), 1);
  assert.equal(d.ownerOf(0, '7'), 1);
  assert.equal(d.senderOf(0), 'f1b0e2a1-0000-4000-8000-000000000000');
  assert.deepEqual(d.creditWindows([0]), [16384], 'the window is learnt from the report');
  assert.deepEqual(fresh.slice(-2), [true, true]);
  // An orphan report for an owned connection is not one (it would have reached the owner).
  d.applyOrphans([
    ['0:6', 'credits'],
    ['0:40', 'disconnect'],
  ]);
  assert.deepEqual(orphans, [[0, '40', 'disconnect']]);
  // Closed by the worker before it took that message: nothing for 0:6 went through the
  // supervisor, so the mapping goes all the same.
  d.applyClosed(1, [['0:6', seenAtClose]]);
  assert.equal(d.ownerOf(0, '6'), null);
  assert.deepEqual(forgot, ['0:6']);
  // After the PULL came back, the mirrored connections are routed to their owner.
  const b = worker(2);
  d.add(b, true);
  d.setAccepting(1, false);
  d.deliver(0, on(CREDITS, 7));
  assert.equal(a.got.length, 3);
  assert.equal(b.got.length, 0);
  assert.equal(d.remove(1).sort().join(','), '0:5,0:7,1:80', 'a dead worker: its mirrored connections are closed too');
});
