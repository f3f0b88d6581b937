/**
 * Connection ownership: which worker gets each Mongrel2 message. Mongrel2 numbers
 * connections per server, so the key is (handler index, conn id). The first message
 * of a connection picks an accepting worker (fewest connections); every later
 * message of it — pipelined requests, credits, upload done, disconnect — goes to
 * that owner until the ownership ends:
 *   - a disconnect: forwarded to the owner, then the mapping is dropped;
 *   - the owner closed the connection itself (Mongrel2 sends nothing then, and will
 *     reuse the id): the worker reports it;
 *   - the owner retires (reload) and reports the connection idle;
 *   - the owner died.
 *
 * Reports from a worker travel on IPC, which is not ordered with the data channel.
 * So each report carries `seen`, the number of data messages the worker had taken
 * when it decided; a mapping is dropped only if nothing newer was sent to it since.
 * Otherwise the worker already holds a newer message for that key and keeps owning
 * the connection (it will report again).
 *
 * Pure: no sockets, no timers. The supervisor wires it to workers and Mongrel2.
 */
import { classify, headerFirst, parseRequest, peekRoutingKey } from '../mongrel2/request.js';
import { connKey, type OrphanKind } from './messages.js';

export interface MessageTarget {
  readonly id: number;
  /** Deliver one message, in order with every earlier one. */
  deliver(handlerIndex: number, msg: Buffer): void;
}

export interface OwnershipEvents {
  /** Nobody can take this connection (shutting down): answer 503 and close it. */
  refuse(handlerIndex: number, sender: string, connId: string): void;
  /** The message has no valid sender/conn id: it cannot be routed. */
  badFrame(handlerIndex: number, msg: Buffer, err: unknown): void;
  /** A control message (credits, disconnect) for a connection nobody holds (HandlerWatch.orphanControl). */
  orphanControl?(handlerIndex: number, connId: string, kind: OrphanKind): void;
  /** A connection's first message: it carried DOWNLOAD_CREDITS, or the handler's window is known. */
  newConnection?(handlerIndex: number, flowControl: boolean): void;
  /** The mapping for a connection ended: late control messages for it are expected. */
  forgot?(handlerIndex: number, connId: string): void;
}

interface Slot {
  readonly target: MessageTarget;
  /** Data messages forwarded so far: the sequence number of the latest one. */
  sent: number;
  readonly owned: Set<string>;
  accepting: boolean;
}

interface Owner {
  readonly slot: Slot;
  lastSeq: number;
}

interface Parked {
  readonly handlerIndex: number;
  readonly key: string;
  readonly msg: Buffer;
}

export interface ConnectionOwnersOptions {
  /** Messages held while no worker can take new connections (a worker restarting); beyond: 503. */
  readonly maxParked?: number;
}

export class ConnectionOwners {
  private readonly slots = new Map<number, Slot>();
  private readonly owners = new Map<string, Owner>();
  private accepting: Slot[] = [];
  private rotate = 0;
  private refusing = false;
  private parked: Parked[] = [];
  private readonly parkedKeys = new Set<string>();
  private readonly maxParked: number;
  private readonly senders = new Map<number, string>();
  private readonly windows = new Map<number, number>();
  /** Handlers being removed (reload): their new connections are refused, owned ones still served. */
  private readonly refusedHandlers = new Set<number>();

  constructor(private readonly events: OwnershipEvents, opts: ConnectionOwnersOptions = {}) {
    this.maxParked = opts.maxParked ?? 10_000;
  }

  /** Register a worker. Accepting workers take new connections. */
  add(target: MessageTarget, accepting: boolean): void {
    if (this.slots.has(target.id)) throw new Error(`worker ${target.id} added twice`);
    this.slots.set(target.id, { target, sent: 0, owned: new Set(), accepting: false });
    if (accepting) this.setAccepting(target.id, true);
  }

  setAccepting(id: number, accepting: boolean): void {
    const slot = this.slots.get(id);
    if (!slot || slot.accepting === accepting) return;
    slot.accepting = accepting;
    this.accepting = [...this.slots.values()].filter((s) => s.accepting);
    if (accepting) this.replayParked();
  }

  /** Shutdown: new connections get 503 from now on (parked ones too). Owned ones still reach their owner. */
  refuseNew(): void {
    this.refusing = true;
    for (const s of this.slots.values()) s.accepting = false;
    this.accepting = [];
    this.replayParked();
  }

  /** A worker is gone: returns the connections it owned (the caller closes them). */
  remove(id: number): string[] {
    const slot = this.slots.get(id);
    if (!slot) return [];
    const keys = [...slot.owned];
    for (const key of keys) this.owners.delete(key);
    slot.owned.clear();
    this.slots.delete(id);
    if (slot.accepting) this.accepting = this.accepting.filter((s) => s !== slot);
    return keys;
  }

  ownedBy(id: number): number {
    return this.slots.get(id)?.owned.size ?? 0;
  }

  /** Who owns a connection (tests and status). */
  ownerOf(handlerIndex: number, connId: string): number | null {
    return this.owners.get(connKey(handlerIndex, connId))?.slot.target.id ?? null;
  }

  /** Data messages forwarded to a worker so far. */
  sentTo(id: number): number {
    return this.slots.get(id)?.sent ?? 0;
  }

  get parkedCount(): number {
    return this.parked.length;
  }

  get connectionCount(): number {
    return this.owners.size;
  }

  /**
   * DOWNLOAD_CREDITS per handler, as seen on connections' first requests (null: not
   * seen; download.flow_control is off or no request came yet). New workers get it:
   * a connection handed to them carries it no more.
   */
  creditWindows(handlerIds: readonly number[]): Array<number | null> {
    return handlerIds.map((id) => this.windows.get(id) ?? null);
  }

  /** A handler leaves (reload): refuse its new connections (503, close); owned ones stay with their owners. */
  refuseHandler(handlerId: number): void {
    this.refusedHandlers.add(handlerId);
  }

  /** The handler's socket is closed: forget what was learnt about it. */
  forgetHandler(handlerId: number): void {
    this.refusedHandlers.delete(handlerId);
    this.senders.delete(handlerId);
    this.windows.delete(handlerId);
  }

  /** Connections of one handler that some worker owns. */
  ownedOnHandler(handlerId: number): number {
    const prefix = `${handlerId}:`;
    let n = 0;
    for (const key of this.owners.keys()) if (key.startsWith(prefix)) n++;
    return n;
  }

  /** The sender token last seen on a handler (for replies the supervisor makes itself). */
  senderOf(handlerIndex: number): string | null {
    return this.senders.get(handlerIndex) ?? null;
  }

  deliver(handlerIndex: number, msg: Buffer): void {
    let r: Route;
    try {
      r = routeOf(msg);
    } catch (err) {
      this.events.badFrame(handlerIndex, msg, err);
      return;
    }
    const { sender, connId } = r;
    if (this.senders.get(handlerIndex) !== sender) this.senders.set(handlerIndex, sender);
    const key = connKey(handlerIndex, connId);
    const owner = this.owners.get(key);
    if (owner) {
      this.send(owner.slot, handlerIndex, msg);
      owner.lastSeq = owner.slot.sent;
      if (isDisconnectMessage(msg, r)) this.unown(key, owner);
      return;
    }
    if (this.parkedKeys.has(key)) {
      this.parked.push({ handlerIndex, key, msg });
      return;
    }
    // Credits or a disconnect for a connection nobody holds: nothing is waiting for it.
    if (r.control) {
      this.events.orphanControl?.(handlerIndex, connId, orphanKindOf(msg, r));
      return;
    }
    if (!this.windows.has(handlerIndex)) {
      const window = creditWindowOf(msg);
      if (window > 0) this.windows.set(handlerIndex, window);
    }
    this.events.newConnection?.(handlerIndex, this.windows.has(handlerIndex));
    if (this.refusedHandlers.has(handlerIndex)) {
      this.events.refuse(handlerIndex, sender, connId);
      return;
    }
    const slot = this.pick();
    if (slot) {
      this.send(slot, handlerIndex, msg);
      this.owners.set(key, { slot, lastSeq: slot.sent });
      slot.owned.add(key);
      return;
    }
    if (this.refusing || this.parked.length >= this.maxParked) {
      this.events.refuse(handlerIndex, sender, connId);
      return;
    }
    this.parked.push({ handlerIndex, key, msg });
    this.parkedKeys.add(key);
  }

  /**
   * A worker reading a lent PULL took a new connection (pull-lending.ts): mirror what
   * deliver() would have learnt and decided. The entry is [key, sender, DOWNLOAD_CREDITS or 0].
   */
  applyOpened(id: number, entries: ReadonlyArray<readonly [string, string, number]>): void {
    const slot = this.slots.get(id);
    if (!slot) return;
    for (const [key, sender, window] of entries) {
      const [h] = splitKey(key);
      if (this.senders.get(h) !== sender) this.senders.set(h, sender);
      if (window > 0 && !this.windows.has(h)) this.windows.set(h, window);
      this.events.newConnection?.(h, this.windows.has(h));
      const prev = this.owners.get(key);
      if (prev) prev.slot.owned.delete(key);
      // No data message went to the worker for it since the lend (the worker took all of
      // those before reading the PULL): its close, with whatever `seen`, ends the mapping.
      this.owners.set(key, { slot, lastSeq: prev?.slot === slot ? prev.lastSeq : 0 });
      slot.owned.add(key);
    }
  }

  /** A worker reading a lent PULL got control messages for connections it does not own. */
  applyOrphans(entries: ReadonlyArray<readonly [string, OrphanKind]>): void {
    for (const [key, kind] of entries) {
      if (this.owners.has(key)) continue;
      const [h, connId] = splitKey(key);
      this.events.orphanControl?.(h, connId, kind);
    }
  }

  /** The keys of one handler a worker owns (handed over with a lent PULL). */
  ownedOn(id: number, handlerId: number): string[] {
    const prefix = `${handlerId}:`;
    return [...(this.slots.get(id)?.owned ?? [])].filter((k) => k.startsWith(prefix));
  }

  /** The worker closed these connections; each entry is [key, seen at close]. */
  applyClosed(id: number, entries: ReadonlyArray<readonly [string, number]>): void {
    for (const [key, seen] of entries) {
      const owner = this.owners.get(key);
      if (owner && owner.slot.target.id === id && owner.lastSeq <= seen) this.unown(key, owner);
    }
  }

  /**
   * A retiring worker's report: every connection it owns that is not busy and got
   * nothing since `seen` moves on (its next message picks an accepting worker).
   * Returns how many connections the worker still owns.
   */
  applyBusy(id: number, busy: readonly string[], seen: number): number {
    const slot = this.slots.get(id);
    if (!slot) return 0;
    const keep = new Set(busy);
    for (const key of [...slot.owned]) {
      if (keep.has(key)) continue;
      const owner = this.owners.get(key);
      if (owner && owner.lastSeq <= seen) this.unown(key, owner);
    }
    return slot.owned.size;
  }

  private send(slot: Slot, handlerIndex: number, msg: Buffer): void {
    slot.sent++;
    slot.target.deliver(handlerIndex, msg);
  }

  private unown(key: string, owner: Owner): void {
    this.owners.delete(key);
    owner.slot.owned.delete(key);
    const [h, connId] = splitKey(key);
    this.events.forgot?.(h, connId);
  }

  /** Fewest connections among accepting workers; ties rotate so equal workers share. */
  private pick(): Slot | null {
    const n = this.accepting.length;
    if (n === 0) return null;
    if (n === 1) return this.accepting[0]!;
    let best: Slot | null = null;
    let bestIndex = 0;
    for (let i = 0; i < n; i++) {
      const idx = (this.rotate + i) % n;
      const s = this.accepting[idx]!;
      if (best === null || s.owned.size < best.owned.size) {
        best = s;
        bestIndex = idx;
      }
    }
    this.rotate = (bestIndex + 1) % n;
    return best;
  }

  private replayParked(): void {
    if (this.parked.length === 0) return;
    const parked = this.parked;
    this.parked = [];
    this.parkedKeys.clear();
    for (const p of parked) this.deliver(p.handlerIndex, p.msg);
  }
}

const DISCONNECT = Buffer.from('disconnect');
const CREDITS_KEY = Buffer.from('DOWNLOAD_CREDITS');

/** What routing needs of a message (shared with a worker reading a lent PULL: pull-borrower.ts). */
export interface Route {
  readonly sender: string;
  readonly connId: string;
  /** A control message (disconnect, credits): the path "@*". */
  readonly control: boolean;
  /** Where the path starts. */
  readonly pathAt: number;
}

/** Throws FrameError for a message without a valid sender and connection id. */
export function routeOf(msg: Buffer): Route {
  const { sender, connId } = peekRoutingKey(msg);
  const p = sender.length + connId.length + 2;
  return { sender, connId, control: msg[p] === 0x40 && msg[p + 1] === 0x2a && msg[p + 2] === 0x20, pathAt: p };
}

/** A disconnect: ownership ends. Most control messages are credits (one per write with flow control): parse only candidates. */
export function isDisconnectMessage(msg: Buffer, r: Route): boolean {
  return r.control && msg.indexOf(DISCONNECT, r.pathAt) !== -1 && isDisconnect(msg);
}

export function orphanKindOf(msg: Buffer, r: Route): OrphanKind {
  return msg.indexOf(DISCONNECT, r.pathAt) !== -1 ? 'disconnect' : 'credits';
}

/** The DOWNLOAD_CREDITS a connection's first request carries (download.flow_control on), else 0. */
export function creditWindowOf(msg: Buffer): number {
  // Header names from clients are lower-cased by Mongrel2: only Mongrel2 writes this one.
  if (msg.indexOf(CREDITS_KEY) === -1) return 0;
  try {
    const v = headerFirst(parseRequest(msg).headers, 'DOWNLOAD_CREDITS');
    const n = v === undefined ? NaN : Number(v);
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  } catch {
    return 0; // the worker will report the bad frame
  }
}

/** connKey's parts: the handler id and Mongrel2's connection id. */
function splitKey(key: string): [number, string] {
  const colon = key.indexOf(':');
  return [Number(key.slice(0, colon)), key.slice(colon + 1)];
}

function isDisconnect(msg: Buffer): boolean {
  try {
    return classify(parseRequest(msg)).kind === 'disconnect';
  } catch {
    return false;
  }
}
