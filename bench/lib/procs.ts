/**
 * Every process and temp dir the bench creates is registered here, so one call stops
 * them all: at the end, on an error, and on Ctrl-C. Cleanups run newest first (a
 * front end stops before the upstream it talks to).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import { processTree } from './proc-stats.js';

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last few KiB of stderr+stdout that were not consumed by a reader (for error messages). */
  tail(): string;
  /** SIGTERM (or `signal`), SIGKILL after `graceMs`. Idempotent. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  readonly exited: Promise<void>;
}

interface Cleanup {
  readonly name: string;
  readonly fn: () => Promise<void>;
}

export class ProcessGroup {
  private cleanups: Cleanup[] = [];
  private stopping: Promise<void> | null = null;

  /** Spawn and register. stdout/stderr are piped; `onLine` sees stdout lines (e.g. "ready"). */
  spawn(name: string, cmd: string, args: readonly string[], opts: SpawnOptions & { logFile?: string } = {}): Managed {
    const { logFile, ...spawnOpts } = opts;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
    if (child.pid === undefined) throw new Error(`${name}: spawn ${cmd} failed`);
    const pid = child.pid;
    let tail = '';
    const log = logFile ? fs.createWriteStream(logFile, { flags: 'a' }) : null;
    const keep = (b: Buffer): void => {
      tail = (tail + b.toString('utf8')).slice(-8192);
      log?.write(b);
    };
    child.stderr?.on('data', keep);
    child.stdout?.on('data', keep);
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        log?.end();
        resolve();
      });
      child.once('error', () => resolve());
    });
    let stopped: Promise<void> | null = null;
    const managed: Managed = {
      name,
      child,
      pid,
      exited,
      tail: () => tail,
      stop: (signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000) => (stopped ??= stopChild(child, exited, signal, graceMs)),
    };
    this.defer(name, () => managed.stop());
    return managed;
  }

  /** Register any cleanup (a harness's stop(), a temp dir removal). */
  defer(name: string, fn: () => Promise<void> | void): void {
    this.cleanups.push({ name, fn: async () => fn() });
  }

  /** Run and forget the cleanup registered under `name` (the newest one). */
  async release(name: string): Promise<void> {
    for (let i = this.cleanups.length - 1; i >= 0; i--) {
      const c = this.cleanups[i]!;
      if (c.name === name) {
        this.cleanups.splice(i, 1);
        await c.fn().catch((err: unknown) => process.stderr.write(`cleanup ${name}: ${String(err)}\n`));
        return;
      }
    }
  }

  /** Stop everything, newest first. Safe to call more than once. */
  stopAll(): Promise<void> {
    return (this.stopping ??= (async () => {
      while (this.cleanups.length > 0) {
        const c = this.cleanups.pop()!;
        await c.fn().catch((err: unknown) => process.stderr.write(`cleanup ${c.name}: ${String(err)}\n`));
      }
      this.stopping = null;
    })());
  }
}

/**
 * Signal the process and wait; past the grace period, SIGKILL it and every descendant.
 * Descendants (m2gw's workers, nginx's and PHP-FPM's children) get the same grace to
 * follow their parent out, so a supervisor that dies cannot leave orphans behind.
 */
async function stopChild(child: ChildProcess, exited: Promise<void>, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const tree = processTree(child.pid!).slice(1);
  child.kill(signal);
  const deadline = Date.now() + graceMs;
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
  for (;;) {
    const alive = tree.filter(isAlive);
    if (alive.length === 0) return;
    if (Date.now() >= deadline) {
      for (const p of alive) killQuietly(p);
      return;
    }
    await sleep(20);
  }
}

/** Exists and is not a zombie (an orphan's zombie may never be reaped in a container). */
function isAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Resolve with the first stdout line for which `match` returns a value (the child's "ready" line). */
export function waitForLine<T>(m: Managed, match: (line: string) => T | undefined, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const stdout = m.child.stdout;
    if (!stdout) {
      reject(new Error(`${m.name}: no stdout`));
      return;
    }
    // A plain 'data' listener rather than readline: readline.close() pauses the stream,
    // and a child whose stdout pipe fills up blocks.
    let partial = '';
    const done = (): void => {
      clearTimeout(timer);
      stdout.off('data', onData);
      m.child.off('exit', onExit);
    };
    const onData = (b: Buffer): void => {
      partial += b.toString('utf8');
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        const v = match(line);
        if (v !== undefined) {
          done();
          resolve(v);
          return;
        }
      }
    };
    const onExit = (): void => {
      done();
      reject(new Error(`${m.name} exited (${String(m.child.exitCode ?? m.child.signalCode)})\n${m.tail()}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${m.name}: not ready within ${timeoutMs} ms\n${m.tail()}`));
    }, timeoutMs);
    stdout.on('data', onData);
    m.child.once('exit', onExit);
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
