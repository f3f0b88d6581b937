/**
 * PULL lending: with one worker, the supervisor lends it each handler's Mongrel2 PULL
 * socket, and the worker reads requests straight from Mongrel2.
 *
 * Why: the supervisor's hop (read from Mongrel2, pick the owner, write to the data
 * channel; the worker reads the channel) cost 11-16 µs of supervisor CPU per request,
 * plus the worker's channel read and one more wake-up of each process: about a fifth of
 * a hello request (bench/README.md). With one worker there is nobody to choose between, so
 * the hop buys nothing until a lifecycle event needs the supervisor again.
 *
 * How: the PULL is our own ZMTP connection over one TCP socket (zmq/zmtp-connection.ts).
 * The supervisor stops reading it at a frame boundary and sends the file descriptor over
 * IPC with the bytes already read past that boundary (ZmtpConnection.lend). The worker
 * reads on from there; Mongrel2 sees the same connection throughout, so nothing is lost,
 * duplicated or reordered (pull-borrower.ts for the order with the data channel).
 *
 * When: only in the steady state. Exactly one worker, active, of the current generation;
 * the supervisor running (not starting, reloading or stopping); nothing parked; the
 * handler neither being removed nor twinned; its PULL connected and not paused. Checked
 * after start and reload, and every CHECK_MS.
 *
 * Back: before a reload switches generations and before a stop drains, the supervisor
 * asks for every lent PULL back and waits for it; from then on everything is as without
 * lending. Meanwhile the worker reports the connections it opened, closed and the orphan
 * control messages it saw, so ConnectionOwners and HandlerWatch stay exactly as if every
 * message had crossed the supervisor.
 *
 * What is lost: if the worker dies holding a PULL, the connection goes with it, and
 * requests Mongrel2 had written into it but the worker not yet read are lost (as for any
 * ZeroMQ handler that dies; without lending the supervisor held them). The supervisor
 * connects a new PULL at once, and closes the dead worker's clients as before (it knows
 * them from the reports).
 */
import type { Logger } from '../log.js';
import type { LentPull } from '../zmq/zmtp-connection.js';
import type { ConnectionOwners } from './connection-owners.js';
import type { LiveHandlers } from './live-handlers.js';
import type { FromWorker } from './messages.js';
import type { WorkerHandle } from './worker-handle.js';

const CHECK_MS = 250;
/** How long a worker gets to give a PULL back before it is killed (it does not answer: hung). */
const RETURN_TIMEOUT_MS = 5_000;

/** What lending needs of the supervisor. */
export interface LendingHost {
  readonly handlers: LiveHandlers;
  readonly owners: ConnectionOwners;
  readonly workers: ReadonlyMap<number, WorkerHandle>;
  readonly state: string;
  /** Workers behind on their data channel (the supervisor pauses its PULLs meanwhile). */
  readonly congested: number;
  readonly generation: number;
  readonly log: Logger;
}

export class PullLending {
  /** Lent handler id → the worker holding its PULL. */
  private readonly lentTo = new Map<number, WorkerHandle>();
  /** Reclaims in progress, by handler id: one per handler, however many callers wait. */
  private readonly reclaims = new Map<number, { readonly done: Promise<void>; readonly finish: () => void }>();
  private timer: NodeJS.Timeout | null = null;
  /** Workers that gave a PULL back unasked (stopping on their own): never lent to again. */
  private readonly declined = new WeakSet<WorkerHandle>();
  private stopped = false;

  constructor(private readonly deps: LendingHost) {}

  /** Start lending when possible (checked now and periodically). */
  start(): void {
    if (this.stopped) return;
    this.timer ??= setInterval(() => this.check(), CHECK_MS).unref();
    this.check();
  }

  /** The worker holding a handler's PULL, or null. */
  holderOf(handlerId: number): number | null {
    return this.lentTo.get(handlerId)?.id ?? null;
  }

  /** Lend every PULL that can be lent now. */
  check(): void {
    const { handlers, owners, state, congested } = this.deps;
    if (this.stopped || this.reclaims.size > 0 || state !== 'running' || congested > 0) return;
    const workers = [...this.deps.workers.values()];
    if (workers.length !== 1 || owners.parkedCount > 0) return;
    const w = workers[0]!;
    if (w.state !== 'active' || w.generation !== this.deps.generation || this.declined.has(w)) return;
    for (const id of handlers.current) {
      const h = handlers.get(id);
      if (!h || h.removing || h.twins.length > 0 || this.lentTo.has(id)) continue;
      const pull = h.socket.lendPull();
      if (!pull) continue;
      // After lendPull: what it read and delivered is counted.
      if (!w.lendPull(id, pull, owners.sentTo(w.id), owners.ownedOn(w.id, id))) {
        h.socket.takeBackPull(pull);
        continue;
      }
      this.lentTo.set(id, w);
    }
  }

  /** Ask for every lent PULL back; resolves when all are back (or their worker is gone). */
  async reclaimAll(): Promise<void> {
    const pending = [...this.lentTo.entries()].map(([id, w]) => this.reclaim(id, w));
    await Promise.all(pending);
  }

  /** Reclaim everything and lend no more (stopping). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.reclaimAll();
  }

  /** Reports of a worker reading a lent PULL. */
  onReport(w: WorkerHandle, m: Extract<FromWorker, { t: 'opened' | 'orphans' }>): void {
    if (m.t === 'opened') this.deps.owners.applyOpened(w.id, m.entries);
    else this.deps.owners.applyOrphans(m.entries);
  }

  /** The PULL came back from the worker (null: it is gone: closed there, or never taken). */
  onPullBack(w: WorkerHandle, handlerId: number, pull: LentPull | null): void {
    if (this.lentTo.get(handlerId) !== w) {
      pull?.socket.destroy();
      return;
    }
    this.lentTo.delete(handlerId);
    // Given back unasked (not lost): the worker is stopping on its own, by a signal not ours. Not again.
    if (pull && !this.reclaims.has(handlerId)) this.declined.add(w);
    const h = this.deps.handlers.get(handlerId);
    if (pull && h) {
      h.socket.takeBackPull(pull);
    } else {
      pull?.socket.destroy();
      h?.socket.pullLendingLost();
      this.deps.log.info('lent handler socket lost with the worker: reconnecting', { worker: w.id, handler: h?.config.sendSpec });
    }
    this.reclaims.get(handlerId)?.finish();
  }

  /** A worker exited: what it held is gone with it. */
  onWorkerExit(w: WorkerHandle): void {
    for (const [id, holder] of [...this.lentTo]) if (holder === w) this.onPullBack(w, id, null);
  }

  /** One request per handler, however many callers wait (a stop during a reload's reclaim). */
  private reclaim(handlerId: number, w: WorkerHandle): Promise<void> {
    const running = this.reclaims.get(handlerId);
    if (running) return running.done;
    let finish = (): void => undefined;
    const done = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.deps.log.error('worker did not give the handler socket back in time: killing it', { worker: w.id, pid: w.pid });
        w.kill();
      }, RETURN_TIMEOUT_MS);
      finish = () => {
        clearTimeout(timer);
        this.reclaims.delete(handlerId);
        resolve();
      };
    });
    this.reclaims.set(handlerId, { done, finish });
    w.returnPull(handlerId);
    return done;
  }
}
