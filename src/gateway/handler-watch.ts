/**
 * What one Mongrel2 handler's traffic says about how it is deployed, for the two
 * set-ups that fail silently otherwise:
 *
 * - download.flow_control off. Mongrel2 puts DOWNLOAD_CREDITS on a connection's first
 *   request only when it is on. Without it m2gw cannot know what a client has read,
 *   so large responses cost memory in Mongrel2 and here (client-connection.ts): worth
 *   one warning per handler, and a line in /status.
 *
 * - Two gateways PULLing from one send_spec. Mongrel2's PUSH round-robins per message,
 *   so credits, disconnects and upload messages of a connection one gateway answers
 *   reach the other about half the time: downloads stall, uploads hang, and neither
 *   side errs. The symptom we can see is control messages for connections this process
 *   never saw. A few are normal (credits still in flight when we close a connection,
 *   a restart while Mongrel2 still writes the old process's replies), so connections we
 *   forgot recently do not count, and only a steady rate raises the alarm: orphans in
 *   at least STEADY_SECONDS distinct seconds of the last WINDOW_SECONDS. It clears after
 *   CLEAR_SECONDS without any.
 */
import type { Logger } from '../log.js';

const WINDOW_SECONDS = 30;
const STEADY_SECONDS = 8;
const MIN_ORPHANS = 20;
const CLEAR_SECONDS = 60;
/** A connection we dropped this recently may still get credits or a disconnect. */
const FORGOTTEN_MS = 15_000;
const MAX_FORGOTTEN = 100_000;

export type OrphanKind = 'credits' | 'disconnect' | 'upload';

export class HandlerWatch {
  /** True once a request carried DOWNLOAD_CREDITS, false once a new connection's first did not. */
  flowControl: boolean | null = null;
  /** Control messages for connections never seen here (the metric). */
  orphans = 0;
  private warnedNoCredits = false;
  private readonly forgotten = new Map<string, number>();
  /** Orphans per second (epoch second → count), last WINDOW_SECONDS only. */
  private readonly perSecond = new Map<number, number>();
  private lastOrphanAt = 0;
  private sharedReason: string | null = null;

  private readonly log: () => Logger | null;

  /** `log`: the logger, or a getter for one that may be replaced (the supervisor's, on reload); null: silent. */
  constructor(
    private readonly handler: string,
    log: Logger | (() => Logger) | null,
    private readonly now: () => number = Date.now,
  ) {
    this.log = typeof log === 'function' ? log : () => log;
  }

  /** Why this handler looks shared with another gateway, or null. */
  get shared(): string | null {
    if (this.sharedReason !== null && this.now() - this.lastOrphanAt > CLEAR_SECONDS * 1000) {
      this.log()?.info('control messages for unknown connections stopped; handler socket no longer looks shared', { handler: this.handler });
      this.sharedReason = null;
    }
    return this.sharedReason;
  }

  /** The first message of a connection new to us (a request, not a control message). */
  newConnection(hasCredits: boolean): void {
    if (hasCredits) {
      this.flowControl = true;
      return;
    }
    if (this.flowControl === true) return;
    this.flowControl = false;
    if (this.warnedNoCredits) return;
    this.warnedNoCredits = true;
    this.log()?.warn(
      'requests arrive without DOWNLOAD_CREDITS: Mongrel2 runs without download flow control, so a slow client ' +
        'makes Mongrel2 (and m2gw, while filling its growing messages) hold the unread part of each response in memory. ' +
        'Set "download.flow_control": 1 in the settings of mongrel2.conf (then m2sh load and restart Mongrel2)',
      { handler: this.handler },
    );
  }

  /** We dropped this connection (closed it, or it disconnected): late control messages for it are expected. */
  forget(connId: string): void {
    // Deleted first so the map stays in the order of forgetting (oldest first): pruning then
    // stops at the first young entry instead of walking every close of the last FORGOTTEN_MS.
    this.forgotten.delete(connId);
    if (this.forgotten.size >= MAX_FORGOTTEN) {
      this.pruneForgotten();
      // All young (a burst of closes): the oldest goes; a late message for it is only counted.
      if (this.forgotten.size >= MAX_FORGOTTEN) this.forgotten.delete(this.forgotten.keys().next().value as string);
    }
    this.forgotten.set(connId, this.now());
  }

  /** A control message for a connection we hold no state for. */
  orphanControl(kind: OrphanKind, connId: string): void {
    const now = this.now();
    const forgotAt = this.forgotten.get(connId);
    if (forgotAt !== undefined && now - forgotAt < FORGOTTEN_MS) return;
    this.orphans++;
    this.lastOrphanAt = now;
    const second = Math.floor(now / 1000);
    this.perSecond.set(second, (this.perSecond.get(second) ?? 0) + 1);
    this.prune();
    if (this.sharedReason !== null) return;
    let total = 0;
    for (const n of this.perSecond.values()) total += n;
    if (this.perSecond.size >= STEADY_SECONDS && total >= MIN_ORPHANS) {
      this.sharedReason =
        `handler ${this.handler}: ${total} control messages (${kind} and others) in ${WINDOW_SECONDS} s for connections this m2gw never saw; ` +
        'another process probably PULLs from the same send_spec (Mongrel2 round-robins messages between them, which stalls downloads ' +
        'and uploads): give each gateway its own Mongrel2 Handler';
      this.log()?.error('handler socket looks shared with another gateway', { handler: this.handler, reason: this.sharedReason });
    }
  }

  private prune(): void {
    const oldest = Math.floor(this.now() / 1000) - WINDOW_SECONDS;
    for (const s of this.perSecond.keys()) if (s <= oldest) this.perSecond.delete(s);
    if (this.forgotten.size > MAX_FORGOTTEN / 2) this.pruneForgotten();
  }

  /** Drops forgotten ids older than FORGOTTEN_MS: from the front, oldest first, up to the first young one. */
  private pruneForgotten(): void {
    const now = this.now();
    for (const [id, at] of this.forgotten) {
      if (now - at < FORGOTTEN_MS) return;
      this.forgotten.delete(id);
    }
  }
}
