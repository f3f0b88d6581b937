/**
 * Durations and sizes as users write them in gw.toml. Both parsers throw UnitError
 * with a message precise enough to show next to the key ("unknown unit "sec" ...").
 */

export class UnitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnitError';
  }
}

/**
 * Node clamps a setTimeout delay above 2^31-1 ms to 1 ms (with only a warning), so a
 * "30d" timeout would fire at once: refuse it here instead.
 */
export const MAX_DURATION_MS = 2_147_483_647;

const DURATION_UNITS: ReadonlyMap<string, number> = new Map([
  ['ms', 1],
  ['s', 1_000],
  ['m', 60_000],
  ['h', 3_600_000],
]);

/**
 * "250ms", "5s", "2m", "1h", "1.5s", "1m30s", or a bare number of seconds (TOML number
 * or numeric string). Returns whole milliseconds.
 */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number') return secondsToMs(value, String(value));
  if (typeof value !== 'string') {
    throw new UnitError(`must be a duration such as "5s" or "250ms" (or a number of seconds), got ${describeValue(value)}`);
  }
  const text = value.trim();
  if (text === '') throw new UnitError('must be a duration such as "5s" or "250ms", got an empty string');
  if (text.startsWith('-')) throw new UnitError(`must not be negative, got "${value}"`);
  if (NUMBER.test(text)) return secondsToMs(Number(text), `"${value}"`);

  let total = 0;
  let rest = text;
  while (rest !== '') {
    const m = DURATION_PART.exec(rest);
    if (!m) throw new UnitError(`cannot read "${rest}" in duration "${value}" (write e.g. "5s", "250ms", "1m30s")`);
    const [whole, num, unit] = m;
    if (unit === '') throw new UnitError(`missing unit after ${num} in "${value}" (use ms, s, m or h)`);
    const factor = DURATION_UNITS.get(unit);
    if (factor === undefined) throw new UnitError(`unknown unit "${unit}" in "${value}" (use ms, s, m or h)`);
    total += Number(num) * factor;
    rest = rest.slice(whole.length).trimStart();
  }
  return checkMs(total, `"${value}"`);
}

const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)$/;
const DURATION_PART = /^(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)/;

function secondsToMs(seconds: number, shown: string): number {
  if (Number.isNaN(seconds)) throw new UnitError('must be a number of seconds, got NaN');
  if (seconds < 0) throw new UnitError(`must not be negative, got ${shown}`);
  return checkMs(seconds * 1000, shown);
}

function checkMs(ms: number, shown: string): number {
  if (!Number.isFinite(ms) || ms > MAX_DURATION_MS) {
    throw new UnitError(`${shown} is too long: at most ${MAX_DURATION_MS} ms (about 24.8 days)`);
  }
  return Math.round(ms);
}

const KI = 1024;
/** Single letters are binary (nginx's "1k"/"1m"); "KB"/"MB" are decimal, "KiB"/"MiB" binary. */
const SIZE_UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['k', KI],
  ['kib', KI],
  ['kb', 1e3],
  ['m', KI ** 2],
  ['mib', KI ** 2],
  ['mb', 1e6],
  ['g', KI ** 3],
  ['gib', KI ** 3],
  ['gb', 1e9],
  ['t', KI ** 4],
  ['tib', KI ** 4],
  ['tb', 1e12],
]);

const SIZE = /^(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)$/;

/** "512", "10KiB", "100MiB", "1GiB", "10KB", "10MB", "1k", "1m", or a bare integer of bytes. */
export function parseSize(value: unknown): number {
  if (typeof value === 'number') {
    if (Number.isNaN(value)) throw new UnitError('must be a number of bytes, got NaN');
    if (value < 0) throw new UnitError(`must not be negative, got ${value}`);
    if (!Number.isInteger(value)) throw new UnitError(`must be a whole number of bytes, got ${value}`);
    return checkBytes(value, String(value));
  }
  if (typeof value !== 'string') {
    throw new UnitError(`must be a size such as "10MiB" or a number of bytes, got ${describeValue(value)}`);
  }
  const text = value.trim();
  if (text === '') throw new UnitError('must be a size such as "10MiB", got an empty string');
  if (text.startsWith('-')) throw new UnitError(`must not be negative, got "${value}"`);
  const m = SIZE.exec(text);
  if (!m) throw new UnitError(`cannot read size "${value}" (write e.g. "512", "10KiB", "100MiB", "1GiB", "10MB")`);
  const [, num, unit] = m;
  const factor = SIZE_UNITS.get(unit.toLowerCase());
  if (factor === undefined) {
    throw new UnitError(`unknown unit "${unit}" in "${value}" (use KiB, MiB, GiB, TiB, KB, MB, GB, TB, k, m, g or B)`);
  }
  const bytes = Number(num) * factor;
  if (factor === 1 && !Number.isInteger(bytes)) throw new UnitError(`must be a whole number of bytes, got "${value}"`);
  return checkBytes(Math.round(bytes), `"${value}"`);
}

function checkBytes(bytes: number, shown: string): number {
  if (!Number.isSafeInteger(bytes)) throw new UnitError(`${shown} is too large`);
  return bytes;
}

/** A short description of a TOML value for messages: `string "x"`, `integer 5`, `a table`. */
export function describeValue(v: unknown): string {
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    return Number.isInteger(v) ? `integer ${v}` : `number ${v}`;
  }
  if (typeof v === 'boolean') return `boolean ${v}`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date-time';
  if (v === null || v === undefined) return 'nothing';
  return 'a table';
}
