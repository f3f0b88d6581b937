/**
 * The supervisor's side of one worker process: the fork, its data channel (fd 4,
 * a socketpair) and its IPC channel (queries, reports).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ChannelWriter } from './channel.js';
import type { MessageTarget } from './connection-owners.js';
import { isFromWorker, type FromWorker, type QueryKind, type ToWorker } from './messages.js';
import type { LentPull } from '../zmq/zmtp-connection.js';

/** A worker process could not be forked (fork() threw, or gave no data channel: EMFILE, ENFILE). */
export class WorkerForkError extends Error {
  constructor(
    readonly workerId: number,
    readonly reason: unknown,
  ) {
    super(`worker ${workerId} could not be forked: ${String(reason)}`);
    this.name = 'WorkerForkError';
  }
}

/** 'spare': forked with its modules loaded, waiting for a config (see WorkerPool.spawn). */
export type WorkerState = 'spare' | 'starting' | 'active' | 'retiring' | 'stopping' | 'exited';

export interface WorkerSpec {
  readonly generation: number;
  readonly file: string;
  readonly text: string;
  /** The id of each [[handler]] of `text`, in order: how the data channel names them (live-handlers.ts). */
  readonly handlerIds: readonly number[];
  readonly creditWindows: ReadonlyArray<number | null>;
}

export interface WorkerEvents {
  onReady(w: WorkerHandle): void;
  onFailed(w: WorkerHandle, error: string): void;
  onExit(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void;
  onClosed(w: WorkerHandle, entries: ReadonlyArray<readonly [string, number]>): void;
  onBusy(w: WorkerHandle, keys: readonly string[], seen: number): void;
  onFinalMetrics(w: WorkerHandle, metrics: unknown): void;
  /** The worker stopped keeping up (true) or caught up (false). */
  onCongested(w: WorkerHandle, congested: boolean): void;
  /** Reports about a lent PULL (pull-lending.ts). */
  onLentReport(w: WorkerHandle, m: Extract<FromWorker, { t: 'opened' | 'orphans' }>): void;
  /** The lent PULL came back (null: it had closed), or closed in the worker (pull-down). */
  onPullBack(w: WorkerHandle, handler: number, pull: LentPull | null): void;
}

/** Above this many unread bytes the supervisor stops pulling from Mongrel2 until the worker catches up. */
const CONGESTED_BYTES = 8 * 1024 * 1024;

const WORKER_ENTRY = fileURLToPath(new URL('./worker-main.js', import.meta.url));

/**
 * V8 flags for workers, before the supervisor's own (a flag given to `node` by the operator
 * comes later and wins). A worker streaming large bodies allocates ~1 MiB of Buffers per
 * response; V8 counts that external memory and, with its default small old-generation
 * budget (~16 MiB here), ran a full mark-compact every 20-50 ms (--trace-gc: 5-9 ms each,
 * a quarter of the worker's CPU on 1 MiB responses). Starting the budget at 64 MiB made
 * those rare: 1 MiB responses cost the worker ~20 % less CPU (bench/README.md), hello
 * requests the same, idle RSS the same (the budget is a limit, not an allocation), and
 * RSS still flat while a 256 MiB body streams.
 */
const WORKER_V8_FLAGS = ['--initial-old-space-size=64'];

export class WorkerHandle implements MessageTarget {
  readonly id: number;
  generation = 0;
  startedAt = Date.now();
  state: WorkerState = 'spare';
  /** Set when the supervisor asked it to stop or retire (an exit is then expected). */
  expectedExit = false;
  readonly exited: Promise<void>;
  /** Resolves once the process has loaded its code (true), or died first (false). */
  readonly loaded: Promise<boolean>;
  private resolveLoaded: (ok: boolean) => void = () => undefined;
  private resolveExited: () => void = () => undefined;
  private readonly child: ChildProcess;
  private readonly channel: ChannelWriter;
  private readonly socket: Socket;
  private readonly events: WorkerEvents;
  private nextQid = 1;
  private readonly queries = new Map<number, (data: unknown) => void>();
  private congested = false;

  /**
   * Forks the process; it loads its code and waits for assign(). Throws WorkerForkError when
   * there is no process to speak of. A fork that fails later (EAGAIN, EACCES, ENOENT: Node
   * emits 'error' and never 'exit') shows as an exit with neither code nor signal, so the
   * caller's usual handling of a dead worker applies instead of a handle that stays "alive".
   */
  constructor(id: number, events: WorkerEvents, entry: string = WORKER_ENTRY) {
    this.id = id;
    this.events = events;
    let child: ChildProcess;
    try {
      child = fork(entry, [], {
        execArgv: [...WORKER_V8_FLAGS, ...process.execArgv],
        stdio: ['inherit', 'inherit', 'inherit', 'ipc', 'pipe'],
        env: { ...process.env, M2GW_WORKER_ID: String(id) },
      });
    } catch (err) {
      // ENOMEM and the like: fork() itself throws.
      throw new WorkerForkError(id, err);
    }
    this.child = child;
    // Unhandled, an 'error' event would throw.
    child.on('error', () => undefined);
    // EMFILE, ENFILE: no stdio at all (its typings say otherwise).
    const socket = (child.stdio as ChildProcess['stdio'] | undefined)?.[4];
    if (!socket || !('setNoDelay' in socket)) {
      child.kill('SIGKILL');
      throw new WorkerForkError(id, new Error('no data channel'));
    }
    let spawned = false;
    child.once('spawn', () => (spawned = true));
    // After the spawn, an 'error' is a failed kill or send: the exit tells the rest.
    child.on('error', () => {
      if (!spawned) this.gone(null, null);
    });
    this.socket = socket as Socket;
    // EPIPE when the worker died: the exit handler deals with it.
    this.socket.on('error', () => undefined);
    this.channel = new ChannelWriter(this.socket);
    child.on('message', (m: unknown, handle: unknown) => {
      if (isFromWorker(m)) this.onMessage(m, handle instanceof Socket ? handle : null);
    });
    this.loaded = new Promise((resolve) => (this.resolveLoaded = resolve));
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
    child.once('exit', (code, signal) => this.gone(code, signal));
  }

  /** The process is gone (its exit, or a spawn that failed): once. */
  private gone(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.state === 'exited') return;
    this.state = 'exited';
    this.resolveLoaded(false);
    this.socket.destroy();
    for (const resolveQuery of this.queries.values()) resolveQuery(null);
    this.queries.clear();
    if (this.congested) {
      this.congested = false;
      this.events.onCongested(this, false);
    }
    this.events.onExit(this, code, signal);
    this.resolveExited();
  }

  /** Give the worker its config: it connects to Mongrel2 and reports ready. */
  assign(spec: WorkerSpec): void {
    if (this.state !== 'spare') throw new Error(`worker ${this.id} assigned twice`);
    this.generation = spec.generation;
    this.startedAt = Date.now();
    this.state = 'starting';
    this.send({ t: 'init', id: this.id, ...spec });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get alive(): boolean {
    return this.state !== 'exited';
  }

  /** MessageTarget: one Mongrel2 message, in order. */
  deliver(handlerIndex: number, msg: Buffer): void {
    this.channel.message(handlerIndex, msg);
    if (!this.congested && this.channel.backlog > CONGESTED_BYTES) {
      this.congested = true;
      this.events.onCongested(this, true);
      setTimeout(this.checkCongestion, 10);
    }
  }

  /** Drain then exit, after every message already sent (ordered on the data channel). */
  stop(timeoutMs: number): void {
    if (!this.alive) return;
    this.expectedExit = true;
    this.state = 'stopping';
    this.channel.stop(timeoutMs);
  }

  retire(): void {
    if (!this.alive) return;
    this.state = 'retiring';
    this.send({ t: 'retire' });
  }

  /**
   * Lend a handler's PULL (pull-lending.ts): the socket goes with the message and is gone
   * from this process. False if the worker cannot take it (the caller keeps the socket).
   */
  lendPull(handler: number, pull: LentPull, seq: number, owned: readonly string[]): boolean {
    if (!this.alive || !this.child.connected) return false;
    const msg: ToWorker = { t: 'lend-pull', handler, seq, rest: pull.rest.toString('base64'), inMultipart: pull.inMultipart, owned };
    // A failed send shows as the worker's exit, which ends the lending.
    this.child.send(msg, pull.socket, { keepOpen: false }, () => undefined);
    return true;
  }

  returnPull(handler: number): void {
    this.send({ t: 'return-pull', handler });
  }

  reopenLogs(): void {
    this.send({ t: 'reopen-logs' });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.alive) this.child.kill(signal);
  }

  /** Ask the worker something; null if it does not answer within timeoutMs. */
  query(what: QueryKind, timeoutMs = 1_000): Promise<unknown> {
    if (!this.alive || !this.child.connected) return Promise.resolve(null);
    const qid = this.nextQid++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.queries.delete(qid);
        resolve(null);
      }, timeoutMs);
      this.queries.set(qid, (data) => {
        clearTimeout(timer);
        resolve(data);
      });
      this.send({ t: 'query', qid, what });
    });
  }

  private send(msg: ToWorker): void {
    if (!this.child.connected) return;
    this.child.send(msg, (err) => {
      void err; // the worker is exiting; its exit event tells the rest
    });
  }

  private onMessage(m: FromWorker, socket: Socket | null): void {
    switch (m.t) {
      case 'loaded':
        this.resolveLoaded(true);
        return;
      case 'ready':
        // Only a starting worker's: IPC messages can arrive after the exit, and a dead or
        // already active worker must not be given connections again.
        if (this.state !== 'starting') return;
        this.state = 'active';
        this.events.onReady(this);
        return;
      case 'failed':
        this.events.onFailed(this, m.error);
        return;
      case 'reply': {
        const resolve = this.queries.get(m.qid);
        if (resolve) {
          this.queries.delete(m.qid);
          resolve(m.data);
        }
        return;
      }
      case 'closed':
        this.events.onClosed(this, m.entries);
        return;
      case 'busy':
        this.events.onBusy(this, m.keys, m.seen);
        return;
      case 'final-metrics':
        this.events.onFinalMetrics(this, m.metrics);
        return;
      case 'opened':
      case 'orphans':
        this.events.onLentReport(this, m);
        return;
      case 'pull-returned':
        this.events.onPullBack(this, m.handler, socket ? { socket, rest: Buffer.from(m.rest, 'base64'), inMultipart: m.inMultipart } : null);
        return;
      case 'pull-down':
        this.events.onPullBack(this, m.handler, null);
        return;
    }
  }

  private readonly checkCongestion = (): void => {
    if (!this.congested || !this.alive) return;
    if (this.channel.backlog < CONGESTED_BYTES / 4) {
      this.congested = false;
      this.events.onCongested(this, false);
    } else {
      // 'drain' fires only after a refused write; poll as well so nothing stays paused.
      setTimeout(this.checkCongestion, 10);
    }
  };
}
