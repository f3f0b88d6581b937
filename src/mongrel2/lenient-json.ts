/**
 * JSON over a Buffer, lenient in exactly the way Mongrel2's JSON needs.
 *
 * Mongrel2's json_escape (request.c) escapes only `"` and `\`; control characters and non-UTF-8
 * bytes are copied raw into strings, and header *names* are not escaped at all. So inside a
 * string every byte except `"` and `\` is taken literally and decoded as latin1 (one char per
 * byte), which keeps header bytes exact. Escapes are decoded to their code points, encoded as
 * UTF-8 and then read back as latin1, so an escaped char lands as the same bytes a raw one would.
 *
 * Everything else is strict JSON. Objects are null-prototype; a repeated key is an error because
 * Mongrel2 never emits one and a repeat could override a header after it was checked.
 *
 * The range is decoded to one latin1 string up front: char index = byte offset, and substrings
 * of it are far cheaper than a Buffer.toString call per JSON string.
 */
import { FrameError } from '../errors.js';
import { newDict } from './dict.js';

export const JSON_MAX_DEPTH = 64;

const QUOTE = 0x22;

export function parseLenientJson(buf: Buffer, start = 0, end = buf.length, opts?: { maxDepth?: number }): unknown {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > buf.length || start > end) {
    throw new RangeError(`bad JSON range ${start}..${end} of ${buf.length}`);
  }
  return parseLatin1Json(buf.toString('latin1', start, end), start, opts?.maxDepth ?? JSON_MAX_DEPTH);
}

/** Same, over text that is already a latin1 decoding of bytes; `base` only shifts error offsets. */
export function parseLatin1Json(text: string, base = 0, maxDepth = JSON_MAX_DEPTH): unknown {
  const p = new Parser(text, base, maxDepth);
  p.skipWs();
  const value = p.parseValue(0);
  p.skipWs();
  if (p.pos !== text.length) p.fail('unexpected data after the JSON value');
  return value;
}

class Parser {
  pos = 0;
  private readonly end: number;
  /** Index of the next backslash at or after some earlier pos, cached so strings are not rescanned. */
  private nextBackslash = -1;

  constructor(
    private readonly s: string,
    private readonly base: number,
    private readonly maxDepth: number,
  ) {
    this.end = s.length;
  }

  skipWs(): void {
    const { s, end } = this;
    let p = this.pos;
    while (p < end) {
      const c = s.charCodeAt(p);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      p++;
    }
    this.pos = p;
  }

  fail(what: string, at = this.pos): never {
    throw new FrameError(`malformed JSON: ${what} at offset ${this.base + at}`);
  }

  parseValue(depth: number): unknown {
    if (this.pos >= this.end) this.fail('unexpected end of input');
    const c = this.s.charCodeAt(this.pos);
    switch (c) {
      case QUOTE:
        return this.parseString();
      case 0x7b: // {
        return this.parseObject(depth);
      case 0x5b: // [
        return this.parseArray(depth);
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
        return this.fail(`unexpected byte 0x${c.toString(16).padStart(2, '0')}`);
    }
  }

  private literal<T>(word: string, value: T): T {
    if (!this.s.startsWith(word, this.pos)) this.fail(`bad literal (expected ${word})`);
    this.pos += word.length;
    return value;
  }

  private digitAt(p: number): boolean {
    const c = this.s.charCodeAt(p); // NaN past the end
    return c >= 0x30 && c <= 0x39;
  }

  private parseNumber(): number {
    const { s } = this;
    const start = this.pos;
    let p = start;
    if (s.charCodeAt(p) === 0x2d) p++;
    if (s.charCodeAt(p) === 0x30) p++;
    else if (this.digitAt(p)) while (this.digitAt(p)) p++;
    else this.fail('bad number', start);
    if (s.charCodeAt(p) === 0x2e) {
      p++;
      if (!this.digitAt(p)) this.fail('bad fraction', start);
      while (this.digitAt(p)) p++;
    }
    const e = s.charCodeAt(p);
    if (e === 0x65 || e === 0x45) {
      p++;
      const sign = s.charCodeAt(p);
      if (sign === 0x2b || sign === 0x2d) p++;
      if (!this.digitAt(p)) this.fail('bad exponent', start);
      while (this.digitAt(p)) p++;
    }
    this.pos = p;
    return Number(s.slice(start, p));
  }

  private parseArray(depth: number): unknown[] {
    if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    this.pos++; // [
    const out: unknown[] = [];
    this.skipWs();
    if (this.peek() === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.parseValue(depth + 1));
      this.skipWs();
      const c = this.peek();
      this.pos++;
      if (c === 0x5d) return out;
      if (c !== 0x2c) this.fail("expected ',' or ']'", this.pos - 1);
      this.skipWs();
    }
  }

  private parseObject(depth: number): Record<string, unknown> {
    if (depth >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    this.pos++; // {
    const out = newDict<unknown>();
    this.skipWs();
    if (this.peek() === 0x7d) {
      this.pos++;
      return out;
    }
    for (;;) {
      if (this.peek() !== QUOTE) this.fail('expected a string key');
      const keyAt = this.pos;
      const key = this.parseString();
      this.skipWs();
      if (this.peek() !== 0x3a) this.fail("expected ':'");
      this.pos++;
      this.skipWs();
      if (out[key] !== undefined) this.fail(`duplicate key ${JSON.stringify(key)}`, keyAt);
      out[key] = this.parseValue(depth + 1);
      this.skipWs();
      const c = this.peek();
      this.pos++;
      if (c === 0x7d) return out;
      if (c !== 0x2c) this.fail("expected ',' or '}'", this.pos - 1);
      this.skipWs();
    }
  }

  /** -1 at the end of input, so callers' comparisons fail cleanly. */
  private peek(): number {
    return this.pos < this.end ? this.s.charCodeAt(this.pos) : -1;
  }

  private findBackslash(from: number): number {
    if (this.nextBackslash < from) {
      const i = this.s.indexOf('\\', from);
      this.nextBackslash = i === -1 ? this.end : i;
    }
    return this.nextBackslash;
  }

  private findQuote(from: number): number {
    const i = this.s.indexOf('"', from);
    if (i === -1) this.fail('unterminated string', from - 1);
    return i;
  }

  private parseString(): string {
    const { s } = this;
    const start = this.pos + 1;
    let q = this.findQuote(start);
    let bs = this.findBackslash(start);
    if (bs > q) {
      this.pos = q + 1;
      return s.slice(start, q);
    }
    let out = '';
    let p = start;
    for (;;) {
      if (q < bs) {
        out += s.slice(p, q);
        this.pos = q + 1;
        return out;
      }
      if (bs > p) out += s.slice(p, bs);
      out += this.decodeEscapes(bs);
      p = this.pos;
      if (q < p) q = this.findQuote(p);
      bs = this.findBackslash(p);
    }
  }

  /** Decodes the run of escapes starting at `at` (a backslash); leaves pos just after it. */
  private decodeEscapes(at: number): string {
    const { s, end } = this;
    let p = at;
    let text = '';
    // Consecutive \u escapes are gathered so a surrogate pair becomes one code point.
    let units: number[] | null = null;
    while (p < end && s.charCodeAt(p) === 0x5c) {
      if (p + 1 >= end) this.fail('truncated escape', p);
      const e = s.charCodeAt(p + 1);
      if (e === 0x75) {
        if (p + 6 > end) this.fail('truncated \\u escape', p);
        const h1 = hexVal(s.charCodeAt(p + 2));
        const h2 = hexVal(s.charCodeAt(p + 3));
        const h3 = hexVal(s.charCodeAt(p + 4));
        const h4 = hexVal(s.charCodeAt(p + 5));
        if ((h1 | h2 | h3 | h4) < 0) this.fail('bad \\u escape', p);
        const u = (h1 << 12) | (h2 << 8) | (h3 << 4) | h4;
        (units ??= []).push(u);
        p += 6;
        // Flush long runs (String.fromCharCode(...units) has an argument limit), never mid-pair:
        // a trailing high surrogate waits for the next unit. Waiting only for a unit that is not
        // a high surrogate let a run of `\ud800` grow without end (RangeError at ~150k).
        if (units.length >= 4096) {
          if (u >= 0xd800 && u <= 0xdbff) {
            units.pop();
            text += utf16UnitsAsLatin1Bytes(units);
            units = [u];
          } else {
            text += utf16UnitsAsLatin1Bytes(units);
            units = null;
          }
        }
        continue;
      }
      const simple = SIMPLE_ESCAPES[e];
      if (simple === undefined) this.fail(`bad escape \\${String.fromCharCode(e)}`, p);
      // ASCII: the same byte through UTF-8. Gathered with the \u units, so a run of escapes costs
      // one string per 4096 of them rather than one concatenation each (a 4 MiB run of `\"\\`
      // made a rope of millions of pieces). A pair split by it stays two lone surrogates.
      (units ??= []).push(simple.charCodeAt(0));
      p += 2;
      if (units.length >= 4096) {
        text += utf16UnitsAsLatin1Bytes(units);
        units = null;
      }
    }
    if (units !== null) text += utf16UnitsAsLatin1Bytes(units);
    this.pos = p;
    return text;
  }
}

/** 0..15, or -1 for a non-hex char. */
function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** UTF-16 units → UTF-8 bytes → latin1 string. A lone surrogate becomes U+FFFD, as in any UTF-8 encoder. */
function utf16UnitsAsLatin1Bytes(units: number[]): string {
  if (units.length === 1 && units[0]! < 0x80) return String.fromCharCode(units[0]!);
  return Buffer.from(String.fromCharCode(...units), 'utf8').toString('latin1');
}

const SIMPLE_ESCAPES: (string | undefined)[] = [];
SIMPLE_ESCAPES[0x22] = '"';
SIMPLE_ESCAPES[0x5c] = '\\';
SIMPLE_ESCAPES[0x2f] = '/';
SIMPLE_ESCAPES[0x62] = '\b';
SIMPLE_ESCAPES[0x66] = '\f';
SIMPLE_ESCAPES[0x6e] = '\n';
SIMPLE_ESCAPES[0x72] = '\r';
SIMPLE_ESCAPES[0x74] = '\t';
