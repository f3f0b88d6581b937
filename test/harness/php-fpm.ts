/**
 * A private PHP-FPM for tests: its own temp dir, config, pool and port (or unix socket), so
 * tests never depend on a system PHP-FPM or on fixed ports. Importing this module has no side
 * effects (node --test runs every file under test/).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface PhpFpmOptions {
  /** pm.max_children (default 4). */
  maxChildren?: number;
  /** Process manager (default 'static'). */
  pm?: 'static' | 'ondemand';
  /** pm.max_requests: a child exits after this many requests (default 0, never). */
  maxRequests?: number;
  /** Listen on TCP 127.0.0.1:<free port> (default) or on a unix socket in the temp dir. */
  listen?: 'tcp' | 'unix';
  /** Extra php_admin_value[...] settings. */
  phpAdminValues?: Record<string, string>;
  /** Keep the temp dir after stop() (for debugging). */
  keepDir?: boolean;
}

export interface PhpFpm {
  /** In m2gw's config form: "127.0.0.1:<port>" or "unix:/path". */
  readonly address: string;
  readonly pid: number;
  readonly dir: string;
  /** The master's error_log (worker output lands here too: catch_workers_output). */
  readonly errorLog: string;
  /** PIDs of the worker processes right now. */
  childPids(): number[];
  /** SIGQUIT (graceful), SIGKILL to master and workers after 3 s. Idempotent. */
  stop(): Promise<void>;
}

/** The php-fpm binary: $PHP_FPM_BIN, php-fpm8.2 / php-fpm on PATH, or /usr/sbin/php-fpm*. */
export function findPhpFpm(): string | null {
  const env = process.env['PHP_FPM_BIN'];
  if (env && fs.existsSync(env)) return env;
  const dirs = (process.env['PATH'] ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin']);
  for (const name of ['php-fpm8.2', 'php-fpm']) {
    for (const d of dirs) {
      const p = path.join(d, name);
      if (d !== '' && isExecutable(p)) return p;
    }
  }
  for (const d of ['/usr/sbin', '/usr/local/sbin']) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(d).filter((n) => /^php-fpm[\d.]*$/.test(n)).sort().reverse();
    } catch {
      continue;
    }
    for (const n of names) if (isExecutable(path.join(d, n))) return path.join(d, n);
  }
  return null;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** A TCP port that was free a moment ago (listen on 0, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function startPhpFpm(opts: PhpFpmOptions = {}): Promise<PhpFpm> {
  const bin = findPhpFpm();
  if (bin === null) throw new Error('php-fpm not found (install php-fpm or set PHP_FPM_BIN)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-fpm-'));
  const errorLog = path.join(dir, 'php-fpm.log');
  const isRoot = process.getuid?.() === 0;
  let listen: string;
  let address: string;
  if (opts.listen === 'unix') {
    listen = path.join(dir, 'php-fpm.sock');
    address = `unix:${listen}`;
  } else {
    const port = await freePort();
    listen = `127.0.0.1:${port}`;
    address = listen;
  }
  const pm = opts.pm ?? 'static';
  const lines = [
    '[global]',
    `pid = ${path.join(dir, 'php-fpm.pid')}`,
    `error_log = ${errorLog}`,
    'log_level = notice',
    'daemonize = no',
    'process_control_timeout = 2s',
    '',
    '[m2gwtest]',
    ...(isRoot ? ['user = root', 'group = root'] : []),
    `listen = ${listen}`,
    'listen.backlog = 511',
    ...(opts.listen === 'unix' ? ['listen.mode = 0666'] : []),
    `pm = ${pm}`,
    `pm.max_children = ${opts.maxChildren ?? 4}`,
    ...(pm === 'ondemand' ? ['pm.process_idle_timeout = 10s'] : []),
    `pm.max_requests = ${opts.maxRequests ?? 0}`,
    'catch_workers_output = yes',
    'decorate_workers_output = no',
    'clear_env = no',
    'php_admin_value[display_errors] = Off',
    'php_admin_value[log_errors] = On',
    ...Object.entries(opts.phpAdminValues ?? {}).map(([k, v]) => `php_admin_value[${k}] = ${v}`),
    '',
  ];
  const conf = path.join(dir, 'php-fpm.conf');
  fs.writeFileSync(conf, lines.join('\n'));

  const args = ['-F', '-y', conf];
  if (isRoot) args.push('-R');
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer): void => {
    if (output.length < 16_384) output += b.toString('utf8');
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  try {
    await waitAccepting(address, child, 10_000);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    const log = fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : '';
    if (!opts.keepDir) fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`php-fpm did not start: ${(err as Error).message}\n${output}\n${log}`);
  }

  const pid = child.pid!;
  let stopping: Promise<void> | null = null;
  return {
    address,
    pid,
    dir,
    errorLog,
    childPids: () => childrenOf(pid),
    stop: () => (stopping ??= stop(child, exited, dir, opts.keepDir ?? false)),
  };
}

async function stop(child: ChildProcess, exited: Promise<void>, dir: string, keepDir: boolean): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const workers = childrenOf(child.pid!);
    child.kill('SIGQUIT');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3000).unref());
    if ((await Promise.race([exited, timer])) === 'timeout') {
      for (const p of [...workers, ...childrenOf(child.pid!)]) killQuietly(p);
      child.kill('SIGKILL');
      await exited;
    }
  }
  if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/** PIDs whose parent is `ppid` (from /proc). */
export function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      // Field 4 (ppid) follows the ")" that closes the command name.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(e));
    } catch {
      // The process went away meanwhile.
    }
  }
  return out;
}

async function waitAccepting(address: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`php-fpm exited (${child.exitCode ?? child.signalCode})`);
    if (await canConnect(address)) return;
    if (Date.now() > deadline) throw new Error(`${address} not accepting after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function canConnect(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = address.startsWith('unix:')
      ? net.connect({ path: address.slice('unix:'.length) })
      : net.connect({ host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)) });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/**
 * Writes `request` (raw FastCGI records) to `address` and returns every byte that comes back
 * until the peer closes (send the last request without FCGI_KEEP_CONN) or `timeoutMs` passes.
 * For recording PHP-FPM's real byte stream and for protocol experiments.
 */
export function rawFastcgiExchange(address: string, request: Buffer | Buffer[], timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = address.startsWith('unix:')
      ? net.connect({ path: address.slice('unix:'.length) })
      : net.connect({ host: address.slice(0, address.lastIndexOf(':')), port: Number(address.slice(address.lastIndexOf(':') + 1)) });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no close from ${address} within ${timeoutMs} ms (${Buffer.concat(chunks).length} bytes so far)`));
    }, timeoutMs);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('end', () => {
      clearTimeout(timer);
      sock.end();
      resolve(Buffer.concat(chunks));
    });
    for (const b of Array.isArray(request) ? request : [request]) sock.write(b);
  });
}
