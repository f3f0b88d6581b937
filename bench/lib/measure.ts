/** One throughput measurement: check the route, warm it up, run wrk, account CPU per process. */
import { expectBody } from './http-check.js';
import os from 'node:os';
import { cpuMeter, foreignCpuMeter } from './proc-stats.js';
import { runWrk } from './wrk.js';

export interface LoadSettings {
  readonly threads: number;
  readonly connections: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly warmupRuns: number;
}

export interface Measurement {
  readonly scenario: string;
  readonly variant: string;
  readonly url: string;
  readonly requestsPerSec: number;
  readonly requests: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  readonly transferMiBPerSec: number;
  readonly errors: number;
  readonly errorDetail: string;
  /** CPU seconds used by each process tree during the measured run. */
  readonly cpuSeconds: Record<string, number>;
  /** The same, per request, in microseconds. */
  readonly cpuUsPerRequest: Record<string, number>;
  /**
   * Share of the machine's CPU (all cores) used meanwhile by processes outside this
   * measurement: other work on the machine. Above a few percent, distrust the figure.
   */
  readonly otherLoadPct: number;
  /** Runs made to get this one (more than 1 when earlier ones were disturbed). */
  readonly attempts?: number;
  /** Seconds spent waiting for the machine to go quiet before this run. */
  readonly waitedForQuietS?: number;
  readonly note?: string;
}

export interface Target {
  readonly scenario: string;
  readonly variant: string;
  readonly url: string;
  /** Expected body size of one response (checked before measuring). */
  readonly bytes: number;
  readonly contains?: string;
  /** Process trees whose CPU is reported (name → root pid). */
  readonly processes: Readonly<Record<string, number>>;
  /**
   * Single processes (not trees) reported besides, e.g. m2gw's supervisor alone
   * ("m2gw.sup"): the rest of the m2gw tree is its workers.
   */
  readonly rootOnly?: Readonly<Record<string, number>>;
  readonly note?: string;
  /** Extra facts for the error message when the route does not answer as expected. */
  readonly diagnose?: () => string;
}

/**
 * On a shared machine: wait for quiet before a run, and redo a run that other work
 * disturbed, keeping the least disturbed one.
 */
export interface QuietPolicy {
  /** Longest wait for the machine to go quiet before each attempt (0: do not wait). */
  readonly maxWaitS: number;
  /** Extra attempts when a run was disturbed. */
  readonly retries: number;
}

export async function measure(t: Target, load: LoadSettings, quiet: QuietPolicy, log: (line: string) => void): Promise<Measurement> {
  try {
    await expectBody(t.url, t.bytes, t.contains);
  } catch (err) {
    throw new Error(`${(err as Error).message}${t.diagnose ? ` [${t.diagnose()}]` : ''}`);
  }
  let best: Measurement | null = null;
  for (let attempt = 1; attempt <= 1 + quiet.retries; attempt++) {
    const waitedS = quiet.maxWaitS > 0 ? await waitQuiet(quiet.maxWaitS) : 0;
    const m = { ...(await measureOnce(t, load)), attempts: attempt, waitedForQuietS: waitedS };
    if (best === null || m.otherLoadPct < best.otherLoadPct) best = m;
    if (m.otherLoadPct < OTHER_LOAD_WARN_PCT) break;
    // Busy the whole wait: the machine is not going quiet, another attempt would not help.
    if (quiet.maxWaitS > 0 && waitedS >= quiet.maxWaitS - 1) break;
    if (attempt <= quiet.retries) log(`  ${t.scenario.padEnd(12)} ${t.variant.padEnd(24)} disturbed (other load ${m.otherLoadPct}%), measuring again`);
  }
  const m = best!;
  log(
    `  ${t.scenario.padEnd(12)} ${t.variant.padEnd(24)} ${m.requestsPerSec.toFixed(0).padStart(8)} req/s  p50 ${fmtMs(m.latencyP50Ms)}  p99 ${fmtMs(m.latencyP99Ms)}` +
      (m.otherLoadPct >= OTHER_LOAD_WARN_PCT ? `  (other load ${m.otherLoadPct}%)` : '') +
      (m.errors > 0 ? `  ERRORS: ${m.errorDetail}` : ''),
  );
  return m;
}

const QUIET_SAMPLE_MS = 500;

/** Seconds waited until the machine's busy share (all processes) stayed under the threshold for one sample. */
async function waitQuiet(maxWaitS: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const meter = foreignCpuMeter();
    await new Promise((r) => setTimeout(r, QUIET_SAMPLE_MS));
    const pct = (meter(0) / ((QUIET_SAMPLE_MS / 1000) * os.availableParallelism())) * 100;
    const waited = (Date.now() - started) / 1000;
    if (pct < OTHER_LOAD_WARN_PCT || waited >= maxWaitS) return round(waited - QUIET_SAMPLE_MS / 1000, 1);
  }
}

async function measureOnce(t: Target, load: LoadSettings): Promise<Measurement> {
  const base = { threads: load.threads, connections: load.connections, url: t.url };
  // More than one warm-up run: the first client-connection turnover after a process starts
  // makes V8 throw away and recompile much of a JIT-compiled handler's hot code (m2gw, the
  // trivial handler), at about half throughput for ~0.5 s. The measured run starts with such a
  // turnover, so a single warm-up put that one-time cost inside the measurement
  // (bench/README.md, "Warm-up").
  if (load.warmupS > 0) for (let i = 0; i < load.warmupRuns; i++) await runWrk({ ...base, durationS: load.warmupS });
  const stop = cpuMeter(t.processes, t.rootOnly ?? {});
  const foreign = foreignCpuMeter();
  const started = Date.now();
  const r = await runWrk({ ...base, durationS: load.durationS });
  const cpu = stop();
  const elapsedS = (Date.now() - started) / 1000;
  let measuredS = 0;
  for (const name of Object.keys(t.processes)) measuredS += cpu[name] ?? 0;
  const otherS = foreign(measuredS);
  const otherLoadPct = round((otherS / (elapsedS * os.availableParallelism())) * 100, 1);
  const perReq: Record<string, number> = {};
  for (const [k, v] of Object.entries(cpu)) perReq[k] = r.requests > 0 ? round((v / r.requests) * 1e6, 1) : 0;
  return {
    scenario: t.scenario,
    variant: t.variant,
    url: t.url,
    requestsPerSec: r.requestsPerSec,
    requests: r.requests,
    latencyP50Ms: r.latencyP50Ms,
    latencyP99Ms: r.latencyP99Ms,
    latencyMaxMs: r.latencyMaxMs,
    transferMiBPerSec: round(r.transferPerSecBytes / 2 ** 20, 1),
    errors: r.errors,
    errorDetail: r.errorDetail,
    cpuSeconds: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, round(v, 2)])),
    cpuUsPerRequest: perReq,
    otherLoadPct,
    ...(t.note ? { note: t.note } : {}),
  };
}

/** Other processes' share of the CPU above which a figure is flagged as disturbed. */
export const OTHER_LOAD_WARN_PCT = 5;

export function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function fmtMs(v: number): string {
  return (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)).padStart(6) + 'ms';
}
