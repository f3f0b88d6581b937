/**
 * Typed reads from one parsed TOML table. Every read records its key as known (so
 * `reportUnknownKeys` can catch typos) and reports a wrong value as a problem under the
 * key's full dotted path, returning undefined so validation carries on and later
 * problems are found too.
 */
import path from 'node:path';
import { didYouMean, type Problems } from './problems.js';
import { joinPath } from './key-lines.js';
import { describeValue, parseDuration, parseSize, UnitError } from './units.js';

export type RawTable = Record<string, unknown>;

export interface ReadContext {
  readonly problems: Problems;
  /** Directory of the config file: relative paths resolve against it. */
  readonly baseDir: string;
}

export function isTable(v: unknown): v is RawTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

interface NumberRule {
  min?: number;
  max?: number;
}

interface DurationRule {
  /** Zero is refused unless allowed: a 0 s timeout is almost always a mistake. */
  allowZero?: boolean;
}

export class TableReader {
  private readonly known = new Set<string>();

  constructor(
    readonly raw: RawTable,
    /** Dotted path of this table as the user wrote it ("" for the root). */
    readonly path: string,
    readonly ctx: ReadContext,
  ) {}

  keyPath(key: string): string {
    return joinPath(this.path, key);
  }

  has(key: string): boolean {
    return Object.hasOwn(this.raw, key);
  }

  error(key: string, message: string): void {
    this.ctx.problems.error(this.keyPath(key), message);
  }

  warn(key: string, message: string): void {
    this.ctx.problems.warn(this.keyPath(key), message);
  }

  /** Marks keys as belonging here even when this reader does not read them itself. */
  allow(...keys: string[]): void {
    for (const k of keys) this.known.add(k);
  }

  /** The raw value (undefined when absent); marks the key known. */
  get(key: string): unknown {
    this.known.add(key);
    return this.has(key) ? this.raw[key] : undefined;
  }

  /** Reports `required` (a hint of what to write) when absent; the absent value reads as undefined. */
  private present(key: string, required: string | undefined): unknown {
    const v = this.get(key);
    if (v === undefined && required !== undefined) this.error(key, `is required: ${required}`);
    return v;
  }

  string(key: string, opts: { required?: string; allowEmpty?: boolean } = {}): string | undefined {
    const v = this.present(key, opts.required);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      this.error(key, `must be a string, got ${describeValue(v)}`);
      return undefined;
    }
    if (!opts.allowEmpty && v.trim() === '') {
      this.error(key, 'must not be empty');
      return undefined;
    }
    return v;
  }

  boolean(key: string): boolean | undefined {
    const v = this.get(key);
    if (v === undefined || typeof v === 'boolean') return v;
    this.error(key, `must be true or false, got ${describeValue(v)}`);
    return undefined;
  }

  integer(key: string, rule: NumberRule = {}): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      this.error(key, `must be an integer${rangeText(rule)}, got ${describeValue(v)}`);
      return undefined;
    }
    if ((rule.min !== undefined && v < rule.min) || (rule.max !== undefined && v > rule.max)) {
      this.error(key, `must be an integer${rangeText(rule)}, got ${v}`);
      return undefined;
    }
    return v;
  }

  /** Milliseconds. */
  duration(key: string, rule: DurationRule = {}): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    try {
      const ms = parseDuration(v);
      if (ms === 0 && !rule.allowZero) {
        this.error(key, `must be longer than zero, got ${JSON.stringify(v)}`);
        return undefined;
      }
      return ms;
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      this.error(key, err.message);
      return undefined;
    }
  }

  /** Bytes. */
  size(key: string): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    try {
      return parseSize(v);
    } catch (err) {
      if (!(err instanceof UnitError)) throw err;
      this.error(key, err.message);
      return undefined;
    }
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    this.error(key, `must be one of ${values.map((x) => `"${x}"`).join(', ')}, got ${describeValue(v)}`);
    return undefined;
  }

  /** A filesystem path; relative ones resolve against the config file's directory. */
  filePath(key: string, opts: { required?: string } = {}): string | undefined {
    const v = this.string(key, opts);
    return v === undefined ? undefined : path.resolve(this.ctx.baseDir, v);
  }

  stringArray(key: string): string[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) {
      this.error(key, `must be an array of strings, got ${describeValue(v)}`);
      return undefined;
    }
    let ok = true;
    v.forEach((item: unknown, i) => {
      if (typeof item !== 'string') {
        this.ctx.problems.error(`${this.keyPath(key)}[${i}]`, `must be a string, got ${describeValue(item)}`);
        ok = false;
      }
    });
    return ok ? (v as string[]) : undefined;
  }

  /** A table of string values, e.g. `params = { APP_ENV = "production" }`. */
  stringMap(key: string): Record<string, string> | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isTable(v)) {
      this.error(key, `must be a table of strings, e.g. { NAME = "value" }, got ${describeValue(v)}`);
      return undefined;
    }
    const entries: [string, string][] = [];
    let ok = true;
    for (const [name, item] of Object.entries(v)) {
      if (typeof item === 'string') {
        entries.push([name, item]);
      } else {
        const hint = typeof item === 'number' || typeof item === 'boolean' ? ` (quote it: "${String(item)}")` : '';
        this.ctx.problems.error(`${this.keyPath(key)}.${name}`, `must be a string${hint}, got ${describeValue(item)}`);
        ok = false;
      }
    }
    return ok ? Object.fromEntries(entries) : undefined;
  }

  /** A sub-table (`[a.b]` or `b = { … }`); null when absent or not a table (reported). */
  table(key: string, required?: string): TableReader | null {
    const v = this.present(key, required);
    if (v === undefined) return null;
    if (!isTable(v)) {
      this.error(key, `must be a table ([${this.keyPath(key)}]), got ${describeValue(v)}`);
      return null;
    }
    return new TableReader(v, this.keyPath(key), this.ctx);
  }

  /** An array of tables (`[[route]]`), each read under "key[i]"; null when absent. */
  tables(key: string): TableReader[] | null {
    const v = this.get(key);
    if (v === undefined) return null;
    if (!Array.isArray(v)) {
      this.error(key, `must be an array of tables: write each one under [[${this.keyPath(key)}]], got ${describeValue(v)}`);
      return null;
    }
    const out: TableReader[] = [];
    v.forEach((item: unknown, i) => {
      const p = `${this.keyPath(key)}[${i}]`;
      if (isTable(item)) out.push(new TableReader(item, p, this.ctx));
      else this.ctx.problems.error(p, `must be a table, got ${describeValue(item)}`);
    });
    return out;
  }

  /**
   * Reports every key no read asked for. `hint` may explain a key that is known
   * elsewhere (e.g. a fastcgi setting in an http upstream); otherwise the nearest known
   * key is suggested.
   */
  reportUnknownKeys(hint?: (key: string) => string | undefined): void {
    for (const key of Object.keys(this.raw)) {
      if (this.known.has(key)) continue;
      const explained = hint?.(key);
      const guess = didYouMean(key, this.known);
      const where = this.path === '' ? 'at the top level' : `in [${this.path}]`;
      const message = explained ?? `unknown key ${where}${guess ? ` (did you mean "${guess}"?)` : ''}`;
      this.error(key, message);
    }
  }
}

function rangeText(rule: NumberRule): string {
  if (rule.min !== undefined && rule.max !== undefined) return ` from ${rule.min} to ${rule.max}`;
  if (rule.min !== undefined) return ` >= ${rule.min}`;
  if (rule.max !== undefined) return ` <= ${rule.max}`;
  return '';
}
