/**
 * Control messages on the IPC channel (process.send) between the supervisor and a
 * worker. Data and the ordered "stop" go on the data channel (channel.ts) instead:
 * IPC and the data channel are not ordered with each other, which is why ownership
 * reports carry `seen` (how many data messages the worker had processed).
 */
import type { UpstreamHealth } from '../upstream/upstream.js';

/** Control messages for a connection nobody holds (gateway/handler-watch.ts). */
export type OrphanKind = 'credits' | 'disconnect';

export type QueryKind = 'status' | 'metrics';

/** Supervisor → worker. */
export type ToWorker =
  | {
      readonly t: 'init';
      readonly id: number;
      readonly generation: number;
      readonly file: string;
      readonly text: string;
      /** The id of each [[handler]] of `text`, in order: how the data channel names them. */
      readonly handlerIds: readonly number[];
      /** Per handler: the DOWNLOAD_CREDITS window the supervisor has seen, or null. */
      readonly creditWindows: ReadonlyArray<number | null>;
    }
  | { readonly t: 'query'; readonly qid: number; readonly what: QueryKind }
  /**
   * The handler's PULL socket travels with this message (pull-lending.ts). `seq`: data
   * messages sent before it (read the PULL only after those); `rest`: base64 bytes read
   * past the last whole frame; `owned`: the keys of this handler the worker owns.
   */
  | {
      readonly t: 'lend-pull';
      readonly handler: number;
      readonly seq: number;
      readonly rest: string;
      readonly inMultipart: boolean;
      readonly owned: readonly string[];
    }
  | { readonly t: 'return-pull'; readonly handler: number }
  | { readonly t: 'retire' }
  | { readonly t: 'reopen-logs' };

export interface WorkerStatus {
  readonly id: number;
  readonly pid: number;
  readonly generation: number;
  readonly inFlight: number;
  readonly connections: number;
  /** Every handler XPUB has Mongrel2's subscription. */
  readonly connected: boolean;
  readonly upstreams: readonly UpstreamHealth[];
}

/** Worker → supervisor. */
export type FromWorker =
  /** Code loaded; waiting for init (a spare). */
  | { readonly t: 'loaded' }
  | { readonly t: 'ready' }
  | { readonly t: 'failed'; readonly error: string }
  | { readonly t: 'reply'; readonly qid: number; readonly data: unknown }
  /** Connections the worker closed itself: [key, seen when it closed]. */
  | { readonly t: 'closed'; readonly entries: ReadonlyArray<readonly [string, number]> }
  /** While retiring: the connections that must stay with this worker. */
  | { readonly t: 'busy'; readonly keys: readonly string[]; readonly seen: number }
  /** While a PULL is lent: connections its messages opened (key, Mongrel2's sender, DOWNLOAD_CREDITS or 0). */
  | { readonly t: 'opened'; readonly entries: ReadonlyArray<readonly [string, string, number]> }
  /** While a PULL is lent: control messages for connections the worker does not own. */
  | { readonly t: 'orphans'; readonly entries: ReadonlyArray<readonly [string, OrphanKind]> }
  /** The lent PULL, given back (the socket travels with it; absent if it had closed). */
  | { readonly t: 'pull-returned'; readonly handler: number; readonly rest: string; readonly inMultipart: boolean }
  /** The lent PULL closed (Mongrel2 went away). */
  | { readonly t: 'pull-down'; readonly handler: number }
  /** Counters and histograms at exit, so totals survive the worker. */
  | { readonly t: 'final-metrics'; readonly metrics: unknown };

const WORKER_TAGS = new Set(['loaded', 'ready', 'failed', 'reply', 'closed', 'busy', 'opened', 'orphans', 'pull-returned', 'pull-down', 'final-metrics']);
const SUPERVISOR_TAGS = new Set(['init', 'query', 'retire', 'reopen-logs', 'lend-pull', 'return-pull']);

function tagOf(v: unknown): string | null {
  if (typeof v !== 'object' || v === null) return null;
  const t = (v as { t?: unknown }).t;
  return typeof t === 'string' ? t : null;
}

/** Both ends are our own code; this only guards against a stray message shape. */
export function isFromWorker(v: unknown): v is FromWorker {
  const t = tagOf(v);
  return t !== null && WORKER_TAGS.has(t);
}

export function isToWorker(v: unknown): v is ToWorker {
  const t = tagOf(v);
  return t !== null && SUPERVISOR_TAGS.has(t);
}

/** Key of one Mongrel2 connection, shared by ConnectionOwners and the gateway (handler id, not position). */
export function connKey(handlerId: number, connId: string): string {
  return `${handlerId}:${connId}`;
}
