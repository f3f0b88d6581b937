/**
 * Process-wide counters of hostile-input defences: every cap that refused or cut something
 * (queue full, upstream head too big, ...) and every warning kind, counted exactly even when
 * its log line is rate-limited. Module-level on purpose: the places that hit a cap (a
 * response writer, the log throttle) should not need a metrics object threaded through
 * them, and each process (worker, supervisor) has its own module instance, which is what
 * the per-process registries aggregate anyway.
 */

/** The caps m2gw enforces; the metric label. */
export type LimitKind =
  | 'pipeline_queue' //           pipelined requests waiting on one connection
  | 'connection_states' //        client connections one worker holds state for
  | 'upload_states' //            upload starts waiting for their done message
  | 'refused_uploads' //          remembered refused upload paths
  | 'upstream_header_count' //    headers in one upstream response head
  | 'upstream_header_bytes' //    bytes of one upstream response head
  | 'queued_reply_bytes' //       reply bytes queued for one connection
  | 'send_timeout'; //            a client that read nothing of its open response for send_timeout

const limitHits = new Map<LimitKind, number>();
const warnings = new Map<string, number>();

export function recordLimitHit(kind: LimitKind): void {
  limitHits.set(kind, (limitHits.get(kind) ?? 0) + 1);
}

export function recordWarning(kind: string): void {
  warnings.set(kind, (warnings.get(kind) ?? 0) + 1);
}

export function limitHitCounts(): ReadonlyMap<LimitKind, number> {
  return limitHits;
}

export function warningCounts(): ReadonlyMap<string, number> {
  return warnings;
}

/** For tests: the count of one cap. */
export function limitHitCount(kind: LimitKind): number {
  return limitHits.get(kind) ?? 0;
}
