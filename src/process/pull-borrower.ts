/**
 * The worker's side of PULL lending (pull-lending.ts says why and when): it reads a
 * handler's Mongrel2 PULL itself while the supervisor lends it, and gives it back when asked.
 *
 * While it reads, it makes the decisions ConnectionOwners makes in the supervisor, with
 * this worker as the only owner, and reports them so the supervisor's table stays the
 * same as if every message had passed through it:
 *   - a connection's first message opens it here ("opened", with the sender and the
 *     DOWNLOAD_CREDITS window the supervisor learns from it);
 *   - a disconnect ends it ("closed", like the connections the gateway closes itself);
 *   - a control message for a connection not owned here is not delivered ("orphans": the
 *     supervisor's HandlerWatch counts it; it spots two gateways on one send_spec).
 * Reports go out in order, once per turn, and always before the PULL goes back.
 *
 * Ordering with the data channel: messages the supervisor sent before lending travel on
 * the data channel, the PULL on IPC, and the two are not ordered. The lend names how many
 * data messages came before it (`seq`); the PULL is read only once that many were taken.
 */
import type { Socket } from 'node:net';
import type { Gateway } from '../gateway/gateway.js';
import type { LentPull } from '../zmq/zmtp-connection.js';
import { creditWindowOf, isDisconnectMessage, orphanKindOf, routeOf, type Route } from './connection-owners.js';
import { connKey, type FromWorker, type ToWorker } from './messages.js';
import type { OwnershipReporter } from './ownership-reporter.js';

type Lend = Extract<ToWorker, { t: 'lend-pull' }>;

export interface BorrowerDeps {
  readonly gateway: Gateway;
  readonly reporter: OwnershipReporter;
  /** Data messages taken from the channel so far. */
  seen(): number;
  send(msg: FromWorker, socket?: Socket): void;
}

interface Waiting {
  readonly lend: Lend;
  readonly socket: Socket;
  returnAsked: boolean;
}

export class PullBorrower {
  /** Per lent handler: the connections this worker owns on it. */
  private readonly owned = new Map<number, Set<string>>();
  /** Handlers whose DOWNLOAD_CREDITS window was reported (it is learnt once). */
  private readonly windowKnown = new Set<number>();
  private waiting: Waiting[] = [];
  /** Stopping: a PULL lent from now on is read only to hand it back. */
  private givingBack = false;

  constructor(private readonly deps: BorrowerDeps) {}

  /** The supervisor lends a PULL (the socket came with the message). */
  lend(lend: Lend, socket: Socket): void {
    // Nothing is read before its turn: the stream buffers, then stops reading. An error
    // meanwhile must not throw; start() sees the socket destroyed and reports it down.
    socket.pause();
    socket.on('error', () => undefined);
    this.waiting.push({ lend, socket, returnAsked: this.givingBack });
    this.poll();
  }

  /** The supervisor wants the PULL back. */
  giveBack(handlerId: number): void {
    const w = this.waiting.find((x) => x.lend.handler === handlerId);
    if (w) {
      // Not read yet: it is read from its turn on, then given back at once.
      w.returnAsked = true;
      return;
    }
    const pull = this.deps.gateway.socketOf(handlerId)?.returnPull() ?? null;
    this.owned.delete(handlerId);
    this.returned(handlerId, pull);
  }

  /** More data messages were taken from the channel: lends waiting for them can start. */
  poll(): void {
    if (this.waiting.length === 0) return;
    const seen = this.deps.seen();
    const due = this.waiting.filter((w) => w.lend.seq <= seen);
    if (due.length === 0) return;
    this.waiting = this.waiting.filter((w) => w.lend.seq > seen);
    for (const w of due) {
      this.start(w.lend, w.socket);
      if (w.returnAsked) this.giveBack(w.lend.handler);
    }
  }

  /** The worker stops on its own (a signal, the supervisor gone): every PULL goes back first. */
  giveBackAll(): void {
    this.givingBack = true;
    for (const w of this.waiting) w.returnAsked = true;
    for (const h of [...this.owned.keys()]) this.giveBack(h);
  }

  /** The gateway closed this connection itself (reported as closed by the OwnershipReporter). */
  closed(handlerId: number, key: string): void {
    this.owned.get(handlerId)?.delete(key);
  }

  private start(lend: Lend, socket: Socket): void {
    const h = lend.handler;
    const hs = this.deps.gateway.socketOf(h);
    if (!hs || socket.destroyed) {
      socket.destroy();
      this.deps.send({ t: 'pull-down', handler: h });
      return;
    }
    // The supervisor's view when it lent, less what this worker closed meanwhile (its report
    // may have crossed the lend): a reused id must be reported as a new connection.
    const owned = new Set(lend.owned.filter((key) => this.deps.gateway.holds(key)));
    this.owned.set(h, owned);
    const pull: LentPull = { socket, rest: Buffer.from(lend.rest, 'base64'), inMultipart: lend.inMultipart };
    hs.borrowPull(
      pull,
      (msg) => this.onMessage(h, owned, msg),
      () => {
        if (this.owned.get(h) !== owned) return;
        this.owned.delete(h);
        this.deps.reporter.flushNow();
        this.deps.send({ t: 'pull-down', handler: h });
      },
    );
  }

  private returned(handlerId: number, pull: LentPull | null): void {
    // Reports of what was read so far must reach the supervisor before the PULL does.
    this.deps.reporter.flushNow();
    if (pull === null) {
      this.deps.send({ t: 'pull-returned', handler: handlerId, rest: '', inMultipart: false });
      return;
    }
    this.deps.send({ t: 'pull-returned', handler: handlerId, rest: pull.rest.toString('base64'), inMultipart: pull.inMultipart }, pull.socket);
  }

  /** ConnectionOwners.deliver, with this worker as the only owner. */
  private onMessage(h: number, owned: Set<string>, msg: Buffer): void {
    let r: Route;
    try {
      r = routeOf(msg);
    } catch {
      // No valid sender and connection id: the gateway's parser refuses it the same way,
      // and counts and reports it (rate-limited) as the supervisor would have.
      this.deps.gateway.handleMessage(h, msg);
      return;
    }
    const key = connKey(h, r.connId);
    const { gateway, reporter } = this.deps;
    if (owned.has(key)) {
      gateway.handleMessage(h, msg);
      if (isDisconnectMessage(msg, r) && owned.delete(key)) reporter.closed(key);
      return;
    }
    if (r.control) {
      reporter.orphan(key, orphanKindOf(msg, r));
      return;
    }
    let window = 0;
    if (!this.windowKnown.has(h)) {
      window = creditWindowOf(msg);
      if (window > 0) this.windowKnown.add(h);
    }
    owned.add(key);
    reporter.opened(key, r.sender, window);
    gateway.handleMessage(h, msg);
  }
}
