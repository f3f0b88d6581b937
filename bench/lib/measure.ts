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
  readonly note?: string;
}

export async function measure(t: Target, load: LoadSettings, log: (line: string) => void): Promise<Measurement> {
  await expectBody(t.url, t.bytes, t.contains);
  const base = { threads: load.threads, connections: load.connections, url: t.url };
  if (load.warmupS > 0) await runWrk({ ...base, durationS: load.warmupS });
  const stop = cpuMeter(t.processes);
  const foreign = foreignCpuMeter();
  const started = Date.now();
  const r = await runWrk({ ...base, durationS: load.durationS });
  const cpu = stop();
  const elapsedS = (Date.now() - started) / 1000;
  const otherS = foreign(Object.values(cpu).reduce((a, b) => a + b, 0));
  const otherLoadPct = round((otherS / (elapsedS * os.availableParallelism())) * 100, 1);
  const perReq: Record<string, number> = {};
  for (const [k, v] of Object.entries(cpu)) perReq[k] = r.requests > 0 ? round((v / r.requests) * 1e6, 1) : 0;
  const m: Measurement = {
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
  log(
    `  ${t.scenario.padEnd(12)} ${t.variant.padEnd(24)} ${r.requestsPerSec.toFixed(0).padStart(8)} req/s  p50 ${fmtMs(r.latencyP50Ms)}  p99 ${fmtMs(r.latencyP99Ms)}` +
      (otherLoadPct >= OTHER_LOAD_WARN_PCT ? `  (other load ${otherLoadPct}%)` : '') +
      (r.errors > 0 ? `  ERRORS: ${r.errorDetail}` : ''),
  );
  return m;
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
