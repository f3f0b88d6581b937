/**
 * Size-scaling check: every parser of untrusted input must be linear. Each adversarial shape is
 * timed at 1 KiB, 4 KiB … 4 MiB; the time per byte at each size is compared with that at the size
 * 16× smaller, and at every size above 64 KiB with that at the mid sizes; a ratio of RATIO_LIMIT
 * or more fails (linear: about 1; quadratic: 16 per 16× step).
 *
 * Robust on a shared, loaded machine: time is this process's CPU time (other processes' turns on
 * the cores do not count), each point is the median of several samples, a sample
 * repeats small inputs until it lasts a few ms, and a size that looks too slow is measured again
 * (with the size it is compared with) before it counts. Sizes stop
 * growing once one call takes more than STOP_AFTER_MS (an old quadratic parser would take minutes
 * at 4 MiB), and what was measured up to there is judged.
 */
import type { FuzzTarget, ScalingShape } from './core.js';

export const SIZES = [1, 4, 16, 64, 256, 1024, 4096].map((k) => k * 1024);
export const RATIO_LIMIT = 4;
const REFERENCE_SIZES = new Set([16 * 1024, 64 * 1024]);
const NS_PER_BYTE_FLOOR = 1;
const STOP_AFTER_MS = 1500;
const MIN_SAMPLE_MS = 2;

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
  /** Worst ratio of time per byte over the compared pairs of sizes. */
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
  const n = first > STOP_AFTER_MS ? 1 : 3;
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
  for (let i = 0; i < 2; i++) sample(run, shape.make(16 * 1024));
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
  // Two comparisons, each of time per byte (never under NS_PER_BYTE_FLOOR: work that costs next
  // to nothing per byte, a memcpy, must not turn GC noise into a verdict):
  // - every size against the size 16× smaller: a quadratic step shows as 16×, however small the
  //   sizes (V8 stops hashing strings past 16 Ki chars, so some quadratic code flattens out above);
  // - every size above 64 KiB against the mid sizes (the slower of 16 and 64 KiB).
  const perByte = (p: ScalingPoint): number => Math.max(NS_PER_BYTE_FLOOR, p.nsPerByte);
  const pairs = (): Array<[number, number]> => {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < points.length; i++) {
      const small = points.findIndex((q) => q.bytes * 16 === points[i]!.bytes);
      if (small !== -1) out.push([small, i]);
      if (points[i]!.bytes > 64 * 1024) {
        const mids = points.map((q, j) => [q, j] as const).filter(([q]) => REFERENCE_SIZES.has(q.bytes));
        if (mids.length > 0) out.push([mids.reduce((a, b) => (perByte(b[0]) > perByte(a[0]) ? b : a))[1], i]);
      }
    }
    return out;
  };
  let worst = 0;
  for (const [a, b] of pairs()) {
    let ratio = perByte(points[b]!) / perByte(points[a]!);
    if (ratio >= RATIO_LIMIT && points[b]!.ms <= STOP_AFTER_MS) {
      // Too slow once: measure both again before blaming the parser.
      points[a] = measure(run, shape, points[a]!.bytes);
      points[b] = measure(run, shape, points[b]!.bytes);
      ratio = perByte(points[b]!) / perByte(points[a]!);
    }
    worst = Math.max(worst, ratio);
  }
  if (points.length < 2) {
    return { target: t.name, shape: shape.name, points, worstRatio: Infinity, ok: false, note: `${stopped}too few sizes measured` };
  }
  const ok = worst < RATIO_LIMIT;
  return { target: t.name, shape: shape.name, points, worstRatio: worst, ok, note: `${stopped}worst ns/byte ratio ${worst.toFixed(2)} (limit ${RATIO_LIMIT})` };
}

export function formatScaling(r: ScalingResult): string {
  const pts = r.points.map((p) => `${p.bytes >= 1048576 ? `${p.bytes / 1048576}M` : `${p.bytes / 1024}K`}:${p.ms < 10 ? p.ms.toFixed(3) : p.ms.toFixed(0)}ms`).join(' ');
  return `${r.ok ? 'ok  ' : 'FAIL'} ${r.target} / ${r.shape}: ${pts} — ${r.note}`;
}
