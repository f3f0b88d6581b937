/**
 * Rate limit for warnings an attacker can cause at will (malformed frames, forged uploads,
 * oversized upstream heads...). Without it a flood of bad input becomes a flood of log lines:
 * 100,000 malformed frames wrote 44,402 warnings, which costs disk, CPU in winston and the
 * operator's attention. Per kind (the message), at most one line per interval is written;
 * when more came in that interval, one summary line follows at its end with the number
 * suppressed. Every occurrence is still counted exactly (m2gw_warnings_total{kind}).
 * Kept out of log.ts on purpose: that file is the hot path of every access line.
 */
import type { Logger } from './log.js';
import { recordWarning } from './metrics/limit-hits.js';

export const WARNING_INTERVAL_MS = 1000;
/** Kinds are message constants; a bound anyway, so a bug passing variable text cannot grow the map. */
const MAX_KINDS = 256;

interface KindState {
  suppressed: number;
  lastMeta: Record<string, unknown>;
  timer: NodeJS.Timeout | null;
}

export class WarningThrottle {
  private readonly kinds = new Map<string, KindState>();

  private readonly logger: () => Logger;

  /** `log`: the logger, or a getter for one that may be replaced (a reload's new log config). */
  constructor(
    log: Logger | (() => Logger),
    private readonly intervalMs = WARNING_INTERVAL_MS,
  ) {
    this.logger = typeof log === 'function' ? log : () => log;
  }

  /** Log `kind` as a warning unless it was already logged in this interval; count it always. */
  warn(kind: string, meta: Record<string, unknown> = {}): void {
    recordWarning(kind);
    const state = this.kinds.get(kind);
    if (state !== undefined) {
      state.suppressed++;
      state.lastMeta = meta;
      return;
    }
    this.logger().warn(kind, meta);
    if (this.kinds.size >= MAX_KINDS) return;
    const fresh: KindState = { suppressed: 0, lastMeta: meta, timer: null };
    fresh.timer = setTimeout(() => this.endInterval(kind, fresh), this.intervalMs);
    // A pending summary must never keep a process alive that is otherwise done.
    fresh.timer.unref();
    this.kinds.set(kind, fresh);
  }

  /** Write the pending summaries now (before exit). */
  flush(): void {
    for (const [kind, state] of [...this.kinds]) {
      if (state.timer) clearTimeout(state.timer);
      this.endInterval(kind, state);
    }
  }

  private endInterval(kind: string, state: KindState): void {
    this.kinds.delete(kind);
    if (state.suppressed > 0) {
      this.logger().warn(kind, { ...state.lastMeta, suppressed: state.suppressed, interval_ms: this.intervalMs, note: 'repeated; the fields are those of the last one' });
    }
  }
}
