/**
 * One HandlerSocket is the pair of connections m2gw keeps toward one Mongrel2 Handler:
 * a PULL connected to its send_spec and a PUB connected to its recv_spec, both spoken
 * in ZMTP directly (zmtp-connection.ts says why not through libzmq).
 *
 * Why wait for the subscription: a PUB drops messages while no subscriber is known,
 * and Mongrel2's SUB subscription reaches us a moment after the connection. So we
 * start pulling requests only once a reply can actually be delivered. Replies are
 * queued in JS meanwhile, never lost; the kernel's socket buffer and then this queue
 * absorb a slow Mongrel2 (what libzmq's noDrop did before).
 *
 * Why batching: every reply produced during one event-loop turn goes out in one write.
 * Each reply is its own single-frame message (Mongrel2 treats each frame as a reply).
 *
 * Why the PULL pauses on its own (besides pause() from the supervisor's in-flight cap):
 * - while the PUB is not subscribed after having been (Mongrel2 restarted): replies made
 *   now are dropped (they are for the old Mongrel2's clients, whose small-integer
 *   connection ids the new one hands out again), so requests the new Mongrel2 sends
 *   must not be taken before its subscription is back, or their replies would be
 *   dropped too. Our PULL and PUB reconnect on independent timers, so the PULL is often
 *   first. Bounded by SUBSCRIBE_GRACE_MS, for the same Mongrel2 quirk as connect().
 * - while more than PUB_HIGH_WATER bytes wait to be written to Mongrel2 (it stopped
 *   reading: stopped, overloaded): no new work is taken until the socket drains. What
 *   was in flight still queues: with download.flow_control on, each connection is
 *   bounded by its credits; without it, by nothing (as before: zeromq.js's noDrop also
 *   held every reply in memory once libzmq's 10,000-message HWM was full).
 */
import { ZmtpConnection, type LentPull } from './zmtp-connection.js';
import { frameHeaderBytes, writeFrameHeader } from './zmtp-codec.js';

export interface HandlerSocketOptions {
  readonly sendSpec: string;
  readonly recvSpec: string;
  /** Mongrel2's recv_ident: the subscription prefix we wait for ('' = everything). */
  readonly recvIdent: string;
  /** Skip the PULL (a worker fed by the supervisor only needs the publishing half). */
  readonly publishOnly?: boolean;
}

export type MessageListener = (msg: Buffer) => void;

/** How long connect() waits for Mongrel2's subscription before pulling requests anyway. */
const SUBSCRIBE_GRACE_MS = 2_000;
/** Replies at least this big are written as they are; smaller ones are copied into one buffer. */
const COPY_BELOW = 16 * 1024;
/** How long close() lets queued replies leave. */
const LINGER_MS = 2_000;
/** Unwritten reply bytes above which no more requests are pulled until the PUB drains. */
export const PUB_HIGH_WATER = 8 * 1024 * 1024;

type PauseReason = 'asked' | 'backlog' | 'unsubscribed';

export class HandlerSocket {
  readonly options: HandlerSocketOptions;
  private readonly pub: ZmtpConnection;
  private pull: ZmtpConnection | null = null;
  /** Replies of this turn: one Buffer, or the parts of one reply (sendParts). */
  private queue: Array<Buffer | Buffer[]> = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private closed = false;
  private subscribed = false;
  private everSubscribed = false;
  private subscribedWaiters: Array<() => void> = [];
  private resolveReceiveStopped: () => void = () => undefined;
  /** Subscription prefixes Mongrel2 holds on our PUB (latin1). */
  private readonly prefixes = new Set<string>();
  private onPubError: (err: unknown) => void = () => undefined;
  /** Why the PULL is not being read (see the file comment); empty = reading. */
  private readonly pauseReasons = new Set<PauseReason>();
  private resubscribeGrace: NodeJS.Timeout | null = null;

  constructor(options: HandlerSocketOptions) {
    this.options = options;
    this.pub = new ZmtpConnection(options.recvSpec, 'PUB', {
      ready: () => undefined,
      message: (msg) => this.onSubscription(msg),
      down: () => {
        // Mongrel2 went away: its subscriptions with it. Replies to its clients are dropped
        // until it subscribes again (a restarted Mongrel2 reuses connection ids).
        this.prefixes.clear();
        this.subscribed = false;
        // Before the first subscription, held replies stay held (see connect()).
        if (!this.everSubscribed) return;
        this.queue = [];
        this.queuedBytes = 0;
        this.setPaused('backlog', false);
        this.setPaused('unsubscribed', true);
        if (this.resubscribeGrace) clearTimeout(this.resubscribeGrace);
        this.resubscribeGrace = setTimeout(() => {
          this.resubscribeGrace = null;
          this.setPaused('unsubscribed', false);
        }, SUBSCRIBE_GRACE_MS);
        this.resubscribeGrace.unref();
      },
      problem: (err) => this.onPubError(err),
      drain: () => this.setPaused('backlog', false),
    });
  }

  /**
   * Connect both sockets. Resolves once Mongrel2 has subscribed, or after SUBSCRIBE_GRACE_MS
   * without it: Mongrel2 1.12 that has requests queued for a handler with no PULL connected
   * stops sending its subscription to new publishers until a PULL connects (seen when m2gw
   * restarts under traffic), so waiting for the subscription before pulling can wait forever.
   * Replies made before the first subscription are held here, not dropped.
   */
  async connect(
    onMessage: MessageListener,
    onError: (err: unknown) => void,
    onWaiting: (waitedMs: number) => void = () => undefined,
    warnEveryMs = 10_000,
  ): Promise<void> {
    this.onPubError = onError;
    this.pub.open();
    const subscribed = this.waitSubscribed(warnEveryMs, onWaiting);
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, SUBSCRIBE_GRACE_MS);
    });
    await Promise.race([subscribed, grace]);
    clearTimeout(graceTimer);
    if (!this.subscribed) onWaiting(SUBSCRIBE_GRACE_MS);
    if (this.options.publishOnly || this.closed) {
      this.resolveReceiveStopped();
      return;
    }
    const pull = new ZmtpConnection(this.options.sendSpec, 'PULL', {
      ready: () => undefined,
      message: (msg) => {
        if (!this.closed) onMessage(msg);
      },
      down: () => undefined,
      problem: onError,
    });
    this.pull = pull;
    if (this.pauseReasons.size > 0) pull.pause();
    pull.open();
  }

  get isSubscribed(): boolean {
    return this.subscribed;
  }

  /** The PULL is connected to Mongrel2's send_spec (false in publishOnly mode). */
  get isPulling(): boolean {
    return this.pull?.isReady ?? false;
  }

  /** Lend the PULL to a worker (process/pull-lending.ts): only while connected and reading. */
  lendPull(): LentPull | null {
    if (this.closed || !this.pull || this.pauseReasons.size > 0) return null;
    return this.pull.lend();
  }

  /** The lent PULL came back: read it again from where the worker stopped. */
  takeBackPull(lent: LentPull): void {
    if (this.closed || !this.pull?.isLent) {
      lent.socket.destroy();
      return;
    }
    this.pull.adopt(lent);
  }

  /** The worker holding the PULL lost it (it died, or Mongrel2 closed it): connect a new one. */
  pullLendingLost(): void {
    this.pull?.lendingLost();
  }

  /** Worker side: read a PULL lent by the supervisor; pausing applies to it as to an own PULL. */
  borrowPull(lent: LentPull, onMessage: MessageListener, onDown: () => void): void {
    const pull = ZmtpConnection.borrowed(
      this.options.sendSpec,
      'PULL',
      {
        ready: () => undefined,
        message: (msg) => {
          if (!this.closed) onMessage(msg);
        },
        down: () => {
          if (this.pull === pull) this.pull = null;
          onDown();
        },
        problem: (err) => this.onPubError(err),
      },
      lent,
    );
    this.pull = pull;
    if (this.pauseReasons.size > 0) pull.pause();
  }

  /** Worker side: give the lent PULL back (what was read is delivered first). Null if it is gone. */
  returnPull(): LentPull | null {
    const pull = this.pull;
    this.pull = null;
    return pull?.lend() ?? null;
  }

  /** Bytes waiting to be sent (backpressure signal). */
  get pendingBytes(): number {
    return this.queuedBytes + this.pub.writableLength;
  }

  /**
   * Queue one reply. It leaves with everything else sent in this event-loop turn.
   * The Buffer must not be modified afterwards (a large one is written without copying).
   */
  send(frame: Buffer): void {
    if (this.closed) return;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /**
   * Queue one reply given in parts (its header, then body pieces): the same as
   * send(Buffer.concat(parts)) without copying large bodies. The parts must not be
   * modified afterwards.
   */
  sendParts(parts: Buffer[]): void {
    if (this.closed) return;
    let size = 0;
    for (const p of parts) size += p.length;
    this.queue.push(parts.length === 1 ? parts[0]! : parts);
    this.queuedBytes += size;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Write what is queued now (the gateway calls it at the end of its flush: no second turn). */
  flushNow(): void {
    if (this.queue.length > 0) this.flush();
  }

  /** Stop reading requests (drain): the PULL disconnects, replies keep flowing. */
  async stopReceiving(): Promise<void> {
    await this.pull?.close();
    this.resolveReceiveStopped();
  }

  /** Temporarily stop pulling (too many requests in flight); resumes with resume(). */
  pause(): void {
    this.setPaused('asked', true);
  }

  resume(): void {
    this.setPaused('asked', false);
  }

  private setPaused(reason: PauseReason, on: boolean): void {
    const before = this.pauseReasons.size;
    if (on) this.pauseReasons.add(reason);
    else this.pauseReasons.delete(reason);
    if (before === 0 && this.pauseReasons.size > 0) this.pull?.pause();
    else if (before > 0 && this.pauseReasons.size === 0) this.pull?.resume();
  }

  /** Flush what is queued, then close. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopReceiving();
    this.flush();
    this.closed = true;
    this.flushScheduled = false;
    if (this.resubscribeGrace) clearTimeout(this.resubscribeGrace);
    await this.pub.close(LINGER_MS);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    // Before Mongrel2's first subscription a PUB would drop the replies: hold them (see
    // connect). After it, a lost subscription means that Mongrel2 is gone with its clients,
    // and dropping replies to them is right: a restarted Mongrel2 reuses connection ids.
    if (!this.everSubscribed || this.closed || this.queue.length === 0) return;
    const frames = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    if (!this.subscribed) return;
    let small = 0;
    for (const f of frames) {
      const size = sizeOf(f);
      if (size < COPY_BELOW && this.matches(headOf(f))) small += frameHeaderBytes(size) + size;
    }
    // One buffer for the small replies (the common case: one write per turn); big ones are
    // written as they are, in order, behind their header (corked: one writev).
    let out = small > 0 ? Buffer.allocUnsafe(small) : null;
    let pos = 0;
    let corked = false;
    for (const f of frames) {
      if (!this.matches(headOf(f))) continue;
      const size = sizeOf(f);
      if (size < COPY_BELOW) {
        pos = writeFrameHeader(out!, pos, size);
        if (Buffer.isBuffer(f)) pos += f.copy(out!, pos);
        else for (const p of f) pos += p.copy(out!, pos);
        continue;
      }
      if (!corked) {
        this.pub.cork();
        corked = true;
      }
      if (out !== null && pos > 0) {
        this.pub.write(out.subarray(0, pos));
        out = out.subarray(pos);
        pos = 0;
      }
      const h = Buffer.allocUnsafe(frameHeaderBytes(size));
      writeFrameHeader(h, 0, size);
      this.pub.write(h);
      if (Buffer.isBuffer(f)) this.pub.write(f);
      else for (const p of f) if (p.length > 0) this.pub.write(p);
    }
    if (out !== null && pos > 0) this.pub.write(out.subarray(0, pos));
    if (corked) this.pub.uncork();
    if (this.pub.writableLength > PUB_HIGH_WATER) this.setPaused('backlog', true);
  };

  /** Whether Mongrel2 subscribed to a prefix of this reply (in practice: '' or its recv_ident). */
  private matches(head: Buffer): boolean {
    const frame = head;
    if (this.prefixes.has('')) return true;
    for (const p of this.prefixes) {
      if (frame.length >= p.length && frame.toString('latin1', 0, p.length) === p) return true;
    }
    return false;
  }

  private onSubscription(msg: Buffer): void {
    if (msg.length === 0) return;
    const prefix = msg.toString('latin1', 1);
    if (msg[0] === 1) {
      this.prefixes.add(prefix);
      if (prefix === '' || this.options.recvIdent.startsWith(prefix) || prefix === this.options.recvIdent) this.markSubscribed();
    } else if (msg[0] === 0) {
      this.prefixes.delete(prefix);
      if (prefix === this.options.recvIdent) this.subscribed = false;
    }
  }

  private markSubscribed(): void {
    this.subscribed = true;
    if (this.resubscribeGrace) clearTimeout(this.resubscribeGrace);
    this.resubscribeGrace = null;
    this.setPaused('unsubscribed', false);
    if (!this.everSubscribed) {
      this.everSubscribed = true;
      if (this.queue.length > 0 && !this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    }
    const waiters = this.subscribedWaiters;
    this.subscribedWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves when Mongrel2 has subscribed. Never gives up: Mongrel2 may start after us
   * (systemd ordering, a restart); `onWaiting` is told every `warnEveryMs` meanwhile.
   */
  private waitSubscribed(warnEveryMs: number, onWaiting: (waitedMs: number) => void): Promise<void> {
    if (this.subscribed) return Promise.resolve();
    const started = Date.now();
    return new Promise((resolve) => {
      const timer = setInterval(() => onWaiting(Date.now() - started), warnEveryMs);
      timer.unref();
      this.subscribedWaiters.push(() => {
        clearInterval(timer);
        resolve();
      });
    });
  }
}

function sizeOf(f: Buffer | Buffer[]): number {
  if (Buffer.isBuffer(f)) return f.length;
  let n = 0;
  for (const p of f) n += p.length;
  return n;
}

/** The first part of a reply: its header, where the subscription prefix (the sender) is. */
function headOf(f: Buffer | Buffer[]): Buffer {
  return Buffer.isBuffer(f) ? f : (f[0] ?? Buffer.alloc(0));
}
