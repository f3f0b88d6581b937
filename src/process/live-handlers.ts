/**
 * The supervisor's Mongrel2 handlers as they are now, each under an id that survives
 * reloads (reload-config.ts plans which handlers are kept, added, removed). Ids, not
 * positions in the config, are what ConnectionOwners keys, the data channel carries and
 * workers address: positions shift when a [[handler]] is added or removed.
 *
 * An added handler gets its sockets once the new generation of workers (which knows it)
 * takes new connections. A removed one keeps reading — credits and disconnects of its
 * in-flight requests still arrive there — but its new connections are refused (503,
 * close); once no worker owns any of its connections, or drain_timeout passed, its
 * sockets close. A changed one (same send_spec) is a removed one plus an added one that
 * are twins: both PULL from the same send_spec meanwhile and Mongrel2 round-robins
 * between them, so each hands over what belongs to the other (a connection the old one
 * still holds, a new connection arriving on the old one).
 *
 * Twins are every open handler on the same send_spec, found from what is open rather than
 * paired by the reload's plan: a handler still draining from an earlier reload shares
 * the spec too (removed then put back, changed twice, put back then removed again), and
 * the plan sees only the current handlers. One finishing relinks the rest.
 */
import type { HandlerConfig } from '../config/schema.js';
import { HandlerWatch } from '../gateway/handler-watch.js';
import type { Logger } from '../log.js';
import { peekRoutingKey } from '../mongrel2/request.js';
import { HandlerSocket } from '../zmq/handler-socket.js';
import type { ConnectionOwners } from './connection-owners.js';
import type { HandlerPlan } from './reload-config.js';
import { planHandlers } from './reload-config.js';

/** How often a removed handler checks whether its last connection is done. */
const REMOVE_POLL_MS = 200;

export interface LiveHandler {
  readonly id: number;
  readonly config: HandlerConfig;
  readonly socket: HandlerSocket;
  /** Flow control seen, a shared socket suspected (handler-watch.ts). */
  readonly watch: HandlerWatch;
  /** Removed by a reload, still finishing its connections. */
  removing: boolean;
  /** The other open handlers on the same send_spec (see the twins above). */
  twins: readonly number[];
}

export class LiveHandlers {
  private readonly byId = new Map<number, LiveHandler>();
  private nextId = 0;
  /** Ids of the current config's handlers, in its order. */
  current: readonly number[] = [];

  constructor(
    private readonly log: () => Logger,
    private readonly owners: ConnectionOwners,
  ) {}

  get(id: number): LiveHandler | undefined {
    return this.byId.get(id);
  }

  /** Every open handler, removed ones still finishing included. */
  list(): LiveHandler[] {
    return [...this.byId.values()];
  }

  /** The first config's handlers: ids 0..n-1. */
  init(configs: readonly HandlerConfig[]): void {
    this.current = configs.map((config) => this.create(this.nextId++, config).id);
  }

  plan(next: readonly HandlerConfig[]): HandlerPlan {
    const running = this.current.map((id) => this.byId.get(id)!).map((h) => ({ id: h.id, config: h.config }));
    return planHandlers(running, next, () => this.nextId++);
  }

  /** Connect every handler not yet connected. Resolves when all are (see HandlerSocket.connect). */
  async connect(ids: readonly number[]): Promise<void> {
    await Promise.all(
      ids.map((id) => {
        const h = this.byId.get(id)!;
        return h.socket.connect(
          (msg) => this.deliverFrom(h, msg),
          (err) => this.log().error('handler socket failed', { handler: h.config.sendSpec, error: String(err) }),
        );
      }),
    );
  }

  /**
   * A reload's switch (the new workers take new connections from now on): open the added
   * handlers, start removing the removed ones. Resolves once the added ones are connected.
   */
  async apply(plan: HandlerPlan, drainTimeoutMs: number): Promise<void> {
    for (const a of plan.added) this.create(a.id, a.config);
    for (const r of plan.removed) this.remove(r.id, drainTimeoutMs);
    this.current = plan.ids;
    this.linkTwins();
    if (plan.added.length > 0 || plan.removed.length > 0) {
      this.log().info('handlers changed by reload', {
        added: plan.added.map((a) => a.config.sendSpec),
        removed: plan.removed.map((r) => this.byId.get(r.id)?.config.sendSpec),
      });
    }
    await this.connect(plan.added.map((a) => a.id));
  }

  pauseAll(): void {
    for (const h of this.byId.values()) h.socket.pause();
  }

  resumeAll(): void {
    for (const h of this.byId.values()) h.socket.resume();
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.byId.values()].map((h) => h.socket.close().catch(() => undefined)));
  }

  private create(id: number, config: HandlerConfig): LiveHandler {
    const h: LiveHandler = {
      id,
      config,
      socket: new HandlerSocket({ sendSpec: config.sendSpec, recvSpec: config.recvSpec, recvIdent: config.recvIdent }),
      // The getter, not the logger: a reload replaces the logger and closes the old one.
      watch: new HandlerWatch(config.sendSpec, this.log),
      removing: false,
      twins: [],
    };
    this.byId.set(id, h);
    return h;
  }

  private remove(id: number, drainTimeoutMs: number): void {
    const h = this.byId.get(id);
    if (!h) return;
    h.removing = true;
    this.owners.refuseHandler(id);
    const deadline = Date.now() + drainTimeoutMs;
    const check = (): void => {
      const left = this.owners.ownedOnHandler(id);
      if (left > 0 && Date.now() < deadline) {
        setTimeout(check, REMOVE_POLL_MS).unref();
        return;
      }
      this.byId.delete(id);
      this.owners.forgetHandler(id);
      this.linkTwins();
      this.log().info('removed handler disconnected', { handler: h.config.sendSpec, connections_left: left });
      void h.socket.close().catch(() => undefined);
    };
    check();
  }

  private linkTwins(): void {
    const open = this.list();
    for (const h of open) h.twins = open.filter((o) => o !== h && o.config.sendSpec === h.config.sendSpec).map((o) => o.id);
  }

  /** One message from a handler's PULL, to the owner of its connection (see the twins above). */
  private deliverFrom(h: LiveHandler, msg: Buffer): void {
    if (h.twins.length > 0) {
      const connId = connIdOf(msg);
      if (connId !== null && this.owners.ownerOf(h.id, connId) === null) {
        // A connection stays with the handler holding it; a new one goes to the one that stays.
        const to =
          h.twins.find((t) => this.owners.ownerOf(t, connId) !== null) ??
          (h.removing ? h.twins.find((t) => !this.byId.get(t)!.removing) : undefined);
        if (to !== undefined) {
          this.owners.deliver(to, msg);
          return;
        }
      }
    }
    this.owners.deliver(h.id, msg);
  }
}

function connIdOf(msg: Buffer): string | null {
  try {
    return peekRoutingKey(msg).connId;
  } catch {
    return null; // ConnectionOwners reports it
  }
}
