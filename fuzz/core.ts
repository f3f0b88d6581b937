/**
 * The fuzz harness: a target per codec (fuzz/targets/), listed in fuzz/registry.ts. A target
 * gives seeds (captured fixtures where there are any), a `run` that feeds one input to the codec
 * and checks its invariants, the error types the module documents, and adversarial shapes for the
 * size-scaling check (scaling.ts). The runner mutates seeds (mutate.ts) and fails on:
 * - any other exception (or a broken invariant, thrown as FuzzFailure);
 * - an input that takes longer than the target's budget (re-timed, best of 5, so a preempted
 *   run on a loaded machine is not blamed on the parser);
 * - heap + buffers growing more than MEMORY_LIMIT over the run.
 */
import { mutate, type Rng, rng } from './mutate.js';

export interface ScalingShape {
  readonly name: string;
  /** An input of about `bytes` bytes in this shape. */
  make(bytes: number): unknown;
}

export interface FuzzTarget {
  readonly name: string;
  /** Inputs to mutate; at least one. */
  seeds(): Buffer[];
  /** Feeds one input. Throws only the module's documented errors (or FuzzFailure). */
  run(input: Buffer): void;
  /** The error types the module documents for bad input. Empty: it must never throw. */
  readonly expected: ReadonlyArray<abstract new (...args: never[]) => Error>;
  /** Per-input time limit in ms (default DEFAULT_BUDGET_MS). */
  readonly budgetMs?: number;
  /** Largest mutated input (default 64 KiB). */
  readonly maxInputBytes?: number;
  /** Extra, target-aware mutations (e.g. deep nesting in its syntax). */
  readonly mutators?: ReadonlyArray<(input: Buffer, r: Rng) => Buffer>;
  /** Adversarial shapes for the size-scaling check, fed to runShape. */
  readonly shapes?: readonly ScalingShape[];
  /** Runs one scaling input; defaults to run() on a Buffer input. */
  runShape?(input: unknown): void;
}

/** An invariant a target checks itself; never an expected error. */
export class FuzzFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FuzzFailure';
  }
}

export const DEFAULT_BUDGET_MS = 5;
export const MEMORY_LIMIT_BYTES = 256 * 1024 * 1024;

export interface FuzzStats {
  readonly target: string;
  inputs: number;
  /** Inputs that ended in one of the documented errors. */
  rejected: number;
  seconds: number;
  /** Slowest input after re-timing (ms), and its size. */
  slowestMs: number;
  slowestBytes: number;
  /** Largest heap + buffers growth seen over the run (bytes). */
  memoryGrowth: number;
  failures: string[];
}

export interface FuzzLimits {
  readonly seconds?: number;
  readonly inputs?: number;
  readonly seed?: number;
  /** Stop at the first failure (default true). */
  readonly stopOnFailure?: boolean;
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

function memoryInUse(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** CPU time of this process in ms (preemption by other processes does not count). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timeOnce(t: FuzzTarget, input: Buffer): { ms: number; error: unknown } {
  const t0 = cpuMs();
  let error: unknown = null;
  try {
    t.run(input);
  } catch (e) {
    error = e;
  }
  return { ms: cpuMs() - t0, error };
}

function describe(input: Buffer): string {
  const head = input.subarray(0, 160).toString('latin1');
  return `${input.length} bytes, starting ${JSON.stringify(head)} (base64 ${input.subarray(0, 96).toString('base64')}…)`;
}

/** Fuzzes one target until the limits; never throws, failures are in the stats. */
export function runFuzzer(t: FuzzTarget, limits: FuzzLimits): FuzzStats {
  const r = rng(limits.seed ?? 1);
  const seeds = t.seeds();
  if (seeds.length === 0) throw new Error(`${t.name}: no seeds`);
  const budget = t.budgetMs ?? DEFAULT_BUDGET_MS;
  const maxBytes = t.maxInputBytes ?? 64 * 1024;
  const stats: FuzzStats = { target: t.name, inputs: 0, rejected: 0, seconds: 0, slowestMs: 0, slowestBytes: 0, memoryGrowth: 0, failures: [] };
  const stopOnFailure = limits.stopOnFailure ?? true;
  const start = performance.now();
  const deadline = limits.seconds !== undefined ? start + limits.seconds * 1000 : Infinity;
  const maxInputs = limits.inputs ?? Infinity;
  const baseline = memoryInUse();
  let i = 0;
  for (;;) {
    if (stats.inputs >= maxInputs) break;
    if ((stats.inputs & 255) === 0 && performance.now() >= deadline) break;
    // Seeds as they are first, then mutants.
    const input = i < seeds.length ? seeds[i]! : mutate(seeds[r.int(seeds.length)]!, r, seeds, maxBytes, t.mutators);
    i++;
    stats.inputs++;
    const first = timeOnce(t, input);
    const error = first.error;
    let ms = first.ms;
    if (ms > budget) {
      // Best of five, each after yielding the CPU for a moment: the machine is shared, and a
      // preempted or GC-paused run says nothing about the parser.
      for (let k = 0; k < 4 && ms > budget; k++) {
        Atomics.wait(PAUSE, 0, 0, 2 + k * 5);
        ms = Math.min(ms, timeOnce(t, input).ms);
      }
      if (ms > budget) stats.failures.push(`${t.name}: ${ms.toFixed(1)} ms (> ${budget} ms) for ${describe(input)}`);
    }
    if (ms > stats.slowestMs) {
      stats.slowestMs = ms;
      stats.slowestBytes = input.length;
    }
    if (error !== null) {
      if (t.expected.some((E) => error instanceof E)) stats.rejected++;
      else stats.failures.push(`${t.name}: threw ${error instanceof Error ? `${error.name}: ${error.message.slice(0, 300)}` : String(error)} for ${describe(input)}`);
    }
    if ((stats.inputs & 4095) === 0) {
      const growth = memoryInUse() - baseline;
      if (growth > stats.memoryGrowth) stats.memoryGrowth = growth;
      if (growth > MEMORY_LIMIT_BYTES) stats.failures.push(`${t.name}: memory grew by ${(growth / 1048576).toFixed(0)} MiB`);
    }
    if (stats.failures.length > 0 && stopOnFailure) break;
    if (stats.failures.length > 20) break;
  }
  stats.seconds = (performance.now() - start) / 1000;
  return stats;
}

/**
 * Every split of `input` into two pieces, fed through `feed` (for incremental decoders). Returns
 * the number of splits tried. Used by tests on seeds: "split at every boundary".
 */
export function everySplit(input: Buffer, feed: (pieces: Buffer[]) => void): number {
  for (let i = 0; i <= input.length; i++) feed([input.subarray(0, i), input.subarray(i)]);
  return input.length + 1;
}

/** Splits at `n` random points (plus, for small inputs, 1-byte pieces are the caller's choice). */
export function randomPieces(input: Buffer, r: Rng, n: number): Buffer[] {
  const cuts = new Set<number>();
  for (let k = 0; k < n; k++) cuts.add(r.int(input.length + 1));
  const sorted = [...cuts].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of sorted) {
    out.push(input.subarray(prev, c));
    prev = c;
  }
  out.push(input.subarray(prev));
  return out;
}

export function bytePieces(input: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i++) out.push(input.subarray(i, i + 1));
  return out;
}
