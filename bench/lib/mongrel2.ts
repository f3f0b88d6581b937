/**
 * A private Mongrel2 for the bench: handler routes (m2gw, the trivial handler) and a
 * Proxy route in one server, so every variant goes through the same Mongrel2 process.
 * (test/harness/mongrel2.ts starts Mongrel2 for the tests; the bench needs Proxy routes
 * and per-run settings, so it writes its own small .conf here.)
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../test/harness/ports.js';
import { waitForTcp } from '../../test/harness/wait.js';
import type { Managed, ProcessGroup } from './procs.js';

const run = promisify(execFile);

export interface HandlerSpec {
  readonly sendSpec: string;
  readonly recvSpec: string;
}

export interface Mongrel2Options {
  /** Route prefix → handler (sockets allocated here) or proxy target. */
  readonly handlers: readonly string[];
  readonly proxies: Readonly<Record<string, number>>;
  readonly settings: Readonly<Record<string, string | number>>;
}

export interface Mongrel2 {
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  /** Handler sockets by route prefix. */
  readonly handlers: ReadonlyMap<string, HandlerSpec>;
  stop(): Promise<void>;
}

export async function startMongrel2(group: ProcessGroup, opts: Mongrel2Options): Promise<Mongrel2> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-bench-m2-'));
  group.defer('mongrel2-dir', () => fs.rmSync(dir, { recursive: true, force: true }));
  for (const d of ['run', 'logs', 'tmp']) fs.mkdirSync(path.join(dir, d));
  const port = await freePort();
  const handlers = new Map<string, HandlerSpec>();
  const decls: string[] = [];
  const routes: string[] = [];
  let n = 0;
  for (const prefix of opts.handlers) {
    const [send, recv] = [await freePort(), await freePort()];
    const spec = { sendSpec: `tcp://127.0.0.1:${send}`, recvSpec: `tcp://127.0.0.1:${recv}` };
    handlers.set(prefix, spec);
    decls.push(
      `h${n} = Handler(send_spec='${spec.sendSpec}', send_ident='bench-${process.pid}-h${n}', recv_spec='${spec.recvSpec}', recv_ident='')`,
    );
    routes.push(`'${prefix}': h${n}`);
    n++;
  }
  for (const [prefix, appPort] of Object.entries(opts.proxies)) {
    decls.push(`p${n} = Proxy(addr='127.0.0.1', port=${appPort})`);
    routes.push(`'${prefix}': p${n}`);
    n++;
  }
  const settings = Object.entries(opts.settings)
    .map(([k, v]) => `  "${k}": ${typeof v === 'number' ? String(v) : `"${v}"`}`)
    .join(',\n');
  const uuid = `bench-m2-${process.pid}-${port}`;
  const conf = `
${decls.join('\n')}

main = Server(
  uuid="${uuid}",
  access_log="/logs/access.log",
  error_log="/logs/error.log",
  chroot="./",
  pid_file="/run/mongrel2.pid",
  default_host="localhost",
  name="main",
  bind_addr="127.0.0.1",
  port=${port},
  hosts=[Host(name="localhost", routes={
    ${routes.join(',\n    ')}
  })]
)

settings = {
${settings}
}

servers = [main]
`;
  fs.writeFileSync(path.join(dir, 'mongrel2.conf'), conf);
  // m2sh wants a login name for its log line; an empty environment makes it complain.
  const env = { ...process.env, LOGNAME: process.env['LOGNAME'] ?? 'bench', USER: process.env['USER'] ?? 'bench' };
  try {
    await run('m2sh', ['load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'], { cwd: dir, env });
  } catch (err) {
    throw new Error(`m2sh load failed: ${(err as Error).message}\n${conf}`);
  }
  const proc: Managed = group.spawn('mongrel2', 'mongrel2', ['config.sqlite', uuid], { cwd: dir, env, logFile: path.join(dir, 'stdout.log') });
  try {
    await waitForTcp('127.0.0.1', port, 15_000);
  } catch (err) {
    const log = path.join(dir, 'logs', 'error.log');
    throw new Error(`mongrel2 did not start: ${(err as Error).message}\n${proc.tail()}\n${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
  }
  return { port, dir, pid: proc.pid, handlers, stop: () => proc.stop('SIGTERM', 3000) };
}
