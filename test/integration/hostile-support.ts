/**
 * Shared by the hostile suites: a well-behaved client that keeps requesting while an attack
 * runs (its p99 against its own baseline tells whether the attack hurt anyone else), memory
 * readings, and the table of results the closing note reports (written to the file named by
 * M2GW_HOSTILE_TABLE when set, one JSON line per attack).
 */
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';

export interface InnocentClient {
  /** Latencies (ms) of requests finished since start or the last take(). */
  take(): number[];
  /** Requests that failed (status other than 200, or an error). */
  readonly failures: number;
  stop(): Promise<void>;
}

/** Sequential GETs over one kept-alive connection, as fast as they come back. */
export function innocentClient(url: string): InnocentClient {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let samples: number[] = [];
  let failures = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
          res.on('error', () => resolve(false));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', () => resolve(false));
      });
      if (ok) samples.push(performance.now() - t0);
      else failures++;
    }
  })();
  return {
    take() {
      const s = samples;
      samples = [];
      return s;
    },
    get failures() {
      return failures;
    },
    async stop() {
      running = false;
      await loop;
      agent.destroy();
    },
  };
}

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const rssMiB = (): number => Math.round(process.memoryUsage().rss / 1048576);

let fullGc: (() => void) | null = null;

/**
 * What this process still holds after a full collection (V8 heap in use plus Buffers and other
 * external memory), in MiB. The measure for "an attack left nothing behind": RSS also counts
 * garbage not yet collected, which on a loaded machine grew by 200 MiB during an attack that
 * left nothing behind, and it seldom shrinks after a collection.
 */
export function retainedMiB(): number {
  if (fullGc === null) {
    v8.setFlagsFromString('--expose-gc');
    fullGc = vm.runInNewContext('gc') as () => void;
  }
  fullGc();
  fullGc();
  const m = process.memoryUsage();
  return Math.round((m.heapUsed + m.external) / 1048576);
}

export interface HostileRow {
  readonly suite: string;
  readonly attack: string;
  /** What the attacker got: a status, or what happened to the connection. */
  readonly attackerGot: string;
  readonly rssMiB: number;
  readonly innocentP99Ms: number;
  readonly baselineP99Ms: number;
  readonly innocentRequests: number;
}

export function recordRow(row: HostileRow): void {
  const file = process.env.M2GW_HOSTILE_TABLE;
  if (file) appendFileSync(file, JSON.stringify(row) + '\n');
}

/**
 * Runs `attack` while the innocent client keeps going and returns its p99 during the attack.
 * The CI bound is a sanity one (the machine is shared with other test files): the innocent
 * client must keep being answered, and its p99 stays under max(20 × baseline, 1 s);
 * bench/hostile.sh runs the same suites alone, where the 2× bound is checked.
 */
export async function underAttack<T>(
  innocent: InnocentClient,
  attack: () => Promise<T>,
): Promise<{ result: T; p99: number; requests: number }> {
  innocent.take();
  const failuresBefore = innocent.failures;
  const result = await attack();
  // At least a few innocent requests during or right after the attack.
  const deadline = Date.now() + 5000;
  let samples = innocent.take();
  while (samples.length < 5 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    samples = samples.concat(innocent.take());
  }
  if (innocent.failures !== failuresBefore) throw new Error(`the innocent client saw ${innocent.failures - failuresBefore} failures`);
  return { result, p99: percentile(samples, 99), requests: samples.length };
}

/** The p99 bound: 2× baseline when M2GW_HOSTILE_STRICT is set (bench), a sanity bound otherwise. */
export function p99Bound(baseline: number): number {
  return process.env.M2GW_HOSTILE_STRICT ? Math.max(2 * baseline, baseline + 2) : Math.max(20 * baseline, 1000);
}
