/**
 * The admin listener of the real daemon (/healthz, /readyz, /metrics, /status) and
 * the CLI commands that act on a running daemon (status, reload, stop).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { request } from '../harness/http-client.js';
import { freePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';
import { Daemon, gwToml, m2gwBin, metricValue, parsePrometheus, startWorld, type World } from './support.js';

const execFileP = promisify(execFile);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [m2gwBin, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('admin listener and control commands', () => {
  let world: World;
  let daemon: Daemon;
  let toml: string;

  before(async () => {
    world = await startWorld();
    const deadPort = await freePort();
    toml = gwToml(world, {
      workers: 2,
      probe: 'a',
      extra: `
[upstream.dead]
type = "http"
url = "http://127.0.0.1:${deadPort}"

[[route]]
prefix = "/dead/"
upstream = "dead"
`,
    });
    daemon = await Daemon.start(world, toml);
  });

  after(async () => {
    await daemon?.kill();
    await world?.stop();
  });

  test('healthz and readyz when all is well', async () => {
    assert.equal((await daemon.admin('/healthz')).status, 200);
    const ready = await daemon.admin('/readyz');
    assert.equal(ready.status, 200, ready.body);
    assert.deepEqual(JSON.parse(ready.body), { ready: true, reasons: [] });
    assert.equal((await daemon.admin('/nope')).status, 404);
  });

  test('/metrics parses as Prometheus text and counts exactly the requests sent, across a reload', async () => {
    const send = async (path: string, status: number, n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const r = await request(`${world.m2.url}${path}`);
        assert.equal(r.status, status, `${path}: ${r.body.toString()}`);
      }
    };
    await send('/echo/m', 200, 30);
    await send('/status/404', 404, 5);
    await send('/probe/status/503', 503, 3);
    // Connection failures take the dead upstream out of rotation in the worker that saw them;
    // readyz turns 503 once no worker has a healthy server for it.
    let dead = 0;
    const notReady = await waitFor(
      async () => {
        await send('/dead/x', 502, 1);
        dead++;
        const r = await daemon.admin('/readyz');
        return r.status === 503 ? r : null;
      },
      5_000,
      0,
      'readyz 503',
    );
    const reasons = (JSON.parse(notReady!.body) as { reasons: string[] }).reasons;
    assert.deepEqual(reasons, ['upstream dead: no healthy server']);

    // Counters must survive the workers that counted them.
    const mark = daemon.logs.length;
    daemon.signal('SIGHUP');
    await daemon.waitForLog((l) => daemon.logs.indexOf(l) >= mark && l.message.startsWith('reloaded:'), 10_000, 'reload');
    await waitFor(async () => (await daemon.status()).workers.every((w) => w.generation === 2), 5_000, 20, 'old generation gone');
    await send('/echo/m2', 200, 10);

    const res = await daemon.admin('/metrics');
    assert.match(res.type, /^text\/plain; version=0\.0\.4/);
    const { samples, types } = parsePrometheus(res.body);
    const req = (labels: Record<string, string>): number => metricValue(samples, 'm2gw_requests_total', labels);
    assert.equal(req({ route: '/', status: '200', upstream: 'a' }), 40);
    assert.equal(req({ route: '/', status: '404', upstream: 'a' }), 5);
    assert.equal(req({ route: '/probe/', status: '503', upstream: 'a' }), 3);
    assert.equal(req({ route: '/dead/', status: '502', upstream: 'dead' }), dead);
    assert.equal(req({}), 48 + dead, 'nothing else counted');
    assert.equal(metricValue(samples, 'm2gw_request_duration_seconds_count'), 48 + dead);
    assert.equal(metricValue(samples, 'm2gw_request_duration_seconds_bucket', { le: '+Inf' }), 48 + dead);
    assert.equal(metricValue(samples, 'm2gw_upstream_errors_total', { upstream: 'dead', code: 'M2GW_UPSTREAM_CONNECT' }), dead);
    assert.equal(metricValue(samples, 'm2gw_reloads_total', { result: 'ok' }), 1);
    assert.equal(metricValue(samples, 'm2gw_worker_restarts_total'), 0);
    assert.equal(metricValue(samples, 'm2gw_disconnect_aborts_total'), 0);
    assert.equal(metricValue(samples, 'm2gw_bad_frames_total'), 0);
    assert.equal(metricValue(samples, 'm2gw_workers', { state: 'active' }), 2);
    assert.equal(metricValue(samples, 'm2gw_requests_in_flight'), 0);
    // Two workers, each with two HTTP clients (direct and undici) of `connections` (64) each.
    assert.equal(metricValue(samples, 'm2gw_upstream_pool_connections', { upstream: 'a', state: 'max' }), 2 * 2 * 64);
    assert.ok(samples.some((s) => s.name === 'm2gw_upstream_queue_depth' && s.labels.upstream === 'a'));
    assert.equal(types.get('m2gw_requests_total'), 'counter');
    assert.equal(types.get('m2gw_request_duration_seconds'), 'histogram');
    assert.equal(types.get('m2gw_requests_in_flight'), 'gauge');
  });

  test('m2gw status prints workers, uptime, in-flight and upstream health', async () => {
    const s = await daemon.status();
    const out = await cli('status', '--config', world.configFile);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`pid ${daemon.pid} +running +up \\d+s`));
    for (const w of s.workers) assert.match(out.stdout, new RegExp(`^ +${w.id} +${w.pid} +${w.generation} +active `, 'm'));
    assert.match(out.stdout, /in flight 0/);
    assert.match(out.stdout, /^ {2}a \(http\) healthy/m);
    const json = await cli('status', '--json', '--admin', `127.0.0.1:${world.adminPort}`);
    assert.equal(JSON.parse(json.stdout).pid, daemon.pid);
  });

  test('m2gw reload waits for and prints the result; an invalid config is reported with exit 1', async () => {
    const ok = await cli('reload', '--config', world.configFile);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^reloaded: generation 3/);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(world.configFile, toml.replace('[[route]]\nprefix = "/dead/"', '[[route]]\nprefix = "dead"'));
    const bad = await cli('reload', '--pid-file', world.pidFile, '--admin', `127.0.0.1:${world.adminPort}`);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /reload invalid: 1 problem\(s\)/);
    await writeFile(world.configFile, toml);
  });

  test('m2gw reload confirms a reload that moves the admin listener (it asks the new address)', async () => {
    const { writeFile } = await import('node:fs/promises');
    const oldListen = `listen = "127.0.0.1:${world.adminPort}"`;
    assert.ok(toml.includes(oldListen));
    const newPort = await freePort();
    await writeFile(world.configFile, toml.replace(oldListen, `listen = "127.0.0.1:${newPort}"`));
    try {
      const moved = await cli('reload', '--config', world.configFile);
      assert.equal(moved.code, 0, moved.stderr);
      assert.match(moved.stdout, /^reloaded: generation 4/);
      const res = await request(`http://127.0.0.1:${newPort}/healthz`);
      assert.equal(res.status, 200);
    } finally {
      // Back where the other tests expect it, confirmed the same way.
      await writeFile(world.configFile, toml);
    }
    const back = await cli('reload', '--config', world.configFile);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, /^reloaded: generation 5/);
    assert.equal((await daemon.admin('/healthz')).status, 200);
  });

  test('m2gw reload where no admin listener answers says so after 10 s and leaves the verdict to the log', async () => {
    const nobody = await freePort();
    const started = Date.now();
    const out = await cli('reload', '--pid-file', world.pidFile, '--admin', `127.0.0.1:${nobody}`);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`^sent SIGHUP to m2gw \\(pid ${daemon.pid}\\), but could not ask whether the new config was applied \\(cannot reach the admin listener at http://127\\.0\\.0\\.1:${nobody}/status: ECONNREFUSED`));
    assert.ok(Date.now() - started >= 10_000, 'it waited for the listener');
    // The signal was sent all the same: the daemon reloaded.
    await waitFor(async () => (await daemon.status()).generation === 6, 15_000, 50, 'generation 6');
  });

  test('m2gw stop drains and waits for the exit; afterwards status says it cannot reach it', async () => {
    const out = await cli('stop', '--config', world.configFile);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`m2gw \\(pid ${daemon.pid}\\) stopped`));
    assert.equal((await daemon.exited).code, 0);
    const status = await cli('status', '--config', world.configFile);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /cannot reach the admin listener/);
    const again = await cli('stop', '--config', world.configFile);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /no pid file at .*is m2gw running/);
  });
});
