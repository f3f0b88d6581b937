/**
 * The worker's half of connection ownership (see connection-owners.ts): tells the
 * supervisor which connections it has let go of.
 *   - always: connections it closed itself (Mongrel2 will reuse the id), tagged with
 *     the count of data messages seen at that moment;
 *   - while retiring: the set of connections that must stay (busy), after every
 *     finished request or closed connection and on a short timer, so idle
 *     keep-alive connections move to the new generation as soon as they are idle.
 * Reports are coalesced to one IPC message per event-loop turn.
 */
import type { FromWorker, OrphanKind } from './messages.js';

type Report = Extract<FromWorker, { t: 'closed' | 'opened' | 'orphans' }>;

export interface ReporterDeps {
  seen(): number;
  busy(): string[];
  send(msg: FromWorker): void;
}

/** Timer for what no event announces (output draining, credits arriving). */
const RETIRE_POLL_MS = 25;

export class OwnershipReporter {
  /** Ownership reports of this turn, in order: consecutive ones of a kind share a message. */
  private reports: Report[] = [];
  private scheduled = false;
  private retiring = false;
  private busyDue = false;
  private timer: NodeJS.Timeout | null = null;
  private last = '';
  private stopped = false;

  constructor(private readonly deps: ReporterDeps) {}

  /** The gateway sent the close message for this connection. */
  closed(key: string): void {
    if (this.stopped) return;
    this.add('closed', [key, this.deps.seen()]);
    if (this.retiring) this.busyDue = true;
  }

  /** A lent PULL brought a connection's first message (pull-lending.ts). */
  opened(key: string, sender: string, window: number): void {
    if (!this.stopped) this.add('opened', [key, sender, window]);
  }

  /** A lent PULL brought a control message for a connection this worker does not own. */
  orphan(key: string, kind: OrphanKind): void {
    if (!this.stopped) this.add('orphans', [key, kind]);
  }

  /** Send what is queued now (before giving a lent PULL back: reports must arrive first). */
  flushNow(): void {
    this.flush(false);
  }

  private add<T extends Report['t']>(t: T, entry: Extract<Report, { t: T }>['entries'][number]): void {
    const last = this.reports[this.reports.length - 1];
    if (last?.t === t) (last.entries as unknown[]).push(entry);
    else this.reports.push({ t, entries: [entry] } as Report);
    this.schedule();
  }

  /** Something finished that may have made a connection idle. */
  changed(): void {
    if (!this.retiring || this.stopped) return;
    this.busyDue = true;
    this.schedule();
  }

  retire(): void {
    if (this.retiring || this.stopped) return;
    this.retiring = true;
    this.busyDue = true;
    this.schedule();
    this.timer = setInterval(() => {
      this.busyDue = true;
      this.flush(true);
    }, RETIRE_POLL_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush(false));
  }

  private flush(onlyIfChanged: boolean): void {
    this.scheduled = false;
    if (this.stopped) return;
    const reports = this.reports;
    this.reports = [];
    for (const r of reports) this.deps.send(r);
    if (!this.busyDue) return;
    this.busyDue = false;
    const keys = this.deps.busy();
    const seen = this.deps.seen();
    const fingerprint = `${seen}|${keys.join(',')}`;
    if (onlyIfChanged && fingerprint === this.last) return;
    this.last = fingerprint;
    this.deps.send({ t: 'busy', keys, seen });
  }
}
