/**
 * The process `m2gw start` runs: owns the Mongrel2 PULL sockets, routes every
 * message to the worker that owns its connection (connection-owners.ts), and keeps the
 * workers alive.
 *
 *   SIGHUP   reload: validate the file; start a new generation of workers; new
 *            connections go to it; old workers hand over idle connections, finish
 *            the busy ones, then drain and exit. Invalid config: logged, nothing changes.
 *   SIGTERM/SIGINT  stop: new connections get 503, workers drain within
 *            drain_timeout, exit 0. A second signal exits at once (1).
 *   SIGUSR1  reopen log files here and in every worker.
 *
 * A worker that dies is replaced (restart-policy.ts); the connections it owned are
 * closed so their clients do not hang. A crash loop ends the daemon with exit 1.
 */
import type { Config } from '../config/schema.js';
import { statusOf } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { WarningThrottle } from '../log-throttle.js';
import { SupervisorMetrics } from '../metrics/supervisor-metrics.js';
import type { ReloadResult } from '../admin/status.js';
import { ConnectionOwners } from './connection-owners.js';
import { LiveHandlers } from './live-handlers.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { readReloadConfig } from './reload-config.js';
import { RestartPolicy } from './restart-policy.js';
import { monotonicUsec, sdNotify } from './sd-notify.js';
import { AdminListener } from './supervisor-admin.js';
import { installSignals } from './supervisor-signals.js';
import { PullLending } from './pull-lending.js';
import { SupervisorReplies } from './supervisor-replies.js';
import { SupervisorStatus } from './supervisor-status.js';
import type { WorkerHandle } from './worker-handle.js';
import { WorkerPool, workerCount, type PoolEvents } from './worker-pool.js';

/** After drain_timeout, how long workers get to exit before they are killed. */
const EXIT_GRACE_MS = 5_000;

export type SupervisorState = 'starting' | 'running' | 'reloading' | 'stopping';

export async function runSupervisor(file: string, text: string, config: Config): Promise<void> {
  await new Supervisor(file, text, config).start();
}

export class Supervisor {
  state: SupervisorState = 'starting';
  config: Config;
  generation = 0;
  readonly startedAt = Date.now();
  readonly pool: WorkerPool;
  readonly owners: ConnectionOwners;
  /** The Mongrel2 handlers, by id (live-handlers.ts): a reload may add and remove them. */
  readonly handlers: LiveHandlers;
  readonly metrics: SupervisorMetrics;
  /** With one worker, it reads the handlers' PULLs itself (pull-lending.ts). */
  readonly lending: PullLending;
  reloadCount = 0;
  lastReload: ReloadResult | null = null;
  restartCount = 0;
  log: Logger;
  /** Warnings a client can cause at will (malformed frames): rate-limited, counted exactly. */
  private readonly warnings = new WarningThrottle(() => this.log);
  private text: string;
  private readonly replies: SupervisorReplies;
  private readonly admin = new AdminListener(new SupervisorStatus(this), () => this.log);
  private readonly restarts = new RestartPolicy();
  private reloadQueued = false;
  private finishing = false;
  private exiting = false;
  /** The STOPPING=1 notification: sent before exiting. */
  private notified: Promise<void> = Promise.resolve();
  /** Workers that stopped keeping up with their data channel (PULLs paused meanwhile). */
  congested = 0;
  private readonly pidFile: string | null;

  constructor(
    readonly file: string,
    text: string,
    config: Config,
  ) {
    this.text = text;
    this.config = config;
    this.pidFile = config.gateway.pidFile;
    this.log = createLogger(config.log, { pid: process.pid, role: 'supervisor' });
    this.owners = new ConnectionOwners({
      refuse: (h, sender, connId) => {
        // Shutting down, or too many messages waiting for a worker to come back.
        const errorCode = this.state === 'stopping' ? 'M2GW_SHUTTING_DOWN' : 'M2GW_SATURATED';
        this.replies.refuse(h, sender, connId, errorCode);
        this.metrics.own.requestDone({ route: '-', upstream: '-', status: statusOf(errorCode), durationMs: 0, errorCode });
      },
      badFrame: (h, msg, err) => {
        this.metrics.own.hooks.onBadFrame?.();
        this.warnings.warn('malformed Mongrel2 message dropped', { handler: this.handlers.get(h)?.config.sendSpec, error: String(err), bytes: msg.length });
      },
      orphanControl: (h, connId, kind) => this.handlers.get(h)?.watch.orphanControl(kind, connId),
      newConnection: (h, flowControl) => this.handlers.get(h)?.watch.newConnection(flowControl),
      forgot: (h, connId) => this.handlers.get(h)?.watch.forget(connId),
    });
    this.handlers = new LiveHandlers(() => this.log, this.owners);
    this.handlers.init(config.handlers);
    this.replies = new SupervisorReplies((h) => this.handlers.get(h), (h) => this.owners.senderOf(h));
    this.metrics = new SupervisorMetrics({
      workers: () => {
        const counts: Record<string, number> = { starting: 0, active: 0, retiring: 0, stopping: 0, spare: this.pool.spare ? 1 : 0 };
        for (const w of this.workers.values()) counts[w.state] = (counts[w.state] ?? 0) + 1;
        delete counts.exited;
        return counts;
      },
      parked: () => this.owners.parkedCount,
      orphanControls: () => Object.fromEntries(this.handlers.list().map((h) => [h.config.sendSpec, h.watch.orphans])),
    });
    this.pool = new WorkerPool(file, this.poolEvents(), (ids) => this.owners.creditWindows(ids), () => this.config.gateway.spareWorker);
    this.lending = new PullLending(this);
  }

  get workers(): ReadonlyMap<number, WorkerHandle> {
    return this.pool.workers;
  }

  async start(): Promise<void> {
    installSignals(this);
    if (this.pidFile) writePidFile(this.pidFile);
    await this.admin.start(this.config);
    const n = workerCount(this.config);
    this.log.info('starting', { config: this.file, workers: n });
    try {
      this.generation = 1;
      const starting = this.pool.startGeneration(1, this.text, n, this.handlers.current);
      // The spare starts with the others: memory use is settled once m2gw says ready.
      const spare = this.pool.forkSpare();
      const workers = await starting;
      // One that died since it was ready is being replaced already (onWorkerExit).
      for (const w of workers) if (w.alive) this.owners.add(w, true);
      if (spare) await Promise.race([spare.loaded, new Promise((r) => setTimeout(r, 10_000).unref())]);
    } catch (err) {
      if (this.state === 'stopping') return;
      return this.fatal(`workers did not start: ${String(err)}`);
    }
    try {
      await this.handlers.connect(this.handlers.current);
    } catch (err) {
      return this.fatal(String(err));
    }
    if (this.state !== 'starting') return;
    this.state = 'running';
    this.lending.start();
    this.log.info('m2gw ready', { workers: n, handlers: this.handlers.current.length, routes: this.config.routes.length });
    void sdNotify({ READY: '1', STATUS: `serving with ${n} worker(s)` }, (e) => this.log.warn(e));
  }

  // ---- workers ---------------------------------------------------------------

  private poolEvents(): PoolEvents {
    return {
      onReplacementReady: (w) => {
        this.log.info('worker replaced', { worker: w.id, pid: w.pid, generation: w.generation });
        if (w.generation === this.generation && this.state !== 'stopping') this.owners.add(w, true);
        else w.stop(this.config.gateway.drainTimeoutMs);
      },
      onFailed: (w, error) => this.log.error('worker failed to start', { worker: w.id, error }),
      onExit: (w, code, signal, starting) => this.onWorkerExit(w, code, signal, starting),
      onSpareExit: (w, code, signal) => this.log.warn('spare worker exited', { worker: w.id, pid: w.pid, code, signal }),
      onSpareForkFailed: (err) => this.log.warn('spare worker could not be forked', { error: String(err.reason) }),
      onClosed: (w, entries) => {
        this.owners.applyClosed(w.id, entries);
        this.maybeFinishRetiring(w);
      },
      onBusy: (w, keys, seen) => {
        if (w.state !== 'retiring') return;
        this.owners.applyBusy(w.id, keys, seen);
        this.maybeFinishRetiring(w);
      },
      onFinalMetrics: (_w, json) => void this.metrics.addRetired(json),
      onLentReport: (w, m) => this.lending.onReport(w, m),
      onPullBack: (w, handler, pull) => this.lending.onPullBack(w, handler, pull),
      onCongested: (_w, congested) => {
        this.congested += congested ? 1 : -1;
        if (congested && this.congested === 1) this.handlers.pauseAll();
        if (!congested && this.congested === 0) this.handlers.resumeAll();
      },
    };
  }

  private onWorkerExit(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null, starting: boolean): void {
    this.lending.onWorkerExit(w);
    const keys = this.owners.remove(w.id);
    const closed = keys.length > 0 ? this.replies.close(keys) : 0;
    const info = { worker: w.id, pid: w.pid, generation: w.generation, code, signal, connections_closed: closed };
    if (w.expectedExit) {
      this.log.info('worker exited', info);
    } else {
      this.log.error('worker died', info);
      // One that died while its generation was starting fails that start instead.
      if (!starting && this.state !== 'stopping' && w.generation === this.generation) this.replaceCrashed();
    }
    if (this.state === 'stopping' && this.workers.size === 0) void this.finish(0);
  }

  private replaceCrashed(): void {
    const delay = this.restarts.crashed(Date.now());
    if (delay === null) {
      void this.fatal(`crash loop: ${this.restarts.limit} worker deaths within ${this.restarts.windowMs / 1000} s`);
      return;
    }
    this.restartCount++;
    this.metrics.workerRestarted();
    const generation = this.generation;
    setTimeout(() => {
      if (this.state !== 'stopping' && generation === this.generation) {
        try {
          this.pool.spawn(generation, this.text, this.handlers.current);
        } catch (err) {
          // No process at all (ENOMEM, EMFILE): another crash to the policy, which retries later.
          this.log.error('worker could not be forked', { error: String(err) });
          this.replaceCrashed();
        }
      }
    }, delay);
  }

  /** A retiring worker that owns nothing more drains (nothing should be left) and exits. */
  private maybeFinishRetiring(w: WorkerHandle): void {
    if (w.state === 'retiring' && this.owners.ownedBy(w.id) === 0) w.stop(this.config.gateway.drainTimeoutMs);
  }

  // ---- reload ----------------------------------------------------------------

  async reload(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'starting') {
      this.log.warn('SIGHUP ignored', { state: this.state });
      return;
    }
    if (this.state === 'reloading') {
      this.reloadQueued = true;
      return;
    }
    this.state = 'reloading';
    void sdNotify({ RELOADING: '1', MONOTONIC_USEC: String(monotonicUsec()) }, (e) => this.log.warn(e));
    try {
      await this.reloadOnce();
    } finally {
      if (this.state === 'reloading') {
        this.state = 'running';
        void sdNotify({ READY: '1' }, (e) => this.log.warn(e));
        if (this.reloadQueued) {
          this.reloadQueued = false;
          setImmediate(() => void this.reload());
        }
      }
    }
  }

  private async reloadOnce(): Promise<void> {
    this.log.info('reloading', { config: this.file });
    const input = readReloadConfig(this.file);
    if (!input.ok) {
      for (const problem of input.problems) this.log.error('config problem', { problem });
      return this.reloadDone('invalid', input.message);
    }
    for (const problem of input.warnings) this.log.warn('config warning', { problem });
    const { config, text } = input;
    const n = workerCount(config);
    const generation = this.generation + 1;
    // Handlers by their sockets: kept ones keep their ids, so their connections stay put.
    const plan = this.handlers.plan(config.handlers);
    let fresh: WorkerHandle[];
    try {
      fresh = await this.pool.startGeneration(generation, text, n, plan.ids, config.gateway.spareWorker);
    } catch (err) {
      return this.reloadDone('failed', `new workers did not start (${String(err)}); keeping the running ones`);
    }
    // The supervisor routes every message again before the switch (pull-lending.ts).
    await this.lending.reclaimAll();
    // A new worker that died since it was ready is not replaced (its generation is not the
    // current one yet): switching would send new connections to nobody.
    const dead = fresh.filter((w) => !w.alive);
    if (this.state !== 'reloading' || dead.length > 0) {
      for (const w of fresh) w.stop(0);
      if (this.state !== 'reloading') return;
      return this.reloadDone('failed', `new worker(s) ${dead.map((w) => w.id).join(', ')} died before the switch; keeping the running ones`);
    }
    // Switch: from here new connections go to the new generation.
    const old = [...this.workers.values()].filter((w) => w.generation < generation);
    this.generation = generation;
    const prev = this.config;
    this.config = config;
    this.pool.syncSpare();
    this.text = text;
    this.restarts.reset();
    for (const w of fresh) this.owners.add(w, true);
    for (const w of old) this.retire(w);
    // Only now: an added handler's messages need a worker that knows it.
    await this.handlers.apply(plan, config.gateway.drainTimeoutMs);
    this.applyLogConfig(config);
    const adminProblem = await this.admin.apply(prev, config);
    this.reloadCount++;
    const done = `generation ${generation} with ${n} worker(s); ${old.length} retiring`;
    this.reloadDone(adminProblem ? 'failed' : 'ok', adminProblem ? `${done}, but ${adminProblem}` : done);
  }

  private reloadDone(result: ReloadResult['result'], message: string): void {
    this.metrics.reloaded(result);
    this.lastReload = { at: new Date().toISOString(), result, message };
    if (result === 'ok') this.log.info(`reloaded: ${message}`, { generation: this.generation });
    else this.log.error(`reload ${result === 'invalid' ? 'refused' : 'failed'}: ${message}`);
  }

  private retire(w: WorkerHandle): void {
    this.owners.setAccepting(w.id, false);
    if (w.state === 'starting') {
      // A replacement that is not up yet holds nothing.
      w.expectedExit = true;
      w.kill();
      return;
    }
    if (w.state !== 'active') return;
    w.retire();
    this.maybeFinishRetiring(w);
    const deadline = this.config.gateway.drainTimeoutMs;
    setTimeout(() => {
      if (w.alive && w.state === 'retiring') {
        this.log.warn('retiring worker still busy after drain_timeout: draining it', { worker: w.id, connections: this.owners.ownedBy(w.id) });
        w.stop(deadline);
      }
    }, deadline).unref();
  }

  private applyLogConfig(config: Config): void {
    const old = this.log;
    this.log = createLogger(config.log, { pid: process.pid, role: 'supervisor' });
    old.close();
  }

  // ---- stop ------------------------------------------------------------------

  async shutdown(signal: string): Promise<void> {
    if (this.state === 'stopping') {
      this.log.warn('second signal: exiting now', { signal });
      return this.forceExit();
    }
    this.state = 'stopping';
    this.pool.close();
    const timeout = this.config.gateway.drainTimeoutMs;
    this.log.info('draining', { signal, workers: this.workers.size, timeout_ms: timeout });
    this.notified = sdNotify({ STOPPING: '1' }, (e) => this.log.warn(e));
    await this.lending.stop();
    this.owners.refuseNew();
    for (const w of this.workers.values()) {
      w.expectedExit = true;
      if (w.state === 'starting') w.kill();
      else w.stop(timeout);
    }
    setTimeout(() => {
      if (this.workers.size === 0) return;
      this.log.error('workers did not exit in time: killing them', { workers: this.workers.size });
      void this.forceExit();
    }, timeout + EXIT_GRACE_MS).unref();
    if (this.workers.size === 0) await this.finish(0);
  }

  private async fatal(message: string): Promise<void> {
    this.log.error(`fatal: ${message}`);
    this.state = 'stopping';
    await this.forceExit();
  }

  /** Kill the workers, close their clients' connections (so nobody hangs), exit 1. */
  private async forceExit(): Promise<void> {
    if (this.finishing) return this.exit(1);
    this.pool.close();
    for (const w of this.workers.values()) {
      w.expectedExit = true;
      this.replies.close(this.owners.remove(w.id));
      w.kill();
    }
    await this.finish(1);
  }

  private async finish(code: number): Promise<void> {
    if (this.finishing) return;
    this.finishing = true;
    this.pool.close();
    await this.handlers.closeAll();
    await this.admin.close().catch(() => undefined);
    await this.notified;
    this.log.info('stopped', { code });
    this.exit(code);
  }

  private exit(code: number): void {
    if (this.exiting) process.exit(code);
    this.exiting = true;
    if (this.pidFile) removePidFile(this.pidFile);
    this.log.on('finish', () => process.exit(code));
    this.log.end();
    setTimeout(() => process.exit(code), 500).unref();
  }
}
