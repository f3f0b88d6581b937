/**
 * Starts a real Mongrel2 1.12 (Debian `mongrel2` + `m2sh`) for one test, in its own
 * temp dir with its own ports and server uuid, so instances can run side by side.
 *
 * Behaviour of the real binaries this relies on (checked on 1.12.2, Debian 12):
 * - `m2sh load` exits 0 even when the .conf does not parse; errors only show as
 *   `[ERROR]` lines on stderr, so those are treated as failure here. It does not
 *   unescape strings (`"it\"s"` is stored with the backslash), so quotes and
 *   backslashes in values are refused. Without LOGNAME it logs a getlogin error.
 * - As root, mongrel2 chroots into `chroot="./"` (the cwd) and keeps the uid/gid of
 *   the dir's owner. As non-root it logs "Couldn't chroot to ./, assuming running
 *   in test mode" and carries on unchrooted: then `upload.temp_store` is a host path
 *   and error_log goes to stderr. `chrooted`/`chroot`/`hostPath` hide the difference.
 * - `run/` and `logs/` must exist: a missing `run/` (pid file) or `logs/` (error
 *   log) makes it exit 1 at startup. The control socket is `ipc://run/control`
 *   (relative to the chroot, so per-instance); it is left behind after exit.
 * - A pid file naming a live process makes it refuse to start; one naming a dead
 *   process is removed. SIGTERM/SIGINT remove the pid file, SIGKILL leaves it.
 * - Dir `base` must end in "/": without it the route is dropped with only an error
 *   in error.log and every request 404s. base is chroot-relative.
 * - HTTP port taken: exits 1 within ~20 ms ("Can't announce on TCP port").
 *   Handler (ZeroMQ) port taken: keeps serving HTTP but retries the bind 10 times,
 *   1 s apart, then that handler's task dies, so readiness here means "this pid
 *   listens on the HTTP port and on every tcp:// handler port", read from /proc.
 * - Spawn to all ports bound: ~45 ms; the HTTP listener and the handler sockets are
 *   bound within the same millisecond. A request that reaches a handler route before
 *   any handler has connected is queued in the PUSH socket and delivered on connect.
 * - SIGTERM (and SIGINT) close the HTTP listener and client connections at once; the
 *   process exits in ~5 ms if no connection was ever open, else after ~500 ms (a
 *   500 ms poll in the main task). SIGQUIT is ignored. run/control is left behind.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, freePorts, listeningPortsOf } from './ports.js';
import { canConnect, sleep } from './wait.js';

const execFileP = promisify(execFile);

export interface M2HandlerSpec {
  name: string;
  sendSpec: string;
  recvSpec: string;
  /** Default: a fresh random UUID (it is the sender id on every request message). */
  sendIdent?: string;
  /** SUB subscription prefix; default '' (accept every reply). */
  recvIdent?: string;
  protocol?: 'json' | 'tnetstring';
}

export interface M2RouteSpec {
  /** Route pattern (a prefix, e.g. '/app/'). */
  path: string;
  /** Name of an entry in `handlers`. */
  handler?: string;
  proxy?: { addr: string; port: number };
  /** base is relative to the chroot (the instance dir); a trailing '/' is added if missing. */
  dir?: { base: string; index?: string; defaultCtype?: string };
}

export interface StartMongrel2Options {
  handlers: M2HandlerSpec[];
  routes: M2RouteSpec[];
  /** Merged over the defaults below; numbers are written bare, strings quoted. */
  settings?: Record<string, string | number>;
  /** HTTP port; default a free one (re-picked if another process grabs it first). */
  port?: number;
  /** Host name for the routes; also default_host, so any Host header routes here. */
  hostName?: string;
  /** Files to create inside the chroot before starting (path relative to it). */
  files?: Record<string, string | Buffer>;
  /** How long to wait for every port to be bound (default 10 s). */
  startTimeoutMs?: number;
  /** Keep the temp dir after stop() (also: env M2_KEEP_DIRS=1). */
  keepDir?: boolean;
  /** Run mongrel2 inside this network namespace (`ip netns exec`; root only). */
  netns?: string;
  /** Address of the HTTP listener (bind_addr); default 127.0.0.1. */
  bindAddr?: string;
}

export interface ResolvedHandler {
  name: string;
  sendSpec: string;
  recvSpec: string;
  sendIdent: string;
  recvIdent: string;
  protocol: 'json' | 'tnetstring';
}

export interface Mongrel2Instance {
  port: number;
  url: string;
  /** The instance dir (absolute); Mongrel2's chroot when running as root. */
  dir: string;
  uuid: string;
  pid: number;
  /** False when not root: mongrel2 then runs unchrooted ("test mode"). */
  chrooted: boolean;
  /** What to prefix Mongrel2-reported paths (upload temp files) with: `dir` or '/'. */
  chroot: string;
  handlers: ResolvedHandler[];
  /** Host path of a path as Mongrel2 reports it (e.g. x-mongrel2-upload-start). */
  hostPath(m2Path: string): string;
  /** SIGTERM, SIGKILL after 2 s, then remove the dir. Idempotent. */
  stop(): Promise<void>;
  /** stdout/stderr of the process plus logs/error.log (still available after stop). */
  logs(): Promise<string>;
}

export const DEFAULT_SETTINGS: Readonly<Record<string, string | number>> = {
  'server.daemonize': 0,
  'upload.temp_store': '/tmp/upload.XXXXXX',
  'upload.temp_store_mode': '0666',
  'limits.content_length': 20480,
  'download.flow_control': 1,
};

const MONGREL2_BIN = process.env['MONGREL2_BIN'] ?? 'mongrel2';
const M2SH_BIN = process.env['M2SH_BIN'] ?? 'm2sh';
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
const STOP_GRACE_MS = 2000;
const OUTPUT_CAP = 1 << 20;

/** `n` pairs of tcp://127.0.0.1:<free> endpoints for Handler send/recv specs. */
export async function allocHandlerSpecs(n = 1): Promise<{ sendSpec: string; recvSpec: string }[]> {
  const ports = await freePorts(2 * n);
  const out: { sendSpec: string; recvSpec: string }[] = [];
  for (let i = 0; i < n; i++) {
    out.push({ sendSpec: `tcp://127.0.0.1:${ports[2 * i]}`, recvSpec: `tcp://127.0.0.1:${ports[2 * i + 1]}` });
  }
  return out;
}

export async function startMongrel2(opts: StartMongrel2Options): Promise<Mongrel2Instance> {
  const chrooted = process.getuid?.() === 0;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'm2-harness-'));
  try {
    for (const sub of ['run', 'logs', 'tmp']) await fsp.mkdir(path.join(dir, sub));
    for (const [rel, content] of Object.entries(opts.files ?? {})) {
      const file = path.join(dir, rel);
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.writeFile(file, content);
    }
    for (const r of opts.routes) if (r.dir) await fsp.mkdir(path.join(dir, r.dir.base), { recursive: true });
    const handlers = opts.handlers.map(resolveHandler);
    const uuid = `m2test-${randomUUID()}`;
    // Unchrooted, "/tmp/..." would be the shared host /tmp; keep uploads in this instance.
    const settings = { ...DEFAULT_SETTINGS, ...(chrooted ? {} : { 'upload.temp_store': path.join(dir, 'tmp/upload.XXXXXX') }), ...opts.settings };
    const attempts = opts.port === undefined ? 3 : 1;
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await freePort());
      const conf = renderConf({ uuid, port, hostName: opts.hostName ?? 'localhost', handlers, routes: opts.routes, settings, bindAddr: opts.bindAddr ?? '127.0.0.1' });
      await fsp.writeFile(path.join(dir, 'mongrel2.conf'), conf);
      await fsp.rm(path.join(dir, 'config.sqlite'), { force: true });
      // A leftover pid file naming a (recycled) live pid would make mongrel2 refuse to start.
      await fsp.rm(path.join(dir, 'run/mongrel2.pid'), { force: true });
      await m2shLoad(dir);
      const started = await spawnAndWait(dir, uuid, port, handlers, opts.startTimeoutMs ?? 10_000, opts.netns);
      if ('instance' in started) {
        return makeInstance({ dir, uuid, port, handlers, chrooted, keepDir: opts.keepDir ?? process.env['M2_KEEP_DIRS'] === '1', bindAddr: opts.bindAddr ?? '127.0.0.1', ...started.instance });
      }
      // Another process took the port we picked (it said so, or it never got to listen: once
      // on a loaded CI run, the handler sockets bound and the HTTP port not within 10 s).
      const portTaken = /Can't announce on TCP port/.test(started.output) || started.reason.includes('not all bound');
      if (!portTaken || attempt >= attempts) throw new Error(`mongrel2 did not start: ${started.reason}\n${started.output}`);
    }
  } catch (err) {
    if (process.env['M2_KEEP_DIRS'] !== '1') await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Runs mongrel2 on a config.sqlite someone else wrote into `dir` (e.g. `m2gw init` + m2sh
 * load), instead of one rendered here. The dir is the caller's: stop() leaves it.
 */
export async function runMongrel2InDir(dir: string, uuid: string, port: number, handlers: M2HandlerSpec[]): Promise<Mongrel2Instance> {
  const resolved = handlers.map(resolveHandler);
  const started = await spawnAndWait(dir, uuid, port, resolved, 10_000);
  if (!('instance' in started)) throw new Error(`mongrel2 did not start: ${started.reason}\n${started.output}`);
  return makeInstance({ dir, uuid, port, handlers: resolved, chrooted: process.getuid?.() === 0, keepDir: true, bindAddr: '127.0.0.1', ...started.instance });
}

function resolveHandler(h: M2HandlerSpec): ResolvedHandler {
  return {
    name: h.name,
    sendSpec: h.sendSpec,
    recvSpec: h.recvSpec,
    sendIdent: h.sendIdent ?? randomUUID(),
    recvIdent: h.recvIdent ?? '',
    protocol: h.protocol ?? 'json',
  };
}

/** A .conf string literal. m2sh does not unescape, so characters needing escapes are refused. */
function lit(value: string): string {
  if (/["\\\n\r]/.test(value)) throw new Error(`mongrel2 conf: value ${JSON.stringify(value)} cannot be written (m2sh has no escapes)`);
  return `"${value}"`;
}

interface ConfInput {
  uuid: string;
  port: number;
  hostName: string;
  handlers: ResolvedHandler[];
  routes: M2RouteSpec[];
  settings: Record<string, string | number>;
  bindAddr?: string;
}

export function renderConf(c: ConfInput): string {
  const varOf = new Map<string, string>();
  const lines: string[] = [];
  c.handlers.forEach((h, i) => {
    if (varOf.has(h.name)) throw new Error(`duplicate handler name ${h.name}`);
    varOf.set(h.name, `handler_${i}`);
    lines.push(
      `handler_${i} = Handler(send_spec=${lit(h.sendSpec)}, send_ident=${lit(h.sendIdent)}, ` +
        `recv_spec=${lit(h.recvSpec)}, recv_ident=${lit(h.recvIdent)}, protocol=${lit(h.protocol)})`,
    );
  });
  const routes = c.routes.map((r) => {
    const kinds = [r.handler !== undefined, r.proxy !== undefined, r.dir !== undefined].filter(Boolean).length;
    if (kinds !== 1) throw new Error(`route ${r.path}: give exactly one of handler, proxy, dir`);
    let target: string;
    if (r.handler !== undefined) {
      const v = varOf.get(r.handler);
      if (!v) throw new Error(`route ${r.path}: unknown handler ${r.handler}`);
      target = v;
    } else if (r.proxy) {
      target = `Proxy(addr=${lit(r.proxy.addr)}, port=${r.proxy.port})`;
    } else {
      const d = r.dir!;
      // Without the trailing slash Mongrel2 drops the route (404s) and only logs it.
      const base = d.base.endsWith('/') ? d.base : `${d.base}/`;
      target = `Dir(base=${lit(base)}, index_file=${lit(d.index ?? 'index.html')}, default_ctype=${lit(d.defaultCtype ?? 'text/plain')})`;
    }
    return `    ${lit(r.path)}: ${target}`;
  });
  lines.push(
    `main = Server(uuid=${lit(c.uuid)}, access_log="/logs/access.log", error_log="/logs/error.log",`,
    `  chroot="./", pid_file="/run/mongrel2.pid", default_host=${lit(c.hostName)}, name="main",`,
    `  bind_addr=${lit(c.bindAddr ?? '127.0.0.1')}, port=${c.port},`,
    `  hosts=[Host(name=${lit(c.hostName)}, routes={`,
    routes.join(',\n'),
    `  })])`,
  );
  const settings = Object.entries(c.settings).map(([k, v]) => `    ${lit(k)}: ${typeof v === 'number' ? String(v) : lit(v)}`);
  lines.push('settings = {', settings.join(',\n'), '}', 'servers = [main]', '');
  return lines.join('\n');
}

/** `m2sh load -config mongrel2.conf -db config.sqlite` in `dir`; m2sh's [ERROR] lines are a failure. */
export async function m2shLoad(dir: string): Promise<void> {
  const env = { ...process.env, LOGNAME: process.env['LOGNAME'] ?? os.userInfo().username };
  let out: { stdout: string; stderr: string };
  try {
    out = await execFileP(M2SH_BIN, ['load', '-config', 'mongrel2.conf', '-db', 'config.sqlite'], { cwd: dir, env });
  } catch (err) {
    throw new Error(`m2sh load failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  // m2sh exits 0 even on a parse error.
  const text = out.stdout + out.stderr;
  if (/\[ERROR\]/.test(text)) {
    const conf = await fsp.readFile(path.join(dir, 'mongrel2.conf'), 'utf8');
    throw new Error(`m2sh load reported errors:\n${text}\n--- mongrel2.conf ---\n${conf}`);
  }
}

/** tcp ports of handler specs that live on this host (the ones mongrel2 must bind). */
function handlerPorts(handlers: ResolvedHandler[]): number[] {
  const ports: number[] = [];
  for (const h of handlers) {
    for (const spec of [h.sendSpec, h.recvSpec]) {
      const m = /^tcp:\/\/(?:\d+\.\d+\.\d+\.\d+|localhost|\*):(\d+)$/.exec(spec);
      if (m) ports.push(Number(m[1]));
    }
  }
  return ports;
}

interface Spawned {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

type SpawnResult = { instance: Spawned } | { reason: string; output: string };

async function spawnAndWait(dir: string, uuid: string, port: number, handlers: ResolvedHandler[], timeoutMs: number, netns?: string): Promise<SpawnResult> {
  // setpriv --pdeathsig: mongrel2 dies with the test process even if that is SIGKILLed
  // (the 'exit' hook below only covers a normal exit).
  const [bin, binArgs] = SETPRIV
    ? [SETPRIV, ['--pdeathsig', 'KILL', MONGREL2_BIN, 'config.sqlite', uuid]]
    : [MONGREL2_BIN, ['config.sqlite', uuid]];
  // `ip netns exec` execs the command in place: the pid stays mongrel2's (its /proc/net is the namespace's).
  const [cmd, args] = netns === undefined ? [bin, binArgs] : ['ip', ['netns', 'exec', netns, bin, ...binArgs]];
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  let size = 0;
  const collect = (b: Buffer): void => {
    if (size >= OUTPUT_CAP) return;
    chunks.push(b);
    size += b.length;
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const output = (): string => Buffer.concat(chunks).toString('utf8');
  const state: { exit: string | null; error: Error | null } = { exit: null, error: null };
  const exited = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      state.error = err;
      resolve();
    });
    child.once('exit', (code, signal) => {
      state.exit = `exited with ${signal ?? `code ${code}`}`;
      resolve();
    });
  });
  const wanted = [port, ...handlerPorts(handlers)];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (state.error) return { reason: `spawn ${MONGREL2_BIN}: ${state.error.message}`, output: output() };
    if (state.exit !== null) return { reason: state.exit, output: output() + (await errorLog(dir)) };
    if (child.pid !== undefined && (await allBound(child.pid, wanted))) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      return { reason: `ports ${wanted.join(', ')} not all bound within ${timeoutMs} ms`, output: output() + (await errorLog(dir)) };
    }
    await sleep(10);
  }
  return { instance: { child, output, exited } };
}

async function allBound(pid: number, ports: number[]): Promise<boolean> {
  const bound = await listeningPortsOf(pid);
  if (bound) return ports.every((p) => bound.has(p));
  // Without /proc we cannot tell whose socket it is; a connection is the best we have.
  for (const p of ports) if (!(await canConnect('127.0.0.1', p, 200))) return false;
  return true;
}

async function errorLog(dir: string): Promise<string> {
  try {
    return `\n--- logs/error.log ---\n${await fsp.readFile(path.join(dir, 'logs/error.log'), 'utf8')}`;
  } catch {
    return '';
  }
}

interface MakeInstanceInput extends Spawned {
  dir: string;
  uuid: string;
  port: number;
  handlers: ResolvedHandler[];
  chrooted: boolean;
  keepDir: boolean;
  bindAddr: string;
}

/** Instances still running, killed if the test process exits without stopping them. */
const live = new Set<{ child: ChildProcess; dir: string; keepDir: boolean }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const l of live) {
      l.child.kill('SIGKILL');
      if (!l.keepDir) fs.rmSync(l.dir, { recursive: true, force: true });
    }
  });
}

function makeInstance(m: MakeInstanceInput): Mongrel2Instance {
  const entry = { child: m.child, dir: m.dir, keepDir: m.keepDir };
  live.add(entry);
  installExitHook();
  // A test that forgets stop() should not keep its test process alive; the exit hook kills it.
  m.child.unref();
  for (const s of [m.child.stdout, m.child.stderr]) if (s && 'unref' in s && typeof s.unref === 'function') s.unref();
  let savedErrorLog: string | null = null;
  let stopping: Promise<void> | null = null;
  const stop = async (): Promise<void> => {
    if (m.child.exitCode === null && m.child.signalCode === null) {
      m.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS)));
      const outcome = await Promise.race([m.exited.then(() => 'exited' as const), grace]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        m.child.kill('SIGKILL');
        await m.exited;
      }
    }
    savedErrorLog = await errorLog(m.dir);
    live.delete(entry);
    if (!m.keepDir) await fsp.rm(m.dir, { recursive: true, force: true });
  };
  return {
    port: m.port,
    url: `http://${m.bindAddr}:${m.port}`,
    dir: m.dir,
    uuid: m.uuid,
    pid: m.child.pid!,
    chrooted: m.chrooted,
    chroot: m.chrooted ? m.dir : '/',
    handlers: m.handlers,
    hostPath: (p) => (m.chrooted || !path.isAbsolute(p) ? path.join(m.dir, p) : p),
    stop: () => (stopping ??= stop()),
    logs: async () => `--- mongrel2 stdout/stderr ---\n${m.output()}${savedErrorLog ?? (await errorLog(m.dir))}`,
  };
}
