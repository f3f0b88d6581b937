/**
 * The supervisor's worker processes: forking them, waiting for a generation to be
 * ready, and one spare.
 *
 * The spare is a forked worker that has loaded its code (~200 ms of CPU for a Node
 * worker, several times that on a loaded machine) and waits for a config. Replacing
 * a dead worker or starting a new generation takes it first, so a replacement is
 * serving within a few hundred milliseconds even under load. Cost: one idle process
 * (~70 MiB of RSS), which `[gateway] spare_worker = false` saves where memory is tighter than
 * the ~0.3 s a fresh fork then takes.
 */
import os from 'node:os';
import type { Config } from '../config/schema.js';
import { WorkerForkError, WorkerHandle, type WorkerEvents } from './worker-handle.js';

const READY_TIMEOUT_MS = 45_000;
/** How long after a worker starts the next spare is forked (not at once: it would compete for CPU). */
const SPARE_DELAY_MS = 1_000;

/** Workers to run: gateway.workers, or one per CPU for "auto". */
export function workerCount(config: Config): number {
  const w = config.gateway.workers;
  return w === 'auto' ? Math.max(1, os.availableParallelism()) : w;
}

export interface PoolEvents extends Omit<WorkerEvents, 'onReady' | 'onExit' | 'onFailed'> {
  /** A worker that was not part of startGeneration() is ready (a replacement). */
  onReplacementReady(w: WorkerHandle): void;
  /** `starting`: it died before it was ready, as part of startGeneration(). */
  onExit(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null, starting: boolean): void;
  onFailed(w: WorkerHandle, error: string): void;
  onSpareExit(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void;
  /** The spare could not be forked; the next worker to start tries again. */
  onSpareForkFailed(err: WorkerForkError): void;
}

interface ReadyWaiter {
  resolve(): void;
  reject(err: Error): void;
}

export class WorkerPool {
  readonly workers = new Map<number, WorkerHandle>();
  spare: WorkerHandle | null = null;
  private nextId = 1;
  private readonly waiters = new Map<number, ReadyWaiter>();
  private spareTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly handleEvents: WorkerEvents;

  constructor(
    private readonly file: string,
    private readonly events: PoolEvents,
    /** What new workers should know of the flow-control window, per handler id (see ConnectionOwners.creditWindows). */
    private readonly creditWindows: (handlerIds: readonly number[]) => ReadonlyArray<number | null>,
    /** `[gateway] spare_worker` of the config in force (it changes on reload: syncSpare). */
    private readonly spareWanted: () => boolean,
  ) {
    this.handleEvents = {
      ...events,
      onReady: (w) => {
        const waiter = this.waiters.get(w.id);
        if (!waiter) return events.onReplacementReady(w);
        this.waiters.delete(w.id);
        waiter.resolve();
      },
      onExit: (w, code, signal) => this.onExit(w, code, signal),
    };
  }

  /**
   * A worker for `generation`: the spare if there is one, else a fresh fork. `spareAfter`: fork
   * the next spare (a reload passes its new config's setting; the one in force may differ).
   * Throws WorkerForkError when no process could be forked (a fork that fails later shows as
   * the worker's exit).
   */
  spawn(generation: number, text: string, handlerIds: readonly number[], spareAfter = this.spareWanted()): WorkerHandle {
    let w = this.spare;
    this.spare = null;
    if (!w || !w.alive) w = new WorkerHandle(this.nextId++, this.handleEvents);
    w.assign({ generation, file: this.file, text, handlerIds, creditWindows: this.creditWindows(handlerIds) });
    this.workers.set(w.id, w);
    if (spareAfter) this.scheduleSpare();
    return w;
  }

  /**
   * Fork n workers; resolves when all are ready, rejects (killing them) if one fails, a fork
   * included. `handlerIds`: the id of each [[handler]] of `text`, in order (live-handlers.ts).
   */
  async startGeneration(generation: number, text: string, n: number, handlerIds: readonly number[], spareAfter = this.spareWanted()): Promise<WorkerHandle[]> {
    const workers: WorkerHandle[] = [];
    const ready: Promise<void>[] = [];
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`workers not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    });
    try {
      for (let i = 0; i < n; i++) {
        const w = this.spawn(generation, text, handlerIds, spareAfter);
        workers.push(w);
        ready.push(new Promise<void>((resolve, reject) => this.waiters.set(w.id, { resolve, reject })));
      }
      await Promise.race([Promise.all(ready), timeout]);
      return workers;
    } catch (err) {
      for (const w of workers) {
        this.waiters.delete(w.id);
        w.expectedExit = true;
        w.kill();
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Fork the spare now (at startup, alongside the first workers); null when the config wants none. */
  forkSpare(): WorkerHandle | null {
    if (this.spareTimer) clearTimeout(this.spareTimer);
    this.spareTimer = null;
    if (!this.spareWanted() || this.closed) return null;
    const id = this.nextId++;
    try {
      this.spare ??= new WorkerHandle(id, this.handleEvents);
    } catch (err) {
      // Only the spare: without it the next worker is a fresh fork, slower but no worse.
      this.events.onSpareForkFailed(err instanceof WorkerForkError ? err : new WorkerForkError(id, err));
    }
    return this.spare;
  }

  /** After a reload: fork a spare the new config wants, or retire the one it no longer does. */
  syncSpare(): void {
    if (this.spareWanted()) this.scheduleSpare();
    else this.dropSpare();
  }

  /** No more spares (stopping); kill the one there is. */
  close(): void {
    this.closed = true;
    this.dropSpare();
  }

  /** Cancel a spare about to be forked and kill the one there is (its exit is expected). */
  private dropSpare(): void {
    if (this.spareTimer) clearTimeout(this.spareTimer);
    this.spareTimer = null;
    if (this.spare) {
      this.spare.expectedExit = true;
      this.spare.kill();
    }
    this.spare = null;
  }

  private scheduleSpare(): void {
    if (this.spareTimer || this.spare || this.closed) return;
    this.spareTimer = setTimeout(() => {
      this.spareTimer = null;
      if (!this.spare && !this.closed) this.forkSpare();
    }, SPARE_DELAY_MS);
    this.spareTimer.unref();
  }

  private onExit(w: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.generation === 0) {
      // Never given a config: a spare.
      if (w === this.spare) this.spare = null;
      if (!w.expectedExit) this.events.onSpareExit(w, code, signal);
      return;
    }
    this.workers.delete(w.id);
    const waiter = this.waiters.get(w.id);
    if (waiter) {
      this.waiters.delete(w.id);
      waiter.reject(new Error(`worker ${w.id} exited before it was ready (code ${code}, signal ${signal})`));
    }
    this.events.onExit(w, code, signal, waiter !== undefined);
  }
}
