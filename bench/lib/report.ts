/** The results: ratios between variants of one run, a readable table, the JSON file. */
import fs from 'node:fs';
import path from 'node:path';
import { fmtMs, OTHER_LOAD_WARN_PCT, round, type Measurement } from './measure.js';
import type { MemoryRun } from './memory.js';

export interface RatioSpec {
  readonly scenario: string;
  readonly of: string;
  readonly to: string;
  /** Minimum acceptable value (from the issues). */
  readonly target?: number;
  readonly aim?: number;
}

export interface Ratio extends RatioSpec {
  readonly value: number | null;
  readonly pass: boolean | null;
}

export interface MemoryVerdict {
  readonly direction: 'download' | 'upload';
  readonly small: number;
  readonly large: number;
  readonly growthSmallMiB: number;
  readonly growthLargeMiB: number;
  /** Growth did not scale with the body: large − small growth under the slack. */
  readonly bounded: boolean;
  readonly rule: string;
}

/**
 * One row per (scenario, variant): the run with the median req/s of its repeats. Its p50 and
 * p99 are that one run's; a tail is one sample per run and moves more between runs than
 * throughput does, so the rows also carry every run's, and their medians, for comparing tails.
 */
export interface Summary extends Measurement {
  /** req/s of every run, in the order they ran. */
  readonly runs: number[];
  /** p50 and p99 of every run, in the order they ran (run i of every variant ran in the same round). */
  readonly p50Runs: number[];
  readonly p99Runs: number[];
  /** The medians of p50Runs and p99Runs. */
  readonly p50MedianMs: number;
  readonly p99MedianMs: number;
}

export function medianOf(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export interface Results {
  readonly startedAt: string;
  finishedAt: string;
  readonly machine: Record<string, string | number>;
  readonly options: Record<string, unknown>;
  /** Every run, in the order they ran. */
  readonly measurements: Measurement[];
  summary: Summary[];
  ratios: Ratio[];
  readonly memory: MemoryRun[];
  memoryVerdicts: MemoryVerdict[];
  readonly profiles: Array<{ file: string; phase: string }>;
  /** RSS of each m2gw process of the default layout, idle after start. */
  readonly idleRss: Array<{ role: string; pid: number; rssMiB: number; pssMiB: number }>;
  /** The same daemon with `[gateway] spare_worker = false` (measured in the memory phase). */
  readonly idleRssNoSpare: Array<{ role: string; pid: number; rssMiB: number; pssMiB: number }>;
  readonly notes: string[];
  readonly failures: string[];
}

/** A run's results before anything is measured. */
export function newResults(startedAt: string, machine: Results['machine'], options: Results['options']): Results {
  return {
    startedAt,
    finishedAt: '',
    machine,
    options,
    measurements: [],
    summary: [],
    ratios: [],
    memory: [],
    memoryVerdicts: [],
    profiles: [],
    idleRss: [],
    idleRssNoSpare: [],
    notes: [],
    failures: [],
  };
}

export function aggregate(ms: readonly Measurement[]): Summary[] {
  const groups = new Map<string, Measurement[]>();
  for (const m of ms) {
    const k = `${m.scenario}\u0000${m.variant}`;
    const g = groups.get(k);
    if (g) g.push(m);
    else groups.set(k, [m]);
  }
  return [...groups.values()].map((g) => {
    const sorted = [...g].sort((a, b) => a.requestsPerSec - b.requestsPerSec);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    const p50Runs = g.map((m) => m.latencyP50Ms);
    const p99Runs = g.map((m) => m.latencyP99Ms);
    return { ...median, runs: g.map((m) => m.requestsPerSec), p50Runs, p99Runs, p50MedianMs: medianOf(p50Runs), p99MedianMs: medianOf(p99Runs) };
  });
}

export function computeRatios(ms: readonly Measurement[], specs: readonly RatioSpec[]): Ratio[] {
  const find = (scenario: string, variant: string): Measurement | undefined =>
    ms.find((m) => m.scenario === scenario && m.variant === variant);
  return specs.flatMap((s) => {
    const a = find(s.scenario, s.of);
    const b = find(s.scenario, s.to);
    if (!a || !b) return [];
    const value = b.requestsPerSec > 0 ? round(a.requestsPerSec / b.requestsPerSec, 3) : null;
    return [{ ...s, value, pass: s.target === undefined || value === null ? null : value >= s.target }];
  });
}

/** Slack for "does not grow with the body": GC timing alone moves RSS by a few tens of MiB. */
const GROWTH_SLACK_MiB = 32;

export function memoryVerdicts(runs: readonly MemoryRun[]): MemoryVerdict[] {
  const out: MemoryVerdict[] = [];
  for (const direction of ['download', 'upload'] as const) {
    const rs = runs.filter((r) => r.direction === direction && r.ok).sort((a, b) => a.bytes - b.bytes);
    if (rs.length < 2) continue;
    const small = rs[0]!;
    const large = rs.at(-1)!;
    out.push({
      direction,
      small: small.bytes,
      large: large.bytes,
      growthSmallMiB: small.growthMiB,
      growthLargeMiB: large.growthMiB,
      bounded: large.growthMiB - small.growthMiB < GROWTH_SLACK_MiB,
      rule: `growth(${mib(large.bytes)}) − growth(${mib(small.bytes)}) < ${GROWTH_SLACK_MiB} MiB`,
    });
  }
  return out;
}

function mib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GiB` : `${bytes / 2 ** 20} MiB`;
}

export function formatTable(r: Results): string {
  const lines: string[] = [];
  const scenarios = [...new Set(r.summary.map((m) => m.scenario))];
  for (const sc of scenarios) {
    lines.push('', `== ${sc} ==`);
    lines.push(`  ${'variant'.padEnd(26)} ${'req/s'.padStart(9)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'MiB/s'.padStart(7)} ${'other'.padStart(6)}  cpu µs/req`);
    for (const m of r.summary.filter((x) => x.scenario === sc)) {
      const cpu = Object.entries(m.cpuUsPerRequest)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
      lines.push(
        `  ${m.variant.padEnd(26)} ${m.requestsPerSec.toFixed(0).padStart(9)} ${fmtMs(m.latencyP50Ms)} ${fmtMs(m.latencyP99Ms)} ${m.transferMiBPerSec.toFixed(1).padStart(7)} ${(m.otherLoadPct.toFixed(0) + '%').padStart(6)}${m.otherLoadPct >= OTHER_LOAD_WARN_PCT ? '!' : ' '} ${cpu}` +
          (m.runs.length > 1 ? `  runs: ${m.runs.map((v) => v.toFixed(0)).join(' ')}; p99 ${m.p99Runs.map((v) => v.toFixed(1)).join(' ')}` : '') +
          (m.errors > 0 ? `  ERRORS ${m.errorDetail}` : ''),
      );
    }
    for (const q of r.ratios.filter((x) => x.scenario === sc)) {
      const verdict = q.pass === null ? '' : q.pass ? '  ok' : '  BELOW TARGET';
      const goal = q.target !== undefined ? ` (target ≥ ${q.target}${q.aim !== undefined ? `, aim ${q.aim}` : ''})` : '';
      lines.push(`  ratio ${q.of} / ${q.to}: ${q.value === null ? 'n/a' : q.value.toFixed(2)}${goal}${verdict}`);
    }
  }
  if (r.memory.length > 0) {
    lines.push('', '== memory: m2gw RSS while one body streams through ==');
    lines.push(`  ${'direction'.padEnd(9)} ${'size'.padStart(8)} ${'MiB/s'.padStart(7)} ${'base MiB'.padStart(9)} ${'peak MiB'.padStart(9)} ${'growth'.padStart(7)} ${'m2 peak'.padStart(8)}  result`);
    for (const m of r.memory) {
      lines.push(
        `  ${m.direction.padEnd(9)} ${mib(m.bytes).padStart(8)} ${m.mibPerSec.toFixed(0).padStart(7)} ${m.baselineRssMiB.toFixed(1).padStart(9)} ${m.peakRssMiB.toFixed(1).padStart(9)} ${m.growthMiB.toFixed(1).padStart(7)} ${m.mongrel2PeakRssMiB.toFixed(1).padStart(8)}  ${m.ok ? 'ok' : 'FAILED'}: ${m.detail}${m.tempFileRemoved === false ? ', TEMP FILE LEFT' : ''}`,
      );
    }
    for (const v of r.memoryVerdicts) {
      lines.push(`  ${v.direction}: ${v.bounded ? 'bounded' : 'GROWS WITH THE BODY'} (${v.rule}: ${v.growthLargeMiB} vs ${v.growthSmallMiB})`);
    }
  }
  if (r.profiles.length > 0) {
    lines.push('', '== CPU profiles (node --cpu-prof) ==');
    for (const p of r.profiles) lines.push(`  ${p.phase}: ${p.file}`);
  }
  if (r.notes.length > 0) lines.push('', '== notes ==', ...r.notes.map((n) => `  - ${n}`));
  if (r.failures.length > 0) lines.push('', '== FAILURES ==', ...r.failures.map((n) => `  - ${n}`));
  return lines.join('\n');
}

export function writeJson(dir: string, r: Results): string {
  fs.mkdirSync(dir, { recursive: true });
  const stamp = r.startedAt.replace(/[:.]/g, '-');
  const file = path.join(dir, `${stamp}.json`);
  fs.writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}
