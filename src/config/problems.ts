/**
 * Collects every config problem instead of stopping at the first, each placed on the
 * line where the user wrote the key (or its table header when the key is missing).
 */
import type { ConfigProblem } from '../errors.js';
import type { KeyLines } from './key-lines.js';

export class Problems {
  private readonly list: ConfigProblem[] = [];

  constructor(private readonly lines: KeyLines | null) {}

  error(key: string, message: string): void {
    this.add(key, message, 'error');
  }

  warn(key: string, message: string): void {
    this.add(key, message, 'warning');
  }

  get hasErrors(): boolean {
    return this.list.some((p) => p.severity !== 'warning');
  }

  /** In file order; problems with no line (e.g. "no handler at all") come first. */
  sorted(): ConfigProblem[] {
    return this.list
      .map((p, i) => ({ p, i }))
      .sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0) || a.i - b.i)
      .map(({ p }) => p);
  }

  private add(key: string, message: string, severity: 'error' | 'warning'): void {
    const line = this.lines?.lineFor(key);
    // Keys and values come from the file and may be megabytes long: keep what is reported readable.
    key = clip(key, MAX_REPORTED_KEY);
    message = clip(message, MAX_REPORTED_MESSAGE);
    this.list.push(line === undefined ? { key, message, severity } : { key, line, message, severity });
  }
}

const MAX_REPORTED_KEY = 200;
const MAX_REPORTED_MESSAGE = 500;

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 40)}… (${s.length} chars)`;
}

/** Keys longer than this get no "did you mean": no known key is, and the distance is O(n·m). */
export const MAX_HINT_KEY_LENGTH = 64;

/** The closest known key a typo probably meant, or null when nothing is close. */
export function didYouMean(key: string, known: Iterable<string>): string | null {
  // A 4 MiB unknown key took 53 s here before this cap.
  if (key.length > MAX_HINT_KEY_LENGTH) return null;
  const norm = (k: string): string => k.toLowerCase().replace(/-/g, '_');
  // maxConnections → max_connections
  const snake = norm(key.replace(/([a-z0-9])([A-Z])/g, '$1_$2'));
  let best: string | null = null;
  let bestDist = Infinity;
  for (const candidate of known) {
    if (candidate.length > MAX_HINT_KEY_LENGTH) continue;
    const c = norm(candidate);
    if (c === snake || c === norm(key)) return candidate;
    const d = editDistance(norm(key), c);
    if (d < bestDist) {
      bestDist = d;
      best = candidate;
    }
  }
  const limit = key.length <= 4 ? 1 : key.length <= 8 ? 2 : 3;
  return bestDist <= limit ? best : null;
}

/** Damerau-Levenshtein (optimal string alignment): a swapped pair is one typo, not two. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      d[i * cols + j] = v;
    }
  }
  return at(a.length, b.length);
}
