/**
 * The "where the time goes" table of bench/README.md: a worker's and a supervisor's
 * --cpu-prof profiles split into the components a request crosses, "by owner" (a socket
 * write is charged to the code that made it), and scaled to the bench's CPU column.
 *
 * Usage: node dist/bench/profile-components.js <prof-dir> <worker µs/req> <supervisor µs/req>
 * (the µs from the same run's table: the worker's is the m2gw column less m2gw.sup). The
 * busiest profile in the directory is taken as the worker, the next as the supervisor.
 */
import fs from 'node:fs';
import path from 'node:path';
import { summarize } from './profile-summary.js';

type Owner = (owner: string) => boolean;

const OTHER = 'event loop, socket reads, runtime, start-up, other';

const COMPONENTS: ReadonlyArray<readonly [string, Owner]> = [
  ['upstream: HTTP client (the direct one; before: undici), request write, response read', (o) => o === 'npm:undici' || o.startsWith('m2gw:upstream/')],
  ['Mongrel2 receive and send (ZMTP, reply framing)', (o) => o.startsWith('m2gw:zmq/') || o === 'm2gw:mongrel2/reply'],
  ['access log', (o) => o === 'm2gw:log' || o === 'm2gw:log-file' || o.startsWith('npm:winston') || o === 'npm:logform' || o === 'm2gw:gateway/request-log' || o === 'npm:readable-stream' || o === 'npm:safe-stable-stringify'],
  ['parse (request, lenient JSON, credits)', (o) => o === 'm2gw:mongrel2/request' || o === 'm2gw:mongrel2/lenient-json' || o === 'm2gw:mongrel2/tnetstring'],
  ['response head, framing, flow control', (o) => ['m2gw:gateway/response-writer', 'm2gw:mongrel2/http-head', 'm2gw:gateway/client-connection', 'm2gw:gateway/upstream-head'].includes(o)],
  ['gateway: route, headers, request id, connection table', (o) => ['m2gw:gateway/gateway', 'm2gw:gateway/request-builder', 'm2gw:gateway/router', 'm2gw:gateway/connections', 'm2gw:gateway/pipeline'].includes(o)],
  ['metrics', (o) => o === 'npm:prom-client' || o.startsWith('m2gw:metrics/')],
  ['channel to the worker / lent PULL bookkeeping', (o) => ['m2gw:process/channel', 'm2gw:process/worker-handle', 'm2gw:process/pull-borrower', 'm2gw:process/pull-lending', 'm2gw:process/ownership-reporter'].includes(o)],
  ['routing by connection', (o) => o === 'm2gw:process/connection-owners' || o === 'm2gw:process/live-handlers'],
  ['GC', (o) => o === '(gc)'],
];

function main(argv: string[]): void {
  const [dir, workerUs, supervisorUs] = argv;
  if (!dir || workerUs === undefined || supervisorUs === undefined) {
    console.error('usage: node dist/bench/profile-components.js <prof-dir> <worker µs/req> <supervisor µs/req>');
    process.exit(2);
  }
  const files = fs
    .readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(dir, f));
  const summaries = files.map((f) => summarize(f, 2000)).sort((a, b) => b.busyMs - a.busyMs);
  const scale = [Number(workerUs), Number(supervisorUs)];
  for (const [i, s] of summaries.slice(0, 2).entries()) {
    const owners = s.byOwner.filter(([o]) => !o.startsWith('(idle'));
    const total = owners.reduce((n, [, ms]) => n + ms, 0);
    const split = new Map<string, number>([...COMPONENTS.map(([c]) => [c, 0] as [string, number]), [OTHER, 0]]);
    for (const [owner, ms] of owners) {
      const c = COMPONENTS.find(([, f]) => f(owner))?.[0] ?? OTHER;
      split.set(c, split.get(c)! + ms);
    }
    console.log(`${i === 0 ? 'worker' : 'supervisor'}: ${path.basename(s.file)}, busy ${s.busyMs} ms, scaled to ${scale[i]} µs per request`);
    for (const [c, ms] of split) if (ms > 0) console.log(`  ${c.padEnd(58)} ${((scale[i]! * ms) / total).toFixed(1).padStart(6)} µs  ${((100 * ms) / total).toFixed(1)}%`);
  }
}

main(process.argv.slice(2));
