/**
 * The only importer of zeromq. One HandlerSocket is the pair of sockets m2gw keeps
 * toward one Mongrel2 Handler: a PULL connected to its send_spec and an XPUB
 * connected to its recv_spec.
 *
 * Why XPUB and not PUB: a PUB silently drops messages while no subscriber is
 * known, and Mongrel2's SUB subscription reaches us a moment after the TCP
 * connection. XPUB lets us see that subscription, so we start pulling requests only
 * once a reply can actually be delivered. `noDrop` makes a full queue block instead
 * of dropping; replies are queued in JS meanwhile, never lost.
 *
 * Why batching: every reply produced during one event-loop turn goes out as one
 * multipart message. Mongrel2 treats each frame as its own reply, and one send per
 * turn is markedly cheaper than one per reply (and avoids zeromq.js's EBUSY).
 */
import * as zmq from 'zeromq';

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

export class HandlerSocket {
  readonly options: HandlerSocketOptions;
  private readonly pub: zmq.XPublisher;
  private pull: zmq.Pull | null = null;
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private sending = false;
  private flushScheduled = false;
  private closed = false;
  private subscribed = false;
  private everSubscribed = false;
  private subscribedWaiters: Array<() => void> = [];
  private resolveReceiveStopped: () => void = () => undefined;
  private paused = false;
  /** Connections the PULL has to Mongrel2 (from the socket monitor). */
  private pullPeers = 0;

  constructor(options: HandlerSocketOptions) {
    this.options = options;
    this.pub = new zmq.XPublisher({ noDrop: true, sendHighWaterMark: 10_000, linger: 2_000 });
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
    this.pub.connect(this.options.recvSpec);
    void this.watchSubscriptions();
    const subscribed = this.waitSubscribed(warnEveryMs, onWaiting);
    let graceTimer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      graceTimer = setTimeout(resolve, SUBSCRIBE_GRACE_MS);
    });
    await Promise.race([subscribed, grace]);
    clearTimeout(graceTimer);
    if (!this.subscribed) onWaiting(SUBSCRIBE_GRACE_MS);
    if (this.options.publishOnly) {
      this.resolveReceiveStopped();
      return;
    }
    const pull = new zmq.Pull({ linger: 0 });
    this.pull = pull;
    pull.events.on('connect', () => {
      this.pullPeers++;
    });
    pull.events.on('disconnect', () => {
      this.pullPeers = Math.max(0, this.pullPeers - 1);
    });
    pull.connect(this.options.sendSpec);
    void this.receiveLoop(pull, onMessage).catch(onError);
  }

  get isSubscribed(): boolean {
    return this.subscribed;
  }

  /** The PULL is connected to Mongrel2's send_spec (false in publishOnly mode). */
  get isPulling(): boolean {
    return this.pullPeers > 0;
  }

  /** Bytes waiting in JS for the socket to accept them (backpressure signal). */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /**
   * Queue one reply. It leaves with everything else sent in this event-loop turn.
   * The Buffer must not be modified afterwards (zeromq.js sends it without copying).
   */
  send(frame: Buffer): void {
    if (this.closed) return;
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (!this.flushScheduled && !this.sending) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Stop reading requests (drain): the PULL disconnects, replies keep flowing. */
  async stopReceiving(): Promise<void> {
    if (this.pull && !this.pull.closed) {
      this.pull.close();
    }
    this.resolveReceiveStopped();
  }

  /** Temporarily stop pulling (too many requests in flight); resumes with resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const waiters = this.resumeWaiters;
    this.resumeWaiters = [];
    for (const w of waiters) w();
  }

  private resumeWaiters: Array<() => void> = [];

  /** Flush what is queued, then close. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.stopReceiving();
    const deadline = Date.now() + 2_000;
    while ((this.queue.length > 0 || this.sending) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    this.closed = true;
    this.pub.close();
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    // Before Mongrel2's first subscription an XPUB would drop the replies: hold them (see
    // connect). After it, a lost subscription means that Mongrel2 is gone with its clients,
    // and dropping replies to them is right: a restarted Mongrel2 reuses connection ids.
    if (!this.everSubscribed) return;
    if (this.sending || this.queue.length === 0 || this.closed) return;
    const frames = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    this.sending = true;
    this.pub.send(frames).then(
      () => {
        this.sending = false;
        if (this.queue.length > 0) this.flush();
      },
      (err: unknown) => {
        // Only a closed socket rejects here (noDrop + no timeout waits instead of failing).
        this.sending = false;
        if (!this.closed) {
          this.queue = frames.concat(this.queue);
          for (const f of frames) this.queuedBytes += f.length;
          setTimeout(this.flush, 10);
        }
        void err;
      },
    );
  };

  private async watchSubscriptions(): Promise<void> {
    try {
      for await (const [msg] of this.pub) {
        if (!msg || msg.length === 0) continue;
        if (msg[0] === 1) {
          const prefix = msg.subarray(1).toString('latin1');
          if (prefix === '' || this.options.recvIdent.startsWith(prefix) || prefix === this.options.recvIdent) {
            this.markSubscribed();
          }
        } else if (msg[0] === 0 && msg.subarray(1).toString('latin1') === this.options.recvIdent) {
          // Mongrel2 went away (XPUB reports the subscription gone): replies would be dropped.
          this.subscribed = false;
        }
      }
    } catch {
      // socket closed
    }
  }

  private markSubscribed(): void {
    this.subscribed = true;
    if (!this.everSubscribed) {
      this.everSubscribed = true;
      if (this.queue.length > 0) setImmediate(this.flush);
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

  private async receiveLoop(pull: zmq.Pull, onMessage: MessageListener): Promise<void> {
    try {
      while (!pull.closed) {
        if (this.paused) {
          await new Promise<void>((r) => this.resumeWaiters.push(r));
          continue;
        }
        const [msg] = await pull.receive();
        if (msg) onMessage(msg);
      }
    } catch (err) {
      if (!pull.closed && !this.closed) throw err;
    } finally {
      this.resolveReceiveStopped();
    }
  }
}
