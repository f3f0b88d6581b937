/** The worker's ownership reports: what it tells the supervisor, and when. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FromWorker } from '../../../src/process/messages.js';
import { OwnershipReporter } from '../../../src/process/ownership-reporter.js';

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup() {
  const sent: FromWorker[] = [];
  const state = { seen: 0, busy: [] as string[] };
  const r = new OwnershipReporter({ seen: () => state.seen, busy: () => [...state.busy], send: (m) => sent.push(m) });
  return { r, sent, state };
}

test('closed connections are reported once per turn, each with the count seen when it closed', async () => {
  const { r, sent, state } = setup();
  state.seen = 5;
  r.closed('0:1');
  state.seen = 7;
  r.closed('0:2');
  assert.equal(sent.length, 0, 'coalesced to the end of the turn');
  await turn();
  assert.deepEqual(sent, [{ t: 'closed', entries: [['0:1', 5], ['0:2', 7]] }]);
  r.changed();
  await turn();
  assert.equal(sent.length, 1, 'no busy reports before retiring');
});

test('retiring: a busy report at once, after each change, and on the timer only when something changed', async () => {
  const { r, sent, state } = setup();
  state.seen = 3;
  state.busy = ['0:1', '0:2'];
  r.retire();
  await turn();
  assert.deepEqual(sent, [{ t: 'busy', keys: ['0:1', '0:2'], seen: 3 }]);
  state.busy = ['0:2'];
  r.changed();
  await turn();
  assert.deepEqual(sent.at(-1), { t: 'busy', keys: ['0:2'], seen: 3 });
  const n = sent.length;
  await new Promise((res) => setTimeout(res, 80));
  assert.equal(sent.length, n, 'timer stays quiet while nothing changes');
  state.seen = 4;
  await new Promise((res) => setTimeout(res, 80));
  assert.deepEqual(sent.at(-1), { t: 'busy', keys: ['0:2'], seen: 4 });
  r.stop();
  const m = sent.length;
  state.busy = [];
  r.changed();
  await new Promise((res) => setTimeout(res, 60));
  assert.equal(sent.length, m, 'silent after stop');
});

test('a lent PULL: opened, closed and orphan reports keep their order; flushNow sends at once', async () => {
  const { r, sent, state } = setup();
  state.seen = 4;
  r.opened('0:1', 'uuid', 16384);
  r.opened('0:2', 'uuid', 0);
  r.closed('0:1');
  // Mongrel2 reused the id: a new client, opened again after the close.
  r.opened('0:1', 'uuid', 0);
  r.orphan('0:9', 'credits');
  r.flushNow();
  assert.deepEqual(sent, [
    { t: 'opened', entries: [['0:1', 'uuid', 16384], ['0:2', 'uuid', 0]] },
    { t: 'closed', entries: [['0:1', 4]] },
    { t: 'opened', entries: [['0:1', 'uuid', 0]] },
    { t: 'orphans', entries: [['0:9', 'credits']] },
  ]);
  await turn();
  assert.equal(sent.length, 4, 'nothing sent twice by the scheduled flush');
});
