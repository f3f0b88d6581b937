/**
 * smol-toml returns plain values without positions, so problems could not say where
 * they are. This scanner walks the TOML text once and maps every key path the user
 * wrote to its 1-based line: table headers (`[upstream.php]` → "upstream.php"), arrays
 * of tables with a running index (`[[route]]` → "route[0]", "route[1]"), dotted keys,
 * inline tables (`params = { A = "1" }` → "….params.A") and array elements
 * ("….deny[1]"). It is lenient: it runs only on text smol-toml accepted, and anything
 * it cannot follow just falls back to the enclosing table's line.
 */

export interface KeyLines {
  /** Line of exactly this path, if it was written. */
  lineOf(path: string): number | undefined;
  /** Line of this path or of its nearest written ancestor (a missing key → its table header). */
  lineFor(path: string): number | undefined;
  /** The key or table name with the most dotted parts, and its line (0 parts in an empty file). */
  readonly deepest: { readonly parts: number; readonly line: number };
  /** Line of the first array or inline table nested deeper than MAX_TRACKED_NESTING, or null. */
  readonly nestedTooDeep: number | null;
}

/**
 * Paths longer than this, or deeper than MAX_TRACKED_DEPTH, are not recorded (their keys get the
 * line of the nearest recorded ancestor). Every known key is far shorter; recording each prefix
 * of a 16 KB dotted header, and hashing each one, was quadratic (16 KB: 0.7–2 s).
 */
export const MAX_TRACKED_PATH = 512;
export const MAX_TRACKED_DEPTH = 16;
/** Inline tables/arrays nested deeper than this are not followed (and count as too deep a key). */
export const MAX_TRACKED_NESTING = 64;

export function scanKeyLines(text: string): KeyLines {
  const scanner = new Scanner(text);
  const lines = scanner.run();
  return {
    deepest: scanner.deepest,
    nestedTooDeep: scanner.nestedTooDeep,
    lineOf: (p) => (p.length > MAX_TRACKED_PATH ? undefined : lines.get(p)),
    lineFor: (p) => {
      // Walk the ancestors from the end without slicing each one: a path with many dots in a
      // long key would otherwise cost a copy per ancestor.
      let cur: string | null = p;
      while (cur !== null && cur.length > MAX_TRACKED_PATH) cur = parentPathWithin(cur, MAX_TRACKED_PATH);
      for (; cur !== null; cur = parentPath(cur)) {
        const line = lines.get(cur);
        if (line !== undefined) return line;
      }
      return undefined;
    },
  };
}

/** The nearest ancestor of `p` (by parentPath's rules) no longer than `max`, or null. */
function parentPathWithin(p: string, max: number): string | null {
  for (let i = Math.min(p.length - 1, max); i > 0; i--) {
    const c = p.charCodeAt(i);
    if (c === 0x2e /* . */ || c === 0x5b /* [ */) return p.slice(0, i);
  }
  return null;
}

/** "route[2].upstream" → "route[2]" → "route" → null. */
export function parentPath(p: string): string | null {
  if (p.endsWith(']')) {
    const open = p.lastIndexOf('[');
    return open > 0 ? p.slice(0, open) : null;
  }
  const dot = p.lastIndexOf('.');
  return dot > 0 ? p.slice(0, dot) : null;
}

export function joinPath(base: string, key: string): string {
  return base === '' ? key : `${base}.${key}`;
}

const BARE_KEY = /[A-Za-z0-9_-]/;
/** The table context of keys below a path too long or deep to record: nothing under it is recorded. */
const UNTRACKED = '\u0000untracked';

function trackable(segs: readonly string[], base: string): boolean {
  if (segs.length > MAX_TRACKED_DEPTH) return false;
  let len = base.length;
  for (const seg of segs) len += seg.length + 1;
  return len <= MAX_TRACKED_PATH;
}
const SCALAR_END = new Set([' ', '\t', '\r', '\n', ',', ']', '}', '#']);

class Scanner {
  private pos = 0;
  private readonly lines = new Map<string, number>();
  deepest = { parts: 0, line: 0 };
  /** Inline tables and arrays open around the current position. */
  private nesting = 0;
  /** Line of the first array/inline table nested deeper than MAX_TRACKED_NESTING. */
  nestedTooDeep: number | null = null;
  /** Arrays of tables seen so far, by indexed path, with their element count. */
  private readonly arrayCounts = new Map<string, number>();
  private readonly lineStarts: number[] = [0];

  constructor(private readonly s: string) {
    for (let i = 0; i < s.length; i++) if (s[i] === '\n') this.lineStarts.push(i + 1);
  }

  run(): Map<string, number> {
    let table = '';
    while (this.skipBlank()) {
      const start = this.pos;
      if (this.s[this.pos] === '[') {
        table = this.header() ?? table;
      } else {
        this.keyValue(table);
      }
      this.skipToEol();
      if (this.pos === start) this.pos++;
    }
    return this.lines;
  }

  private header(): string | null {
    const line = this.lineAt(this.pos);
    const isArray = this.s[this.pos + 1] === '[';
    this.pos += isArray ? 2 : 1;
    const segs = this.keyPath();
    if (segs.length === 0) return null;
    let out = '';
    let tracked = true;
    segs.forEach((seg, i) => {
      // Past the limits only the leading segments are recorded; keys below are not.
      if (!tracked || i >= MAX_TRACKED_DEPTH || out.length + seg.length + 1 > MAX_TRACKED_PATH) {
        tracked = false;
        return;
      }
      const candidate = joinPath(out, seg);
      this.record(candidate, line);
      const count = this.arrayCounts.get(candidate);
      if (isArray && i === segs.length - 1) {
        const n = count ?? 0;
        this.arrayCounts.set(candidate, n + 1);
        out = `${candidate}[${n}]`;
        this.record(out, line);
      } else if (count !== undefined) {
        // `[route.x]` after `[[route]]` belongs to the last route element.
        out = `${candidate}[${count - 1}]`;
      } else {
        out = candidate;
      }
    });
    return tracked ? out : UNTRACKED;
  }

  private keyValue(base: string): void {
    const line = this.lineAt(this.pos);
    const segs = this.keyPath();
    if (segs.length === 0 || this.s[this.pos] !== '=') return;
    this.pos++;
    let p = base;
    if (base === UNTRACKED || !trackable(segs, base)) {
      p = UNTRACKED;
    } else {
      for (const seg of segs) {
        p = joinPath(p, seg);
        this.record(p, line);
      }
    }
    this.value(p);
  }

  private value(path: string): void {
    this.skipSpaces();
    const c = this.s[this.pos];
    if ((c === '{' || c === '[') && this.nesting >= MAX_TRACKED_NESTING) {
      // Deeper than any config: note it (the loader refuses the file) and do not recurse, so
      // `a = [[[[…` cannot overflow the stack. The scan carries on leniently from here.
      this.nestedTooDeep ??= this.lineAt(this.pos);
      this.pos++;
      return;
    }
    this.nesting++;
    try {
      if (c === '{') this.inlineTable(path);
      else if (c === '[') this.array(path);
      else this.scalar();
    } finally {
      this.nesting--;
    }
  }

  private scalar(): void {
    const c = this.s[this.pos];
    if (c === '"' || c === "'") this.string();
    else while (this.pos < this.s.length && !SCALAR_END.has(this.s[this.pos] ?? '')) this.pos++;
  }

  private inlineTable(path: string): void {
    this.pos++;
    while (this.skipBlank()) {
      const c = this.s[this.pos];
      if (c === '}') {
        this.pos++;
        return;
      }
      if (c === ',') {
        this.pos++;
        continue;
      }
      const start = this.pos;
      this.keyValue(path);
      if (this.pos === start) return;
    }
  }

  private array(path: string): void {
    this.pos++;
    let index = 0;
    while (this.skipBlank()) {
      const c = this.s[this.pos];
      if (c === ']') {
        this.pos++;
        return;
      }
      if (c === ',') {
        this.pos++;
        index++;
        continue;
      }
      const start = this.pos;
      const elem = path === UNTRACKED ? UNTRACKED : `${path}[${index}]`;
      if (elem !== UNTRACKED && elem.length <= MAX_TRACKED_PATH) this.record(elem, this.lineAt(this.pos));
      this.value(elem);
      if (this.pos === start) return;
    }
  }

  /** Dotted key segments up to (not including) '=' or ']'/']]'. */
  private keyPath(): string[] {
    const segs: string[] = [];
    const at = this.pos;
    for (;;) {
      this.skipSpaces();
      const c = this.s[this.pos];
      if (c === '"' || c === "'") {
        segs.push(this.string());
      } else {
        const start = this.pos;
        while (BARE_KEY.test(this.s[this.pos] ?? '')) this.pos++;
        if (this.pos === start) break;
        segs.push(this.s.slice(start, this.pos));
      }
      this.skipSpaces();
      if (this.s[this.pos] !== '.') break;
      this.pos++;
    }
    if (segs.length > this.deepest.parts) this.deepest = { parts: segs.length, line: this.lineAt(at) };
    return segs;
  }

  /** Reads any of the four TOML string forms at pos; returns the raw content (escapes kept). */
  private string(): string {
    const q = this.s[this.pos] ?? '"';
    const triple = this.s.startsWith(q.repeat(3), this.pos);
    this.pos += triple ? 3 : 1;
    const start = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s[this.pos];
      if (c === '\\' && q === '"') {
        this.pos += 2;
        continue;
      }
      if (c === '\n' && !triple) break;
      if (c === q && (!triple || this.s.startsWith(q.repeat(3), this.pos))) {
        let end = this.pos;
        if (triple) {
          // A closing delimiter may be preceded by up to two quotes that belong to the content.
          while (this.s[end + 3] === q && end - this.pos < 2) end++;
          this.pos = end + 3;
        } else {
          this.pos++;
        }
        return this.s.slice(start, end);
      }
      this.pos++;
    }
    return this.s.slice(start, this.pos);
  }

  private skipSpaces(): void {
    while (this.s[this.pos] === ' ' || this.s[this.pos] === '\t') this.pos++;
  }

  /** Skips whitespace, newlines and comments; false at end of text. */
  private skipBlank(): boolean {
    for (;;) {
      const c = this.s[this.pos];
      if (c === ' ' || c === '\t' || c === '\r' || c === '\n') this.pos++;
      else if (c === '#') this.skipToEol();
      else return c !== undefined;
    }
  }

  private skipToEol(): void {
    const nl = this.s.indexOf('\n', this.pos);
    this.pos = nl === -1 ? this.s.length : nl;
  }

  private record(path: string, line: number): void {
    if (!this.lines.has(path)) this.lines.set(path, line);
  }

  private lineAt(pos: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.lineStarts[mid] ?? 0) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }
}
