/**
 * With two workers, a client disconnect must reach the worker that owns the
 * connection and abort its upstream request. (With each worker pulling from
 * Mongrel2 itself, PUSH round-robin would deliver about half the disconnects to the
 * wrong worker; the connection-owners unit test shows the routing rule itself.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { waitFor } from '../harness/wait.js';
import { Daemon, gwToml, metricValue, parsePrometheus, startWorld, type World } from './support.js';

interface OpenStream {
  readonly id: number;
  readonly req: http.ClientRequest;
  bytes: number;
  owner: number;
}

describe('client disconnect with several workers', () => {
  let world: World;
  let daemon: Daemon;

  before(async () => {
    world = await startWorld();
    daemon = await Daemon.start(world, gwToml(world, { workers: 2 }));
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  function upstreamRecord(id: number) {
    return world.upA.requests.find((r) => r.url === `/stream/200/50?id=${id}`);
  }

  async function open(id: number): Promise<OpenStream> {
    const before = await daemon.status();
    const s: OpenStream = { id, req: http.get(`${world.m2.url}/stream/200/50?id=${id}`, { agent: false }), bytes: 0, owner: 0 };
    s.req.on('error', () => undefined);
    s.req.on('response', (res) => res.on('data', (c: Buffer) => (s.bytes += c.length)));
    await waitFor(() => s.bytes > 0, 5_000, 10, `stream ${id} flowing`);
    const now = await daemon.status();
    const gained = now.workers.filter((w) => w.connections > (before.workers.find((b) => b.id === w.id)?.connections ?? 0));
    assert.equal(gained.length, 1, `exactly one worker took stream ${id}`);
    s.owner = gained[0]!.id;
    return s;
  }

  test("each disconnect aborts its owner's upstream request within a second, and only that one", async () => {
    const streams: OpenStream[] = [];
    for (let id = 1; id <= 4; id++) streams.push(await open(id));
    const owners = new Set(streams.map((s) => s.owner));
    assert.equal(owners.size, 2, 'the streams are spread over both workers');

    for (const s of streams) {
      const t0 = Date.now();
      s.req.destroy();
      const rec = await waitFor(() => (upstreamRecord(s.id)?.closedAt !== undefined ? upstreamRecord(s.id) : undefined), 1_000, 5, `upstream request of stream ${s.id} closed`);
      assert.equal(rec!.aborted, true, 'closed before the response finished');
      assert.ok(Date.now() - t0 < 1_000);
      for (const other of streams.filter((o) => o.id > s.id)) {
        assert.equal(upstreamRecord(other.id)?.closedAt, undefined, `stream ${other.id} still running`);
        const n = other.bytes;
        await waitFor(() => other.bytes > n, 2_000, 5, `stream ${other.id} still flowing`);
      }
    }
    const metrics = parsePrometheus((await daemon.admin('/metrics')).body);
    assert.equal(metricValue(metrics.samples, 'm2gw_disconnect_aborts_total'), 4);
    await waitFor(async () => (await daemon.status()).connections === 0, 2_000, 20, 'no connection left');
  });
});
