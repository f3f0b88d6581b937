/**
 * tnetstrings (tnetstrings.info), as Mongrel2 speaks them: request headers with
 * `protocol='tnetstring'` and the payload of extended (`X`) replies.
 *
 * Byte strings decode as latin1 so every byte survives a decode/encode round trip;
 * pass `{ buffers: true }` to get Buffers (subarrays of the input, no copy) instead.
 */
import { FrameError } from '../errors.js';
import { newDict } from './dict.js';

export type TNetValue = string | number | boolean | null | TNetValue[] | { [k: string]: TNetValue };
/** The `{ buffers: true }` flavour: byte strings stay Buffers; dict keys are still latin1 strings. */
export type TNetBinValue = Buffer | number | boolean | null | TNetBinValue[] | { [k: string]: TNetBinValue };
/** Anything encodeTNetstring accepts. */
export type TNetEncodable =
  | string
  | Buffer
  | number
  | boolean
  | null
  | readonly TNetEncodable[]
  | { readonly [k: string]: TNetEncodable };

/** Nesting beyond this is refused (decode and encode) so hostile input cannot exhaust the stack. */
export const TNET_MAX_DEPTH = 64;
/** The tnetstring spec caps the length prefix at 9 digits; it also keeps lengths exact in a double. */
export const TNET_MAX_LENGTH_DIGITS = 9;

export interface TNetParseOptions {
  /** Return byte strings as Buffers (subarrays of the input). */
  buffers?: boolean;
  /** Stop looking at this index (exclusive); defaults to buf.length. */
  end?: number;
  /** Defaults to TNET_MAX_DEPTH. */
  maxDepth?: number;
}

/** A read position over a byte range; shared with request.ts for the body netstring. */
export interface Cursor {
  readonly buf: Buffer;
  pos: number;
  end: number;
}

const COLON = 0x3a;
const TAG_STRING = 0x2c; // ,
const TAG_INT = 0x23; // #
const TAG_FLOAT = 0x5e; // ^
const TAG_BOOL = 0x21; // !
const TAG_NULL = 0x7e; // ~
const TAG_DICT = 0x7d; // }
const TAG_LIST = 0x5d; // ]

/**
 * Reads `DIGITS:` at cur.pos, leaves cur.pos on the first data byte and returns the length.
 * Stricter than Mongrel2's strtol (no sign, no blanks) because nothing legitimate needs those.
 */
export function readLengthPrefix(cur: Cursor): number {
  const { buf, end } = cur;
  const start = cur.pos;
  let p = start;
  let n = 0;
  while (p < end) {
    const c = buf[p]!;
    if (c === COLON) break;
    if (c < 0x30 || c > 0x39) {
      throw new FrameError(`expected a length digit or ':' at offset ${p}, got byte 0x${hex2(c)}`);
    }
    if (p - start >= TNET_MAX_LENGTH_DIGITS) {
      throw new FrameError(`length prefix at offset ${start} has more than ${TNET_MAX_LENGTH_DIGITS} digits`);
    }
    n = n * 10 + (c - 0x30);
    p++;
  }
  if (p >= end) throw new FrameError(`length prefix at offset ${start} is not terminated by ':'`);
  if (p === start) throw new FrameError(`empty length prefix at offset ${start}`);
  cur.pos = p + 1;
  return n;
}

function hex2(c: number): string {
  return c < 16 ? '0' + c.toString(16) : c.toString(16);
}

/**
 * Parsing runs over one latin1 decoding of the value's bytes (char index = byte offset - base):
 * slicing that string is much cheaper than a Buffer.toString call per string in the value.
 */
interface State {
  readonly s: string;
  readonly buf: Buffer;
  /** Byte offset of s[0] in buf. */
  readonly base: number;
  pos: number;
  end: number;
  readonly buffers: boolean;
  readonly maxDepth: number;
}

/** Parses one tnetstring at `offset`; `end` is the index just past its type tag. Throws FrameError. */
export function parseTNetstring(
  buf: Buffer,
  offset?: number,
  opts?: TNetParseOptions & { buffers?: false },
): { value: TNetValue; end: number };
export function parseTNetstring(
  buf: Buffer,
  offset: number | undefined,
  opts: TNetParseOptions & { buffers: true },
): { value: TNetBinValue; end: number };
export function parseTNetstring(
  buf: Buffer,
  offset?: number,
  opts?: TNetParseOptions,
): { value: TNetValue | TNetBinValue; end: number };
export function parseTNetstring(
  buf: Buffer,
  offset = 0,
  opts: TNetParseOptions = {},
): { value: TNetValue | TNetBinValue; end: number } {
  const limit = opts.end ?? buf.length;
  if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(limit) || limit > buf.length || offset > limit) {
    throw new RangeError(`bad tnetstring range ${offset}..${limit} of ${buf.length}`);
  }
  if (offset === limit) throw new FrameError(`empty input at offset ${offset}, expected a tnetstring`);
  // Decode only this value's bytes, not whatever follows it in the buffer.
  const cur: Cursor = { buf, pos: offset, end: limit };
  const len = readLengthPrefix(cur);
  const valueEnd = cur.pos + len + 1;
  if (valueEnd > limit) {
    throw new FrameError(`tnetstring at offset ${offset} claims ${len} byte(s), past the end of its container/input`);
  }
  const st: State = {
    s: buf.toString('latin1', offset, valueEnd),
    buf,
    base: offset,
    pos: 0,
    end: valueEnd - offset,
    buffers: opts.buffers === true,
    maxDepth: opts.maxDepth ?? TNET_MAX_DEPTH,
  };
  const value = parseValue(st, 0);
  return { value, end: offset + st.pos };
}

/** Decodes a buffer that must hold exactly one tnetstring (trailing bytes are an error). */
export function decodeTNetstring(buf: Buffer, opts?: { maxDepth?: number }): TNetValue {
  const { value, end } = parseTNetstring(buf, 0, { maxDepth: opts?.maxDepth });
  if (end !== buf.length) throw new FrameError(`${buf.length - end} trailing byte(s) after tnetstring at offset ${end}`);
  return value;
}

/** readLengthPrefix over the state's string. */
function readLen(st: State): number {
  const { s, end } = st;
  const start = st.pos;
  let p = start;
  let n = 0;
  while (p < end) {
    const c = s.charCodeAt(p);
    if (c === COLON) break;
    if (c < 0x30 || c > 0x39) {
      throw new FrameError(`expected a length digit or ':' at offset ${st.base + p}, got byte 0x${hex2(c)}`);
    }
    if (p - start >= TNET_MAX_LENGTH_DIGITS) {
      throw new FrameError(`length prefix at offset ${st.base + start} has more than ${TNET_MAX_LENGTH_DIGITS} digits`);
    }
    n = n * 10 + (c - 0x30);
    p++;
  }
  if (p >= end) throw new FrameError(`length prefix at offset ${st.base + start} is not terminated by ':'`);
  if (p === start) throw new FrameError(`empty length prefix at offset ${st.base + start}`);
  st.pos = p + 1;
  return n;
}

function parseValue(st: State, depth: number): TNetValue & TNetBinValue {
  const at = st.pos;
  const len = readLen(st);
  const start = st.pos;
  const tagPos = start + len;
  if (tagPos >= st.end) {
    throw new FrameError(`tnetstring at offset ${st.base + at} claims ${len} byte(s), past the end of its container/input`);
  }
  const s = st.s;
  const tag = s.charCodeAt(tagPos);
  switch (tag) {
    case TAG_STRING:
      st.pos = tagPos + 1;
      // The cast is honest: the caller picked the flavour through `buffers`.
      return (st.buffers ? st.buf.subarray(st.base + start, st.base + tagPos) : s.slice(start, tagPos)) as TNetValue &
        TNetBinValue;
    case TAG_INT:
      st.pos = tagPos + 1;
      return parseInteger(st, start, tagPos);
    case TAG_FLOAT:
      st.pos = tagPos + 1;
      return parseFloatText(st, start, tagPos);
    case TAG_BOOL:
      st.pos = tagPos + 1;
      if (len === 4 && s.startsWith('true', start)) return true;
      if (len === 5 && s.startsWith('false', start)) return false;
      throw new FrameError(`bad tnetstring boolean at offset ${st.base + at}`);
    case TAG_NULL:
      if (len !== 0) throw new FrameError(`tnetstring null at offset ${st.base + at} must be empty`);
      st.pos = tagPos + 1;
      return null;
    case TAG_DICT:
    case TAG_LIST: {
      if (depth >= st.maxDepth) {
        throw new FrameError(`tnetstring nesting deeper than ${st.maxDepth} at offset ${st.base + at}`);
      }
      const outerEnd = st.end;
      st.end = tagPos;
      const value = tag === TAG_DICT ? parseDictBody(st, depth + 1) : parseListBody(st, depth + 1);
      st.end = outerEnd;
      st.pos = tagPos + 1;
      return value;
    }
    default:
      throw new FrameError(`unknown tnetstring type tag 0x${hex2(tag)} at offset ${st.base + tagPos}`);
  }
}

function parseListBody(st: State, depth: number): TNetValue[] & TNetBinValue[] {
  const out: (TNetValue & TNetBinValue)[] = [];
  while (st.pos < st.end) out.push(parseValue(st, depth));
  return out;
}

function parseDictBody(st: State, depth: number): { [k: string]: TNetValue & TNetBinValue } {
  const out = newDict<TNetValue & TNetBinValue>();
  const s = st.s;
  while (st.pos < st.end) {
    const at = st.base + st.pos;
    const len = readLen(st);
    const keyEnd = st.pos + len;
    if (keyEnd >= st.end) throw new FrameError(`dict key at offset ${at} runs past the end of its dict`);
    if (s.charCodeAt(keyEnd) !== TAG_STRING) throw new FrameError(`dict key at offset ${at} is not a string`);
    const key = s.slice(st.pos, keyEnd);
    st.pos = keyEnd + 1;
    if (st.pos >= st.end) throw new FrameError(`dict key ${JSON.stringify(key)} at offset ${at} has no value`);
    // Mongrel2 never repeats a key; a repeat could only smuggle a second value past a check.
    if (out[key] !== undefined) throw new FrameError(`duplicate dict key ${JSON.stringify(key)} at offset ${at}`);
    out[key] = parseValue(st, depth);
  }
  return out;
}

function parseInteger(st: State, start: number, end: number): number {
  const s = st.s;
  let p = start;
  const neg = s.charCodeAt(p) === 0x2d;
  if (neg) p++;
  if (p === end) throw new FrameError(`empty tnetstring integer at offset ${st.base + start}`);
  let n = 0;
  for (; p < end; p++) {
    const c = s.charCodeAt(p);
    if (c < 0x30 || c > 0x39) throw new FrameError(`bad digit in tnetstring integer at offset ${st.base + p}`);
    n = n * 10 + (c - 0x30);
  }
  if (!Number.isSafeInteger(n)) throw new FrameError(`tnetstring integer at offset ${st.base + start} is out of range`);
  return neg ? 0 - n : n;
}

const FLOAT_RE = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

function parseFloatText(st: State, start: number, end: number): number {
  const text = st.s.slice(start, end);
  const n = FLOAT_RE.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(n)) throw new FrameError(`bad tnetstring float at offset ${st.base + start}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Encoding

// eslint-disable-next-line no-control-regex
const NON_LATIN1 = /[^\u0000-\u00ff]/;

/**
 * Encodes a value. Strings are byte strings: each char must be <= U+00FF (TypeError otherwise);
 * pass a Buffer for UTF-8 text. Safe integers use '#', other finite numbers '^'.
 */
export function encodeTNetstring(v: TNetEncodable): Buffer {
  const parts: Buffer[] = [];
  const total = encodeInto(v, parts, 0);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
}

/** Appends the encoding of v to parts; returns the number of bytes appended. */
function encodeInto(v: TNetEncodable, parts: Buffer[], depth: number): number {
  if (typeof v === 'string') {
    if (NON_LATIN1.test(v)) throw new TypeError('tnetstring string holds a char above U+00FF; pass a Buffer');
    return pushAtom(parts, v.length + ':' + v + ',');
  }
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return pushAtom(parts, withLength(String(v), '#'));
    if (Number.isFinite(v)) return pushAtom(parts, withLength(String(v), '^'));
    throw new TypeError(`cannot encode ${v} as a tnetstring`);
  }
  if (typeof v === 'boolean') return pushAtom(parts, v ? '4:true!' : '5:false!');
  if (v === null) return pushAtom(parts, '0:~');
  if (Buffer.isBuffer(v)) {
    const head = Buffer.from(v.length + ':', 'latin1');
    parts.push(head, v, COMMA_BUF);
    return head.length + v.length + 1;
  }
  if (depth >= TNET_MAX_DEPTH) throw new RangeError(`tnetstring nesting deeper than ${TNET_MAX_DEPTH}`);
  if (typeof v !== 'object') throw new TypeError(`cannot encode a ${typeof v} as a tnetstring`);
  const slot = parts.length;
  parts.push(COMMA_BUF); // placeholder for the length prefix
  let len = 0;
  let tag: Buffer;
  if (Array.isArray(v)) {
    const list = v as readonly TNetEncodable[];
    for (const item of list) len += encodeInto(item, parts, depth + 1);
    tag = LIST_TAG_BUF;
  } else {
    const dict = v as { readonly [k: string]: TNetEncodable };
    for (const key of Object.keys(dict)) {
      len += encodeInto(key, parts, depth + 1);
      len += encodeInto(dict[key] as TNetEncodable, parts, depth + 1);
    }
    tag = DICT_TAG_BUF;
  }
  const head = Buffer.from(len + ':', 'latin1');
  parts[slot] = head;
  parts.push(tag);
  return head.length + len + 1;
}

function withLength(text: string, tag: string): string {
  return text.length + ':' + text + tag;
}

function pushAtom(parts: Buffer[], s: string): number {
  parts.push(Buffer.from(s, 'latin1'));
  return s.length;
}

const COMMA_BUF = Buffer.from(',');
const LIST_TAG_BUF = Buffer.from(']');
const DICT_TAG_BUF = Buffer.from('}');
