/**
 * Reproduces a Mongrel2 1.12 behaviour that can leave a restarted handler waiting for ever:
 * a handler restarted while requests for its route keep arriving sometimes never receives
 * the SUB subscription on its PUB socket, until some PULL connects to the send_spec.
 * m2gw connects its PULL only once subscribed, so it then never becomes ready.
 *
 * Restarts the trivial handler (same socket handling as m2gw: XPUB, PULL after the
 * subscription) up to N times under load, with requests sent before it is ready, and
 * reports the first restart that got no subscription within 5 s.
 *
 * Usage: node dist/bench/repro-resubscribe.js [restarts=30]
 */
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { BENCH_DIST } from './lib/paths.js';
import { ProcessGroup, waitForLine } from './lib/procs.js';
import { startApp, startWorld } from './lib/world.js';

async function main(): Promise<number> {
  const restarts = Number(process.argv[2] ?? '30');
  const group = new ProcessGroup();
  process.on('SIGINT', () => void group.stopAll().finally(() => process.exit(130)));
  try {
    const app = await startApp(group);
    const world = await startWorld(group, app, true, 128 * 1024);
    const spec = world.m2.handlers.get('/gw/')!;
    for (let i = 1; i <= restarts; i++) {
      // Requests that reach Mongrel2 while no handler is connected to the route.
      for (let k = 0; k < 3; k++) spawn('curl', ['-s', '-m', '10', '-o', '/dev/null', `${world.base}/gw/hello`], { stdio: 'ignore' });
      const h = group.spawn(`handler-${i}`, process.execPath, [path.join(BENCH_DIST, 'trivial-handler.js'), '--send-spec', spec.sendSpec, '--recv-spec', spec.recvSpec]);
      const ready = await waitForLine(h, (l) => (l.trim() === 'ready' ? true : undefined), 5000).catch(() => false);
      if (!ready) {
        process.stdout.write(`restart ${i}: no subscription from Mongrel2 within 5 s — reproduced\n`);
        await h.stop('SIGKILL');
        return 1;
      }
      execFileSync('wrk', ['-t2', '-c50', '-d1s', `${world.base}/gw/hello`], { stdio: 'ignore' });
      await h.stop();
      process.stdout.write(`restart ${i}: ok\n`);
    }
    process.stdout.write(`not reproduced in ${restarts} restarts\n`);
    return 0;
  } finally {
    await group.stopAll();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
