/**
 * Reloads that put a handler on a send_spec another one is still draining from (a revert,
 * a second change, a revert removed again), driven on the real LiveHandlers and
 * ConnectionOwners: Mongrel2 round-robins between the PULLs sharing the spec, so each
 * message is fed to whichever PULL the test names, as Mongrel2 could.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HandlerConfig } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/log.js';
import { ConnectionOwners } from '../../../src/process/connection-owners.js';
import { LiveHandlers } from '../../../src/process/live-handlers.js';
import { fixture, onConnection } from '../fixtures.js';
import { sleep } from '../../harness/wait.js';

const GET = fixture('get-query.json-protocol.bin');
const CREDITS = fixture('download-credits.json-protocol.bin');

const on = onConnection;

/** Closed ports: the added handlers' sockets never connect, which nothing here needs. */
function h(send: number, recv: number): HandlerConfig {
  return {
    sendSpec: `tcp://127.0.0.1:${send}`,
    recvSpec: `tcp://127.0.0.1:${recv}`,
    recvIdent: '',
    chroot: '/a',
    uploadTempStore: '/tmp/upload.XXXXXX',
    keepAliveMs: 20_000,
    sendTimeoutMs: 60_000,
  };
}

function setup() {
  const refused: string[] = [];
  const orphans: string[] = [];
  /** `handler:conn` of every message a worker got. */
  const delivered: string[] = [];
  const owners = new ConnectionOwners({
    refuse: (hid, _sender, connId) => refused.push(`${hid}:${connId}`),
    badFrame: () => undefined,
    orphanControl: (hid, connId) => orphans.push(`${hid}:${connId}`),
  });
  owners.add({ id: 1, deliver: (hid, msg) => delivered.push(`${hid}:${msg.toString('latin1').split(' ')[1]}`) }, true);
  const hs = new LiveHandlers(() => silentLogger(), owners);
  return {
    hs,
    refused,
    orphans,
    delivered,
    /** Mongrel2 hands `msg` to the PULL of handler `id`. */
    pull(id: number, msg: Buffer): void {
      hs['deliverFrom'](hs.get(id)!, msg);
    },
    reload(next: HandlerConfig[], drainTimeoutMs = 30_000): number[] {
      const plan = hs.plan(next);
      // Not awaited: it resolves once the added sockets connect, and their ports are closed.
      void hs.apply(plan, drainTimeoutMs);
      return plan.ids as number[];
    },
    close: (): Promise<void> => hs.closeAll(),
  };
}

test('a handler put back while its removal drains: both PULLs serve, each connection reaches whichever holds it', async (ctx) => {
  const t = setup();
  ctx.after(() => t.close());
  const [S, T] = [h(9997, 9996), h(9995, 9994)];
  t.hs.init([S, T]);
  t.pull(0, on(GET, 5)); // a long download keeps S draining
  t.reload([T]);
  const [S2] = t.reload([S, T]);
  assert.notEqual(S2, 0);
  t.pull(0, on(GET, 7)); // new connections on either PULL
  t.pull(S2!, on(GET, 8));
  t.pull(0, on(CREDITS, 8)); // each one's credits on the other's PULL
  t.pull(S2!, on(CREDITS, 5));
  assert.deepEqual(t.refused, []);
  assert.deepEqual(t.orphans, []);
  assert.deepEqual(t.delivered, ['0:5', `${S2}:7`, `${S2}:8`, `${S2}:8`, '0:5']);
});

test('put back, then removed again while both drain: new connections refused, held ones still reach their handler', async (ctx) => {
  const t = setup();
  ctx.after(() => t.close());
  const [S, T] = [h(9997, 9996), h(9995, 9994)];
  t.hs.init([S, T]);
  t.pull(0, on(GET, 5));
  t.reload([T]);
  const [S2] = t.reload([S, T]);
  t.pull(S2!, on(GET, 8));
  t.reload([T]);
  t.pull(0, on(GET, 9));
  t.pull(S2!, on(GET, 10));
  t.pull(0, on(CREDITS, 8));
  t.pull(S2!, on(CREDITS, 5));
  assert.deepEqual(t.refused, ['0:9', `${S2}:10`]);
  assert.deepEqual(t.orphans, []);
  assert.deepEqual(t.delivered, ['0:5', `${S2}:8`, `${S2}:8`, '0:5']);
});

test('changed twice in a row: the three share the spec, and the first one finishing leaves the other two linked', async (ctx) => {
  const t = setup();
  ctx.after(() => t.close());
  t.hs.init([h(9997, 9996)]);
  t.pull(0, on(GET, 5));
  const [H2] = t.reload([h(9997, 9994)], 100);
  t.pull(H2!, on(GET, 8));
  const [H3] = t.reload([h(9997, 9992)]);
  t.pull(0, on(GET, 9)); // new: to the one that stays
  t.pull(0, on(CREDITS, 8));
  t.pull(H2!, on(CREDITS, 9));
  assert.deepEqual(t.delivered, ['0:5', `${H2}:8`, `${H3}:9`, `${H2}:8`, `${H3}:9`]);
  await sleep(400); // the first one's drain_timeout passes
  assert.equal(t.hs.get(0), undefined);
  t.pull(H2!, on(GET, 10));
  t.pull(H3!, on(CREDITS, 8));
  assert.deepEqual(t.delivered.slice(5), [`${H3}:10`, `${H2}:8`]);
  assert.deepEqual(t.refused, []);
  assert.deepEqual(t.orphans, []);
});
