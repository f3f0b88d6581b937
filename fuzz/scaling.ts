/**
 * Size-scaling check: every parser of untrusted input must be linear. Each adversarial shape is
 * timed at 1 KiB, 4 KiB … 4 MiB; the time per byte at every size above 64 KiB is compared with
 * the time per byte at the mid sizes (16 and 64 KiB, the slower of the two), and a ratio of
 * RATIO_LIMIT or more fails.
 *
 * Robust on a shared, loaded machine: time is this process's CPU time (other processes' turns on
 * the cores do not count), each point is the median of several samples, a sample
 * repeats small inputs until it lasts a few ms, and a size that looks too slow is measured again
 * (with the reference) before it counts. A quadratic parser's time per byte grows 4× per step, so
 * it is far past the limit two steps above the reference; a linear one stays near 1×. Sizes stop
 * growing once one call takes more than STOP_AFTER_MS (an old quadratic parser would take minutes
 * at 4 MiB), and what was measured up to there is judged.
 */
import type { FuzzTarget, ScalingShape } from './core.js';

export const SIZES = [1, 4, 16, 64, 256, 1024, 4096].map((k) => k * 1024);
export const RATIO_LIMIT = 4;
const REFERENCE_SIZES = new Set([16 * 1024, 64 * 1024]);
const NS_PER_BYTE_FLOOR = 1;
const STOP_AFTER_MS = 1500;
const MIN_SAMPLE_MS = 3;

export interface ScalingPoint {
  readonly bytes: number;
  /** Median ms per call. */
  readonly ms: number;
  readonly nsPerByte: number;
}

export interface ScalingResult {
  readonly target: string;
  readonly shape: string;
  readonly points: ScalingPoint[];
  /** Worst time per byte at 64 KiB+ over the reference. */
  readonly worstRatio: number;
  readonly ok: boolean;
  readonly note: string;
}

/** CPU time of this process in ms: unlike wall time, it does not count time other processes had the cores. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function sample(run: (input: unknown) => void, input: unknown): number {
  let reps = 0;
  const t0 = cpuMs();
  let elapsed = 0;
  do {
    run(input);
    reps++;
    elapsed = cpuMs() - t0;
  } while (elapsed < MIN_SAMPLE_MS && reps < 10_000);
  return elapsed / reps;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function measure(run: (input: unknown) => void, shape: ScalingShape, bytes: number): ScalingPoint {
  const input = shape.make(bytes);
  const first = sample(run, input);
  const samples = [first];
  // One call past the stop time is enough evidence; more would only burn minutes.
  const n = first > STOP_AFTER_MS ? 1 : bytes >= 1024 * 1024 ? 3 : 5;
  for (let i = 1; i < n; i++) samples.push(sample(run, input));
  const ms = median(samples);
  return { bytes, ms, nsPerByte: (ms * 1e6) / bytes };
}

function runnerFor(t: FuzzTarget): (input: unknown) => void {
  const expected = t.expected;
  const call = t.runShape ? t.runShape.bind(t) : (input: unknown) => t.run(input as Buffer);
  return (input) => {
    try {
      call(input);
    } catch (e) {
      if (!expected.some((E) => e instanceof E)) throw e;
    }
  };
}

export function checkScaling(t: FuzzTarget, shape: ScalingShape, sizes: readonly number[] = SIZES): ScalingResult {
  const run = runnerFor(t);
  // Warm up the JIT on a mid size so the small sizes are not measured in the interpreter.
  for (let i = 0; i < 3; i++) sample(run, shape.make(16 * 1024));
  const points: ScalingPoint[] = [];
  let stopped = '';
  for (const bytes of sizes) {
    const p = measure(run, shape, bytes);
    points.push(p);
    if (p.ms > STOP_AFTER_MS && bytes !== sizes[sizes.length - 1]) {
      stopped = `stopped after ${bytes} bytes took ${p.ms.toFixed(0)} ms; `;
      break;
    }
  }
  // The slower of the mid sizes, and never under NS_PER_BYTE_FLOOR: work that costs next to
  // nothing per byte (a memcpy) must not make ordinary GC noise at 4 MiB look superlinear.
  const reference = (): number => Math.max(NS_PER_BYTE_FLOOR, ...points.filter((p) => REFERENCE_SIZES.has(p.bytes)).map((p) => p.nsPerByte));
  const perByte = (p: ScalingPoint): number => Math.max(NS_PER_BYTE_FLOOR, p.nsPerByte);
  let ref = reference();
  let worst = 0;
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    if (p.bytes <= 64 * 1024) continue;
    let ratio = perByte(p) / ref;
    if (ratio >= RATIO_LIMIT && p.ms <= STOP_AFTER_MS) {
      // Too slow once: measure it and the reference again before blaming the parser.
      points[i] = measure(run, shape, p.bytes);
      for (let j = 0; j < points.length; j++) {
        if (REFERENCE_SIZES.has(points[j]!.bytes)) points[j] = measure(run, shape, points[j]!.bytes);
      }
      ref = reference();
      ratio = perByte(points[i]!) / ref;
    }
    worst = Math.max(worst, ratio);
  }
  if (!Number.isFinite(ref) || points.length < 2) {
    return { target: t.name, shape: shape.name, points, worstRatio: Infinity, ok: false, note: `${stopped}too few sizes measured` };
  }
  // A parser that is still slow at 64 KiB and stopped there has no size above the reference:
  // judge its last step against the smallest size instead.
  if (points.every((p) => p.bytes <= 64 * 1024)) {
    const first = points[0]!;
    const last = points[points.length - 1]!;
    worst = perByte(last) / perByte(first);
  }
  const ok = worst < RATIO_LIMIT;
  return { target: t.name, shape: shape.name, points, worstRatio: worst, ok, note: `${stopped}worst ns/byte ratio ${worst.toFixed(2)} (limit ${RATIO_LIMIT})` };
}

export function formatScaling(r: ScalingResult): string {
  const pts = r.points.map((p) => `${p.bytes >= 1048576 ? `${p.bytes / 1048576}M` : `${p.bytes / 1024}K`}:${p.ms < 10 ? p.ms.toFixed(3) : p.ms.toFixed(0)}ms`).join(' ');
  return `${r.ok ? 'ok  ' : 'FAIL'} ${r.target} / ${r.shape}: ${pts} — ${r.note}`;
}
