/**
 * When to replace a worker that died: exponential backoff from 100 ms doubling to
 * 10 s (back to 100 ms after a quiet crash window), and a crash loop — five deaths
 * within 30 s — ends the daemon so systemd's Restart=on-failure takes over.
 */
export interface RestartPolicyOptions {
  readonly minDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly windowMs?: number;
  readonly limit?: number;
}

export class RestartPolicy {
  private readonly minDelayMs: number;
  private readonly maxDelayMs: number;
  readonly windowMs: number;
  readonly limit: number;
  private crashes: number[] = [];
  private delay: number;

  constructor(opts: RestartPolicyOptions = {}) {
    this.minDelayMs = opts.minDelayMs ?? 100;
    this.maxDelayMs = opts.maxDelayMs ?? 10_000;
    this.windowMs = opts.windowMs ?? 30_000;
    this.limit = opts.limit ?? 5;
    this.delay = this.minDelayMs;
  }

  /** A worker died at `now`: the delay before replacing it, or null for a crash loop. */
  crashed(now: number): number | null {
    const last = this.crashes.at(-1);
    if (last !== undefined && now - last > this.windowMs) this.delay = this.minDelayMs;
    this.crashes = this.crashes.filter((t) => now - t < this.windowMs);
    this.crashes.push(now);
    if (this.crashes.length >= this.limit) return null;
    const delay = this.delay;
    this.delay = Math.min(this.maxDelayMs, this.delay * 2);
    return delay;
  }

  /** Deaths within the window ending at `now`. */
  recent(now: number): number {
    return this.crashes.filter((t) => now - t < this.windowMs).length;
  }

  /** A new generation starts afresh. */
  reset(): void {
    this.delay = this.minDelayMs;
  }
}
