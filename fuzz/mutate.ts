/**
 * Mutations for the fuzzers: bit flips, interesting bytes (NUL, non-UTF-8, syntax), truncation,
 * lying lengths (a netstring/tnetstring length prefix changed), deletions, repeats, splices from
 * other seeds and deep nesting. Deterministic for a given seed so a failure reproduces.
 */

export interface Rng {
  /** [0, 1) */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
}

/** mulberry32 */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
  };
}

const INTERESTING = Buffer.from([
  0x00, 0xff, 0xfe, 0x7f, 0x80, 0xc0, 0xed, 0xa0, 0x01, 0x20, 0x09, 0x0d, 0x0a, 0x22, 0x5c, 0x3a, 0x2c, 0x7b,
  0x7d, 0x5b, 0x5d, 0x23, 0x5e, 0x21, 0x7e, 0x25, 0x2e, 0x2f, 0x30, 0x39, 0x3d, 0x2d, 0x3b, 0x27,
]);

const TOKENS = [
  '\\u0000', '\\ud800', '\\udc00', '\\ud83d\\ude00', '\\"', '\\\\', '%00', '%2f', '%2e%2e', '/../', '/./', '//', '\r\n',
  '\n\n', ':', '999999999:', '0:', ',', '}', ']', '{', '[', '"', '0:~', '4:true!', '1:x,', 'bytes=', 'W/', '*', '.php',
  '/.git/', '[a.b.c]', '[[route]]', 'x = 1\n', '"""', "'''", '\u00ff', '\x00', 'Status: ', 'Location: //x\r\n',
];

type Mutator = (b: Buffer, r: Rng, seeds: readonly Buffer[]) => Buffer;

const flipBits: Mutator = (b, r) => {
  if (b.length === 0) return Buffer.from([r.int(256)]);
  const out = Buffer.from(b);
  for (let k = 1 + r.int(8); k > 0; k--) out[r.int(out.length)]! ^= 1 << r.int(8);
  return out;
};

const setBytes: Mutator = (b, r) => {
  if (b.length === 0) return Buffer.from([r.pick([...INTERESTING])]);
  const out = Buffer.from(b);
  for (let k = 1 + r.int(4); k > 0; k--) out[r.int(out.length)] = r.next() < 0.7 ? INTERESTING[r.int(INTERESTING.length)]! : r.int(256);
  return out;
};

const truncate: Mutator = (b, r) => (r.next() < 0.7 ? b.subarray(0, r.int(b.length + 1)) : b.subarray(r.int(b.length + 1)));

const deleteRange: Mutator = (b, r) => {
  const at = r.int(b.length + 1);
  const n = 1 + r.int(Math.min(64, Math.max(1, b.length - at)));
  return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + n))]);
};

const insertToken: Mutator = (b, r) => {
  const at = r.int(b.length + 1);
  const tok = Buffer.from(r.pick(TOKENS), 'latin1');
  return Buffer.concat([b.subarray(0, at), tok, b.subarray(at)]);
};

const repeatRange: Mutator = (b, r) => {
  if (b.length === 0) return b;
  const at = r.int(b.length);
  const n = 1 + r.int(Math.min(32, b.length - at));
  const piece = b.subarray(at, at + n);
  const times = 1 + r.int(r.next() < 0.1 ? 2000 : 16);
  return Buffer.concat([b.subarray(0, at), ...Array<Buffer>(times).fill(piece), b.subarray(at)]);
};

const splice: Mutator = (b, r, seeds) => {
  const other = r.pick(seeds);
  const from = r.int(other.length + 1);
  const piece = other.subarray(from, from + r.int(256));
  const at = r.int(b.length + 1);
  return Buffer.concat([b.subarray(0, at), piece, b.subarray(at)]);
};

/** Changes one `DIGITS:` length prefix (netstrings, tnetstrings) to a lie. */
const lyingLength: Mutator = (b, r) => {
  const prefixes: Array<[number, number]> = [];
  for (let i = 0; i < b.length && prefixes.length < 64; i++) {
    if (b[i] !== 0x3a) continue;
    let j = i;
    while (j > 0 && b[j - 1]! >= 0x30 && b[j - 1]! <= 0x39) j--;
    if (j < i) prefixes.push([j, i]);
  }
  if (prefixes.length === 0) return insertToken(b, r, []);
  const [s, e] = r.pick(prefixes);
  const old = Number(b.toString('latin1', s, e));
  const lie = r.pick([old + 1, old - 1, 0, old * 2, 999999999, 1e10, old + 1 + r.int(100)]);
  return Buffer.concat([b.subarray(0, s), Buffer.from(String(Math.max(0, lie)), 'latin1'), b.subarray(e)]);
};

const nonUtf8: Mutator = (b, r) => {
  const at = r.int(b.length + 1);
  const junk = Buffer.from(Array.from({ length: 1 + r.int(8) }, () => 0x80 + r.int(128)));
  return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
};

/** Generic nesting: JSON-ish brackets around a random range. */
const nest: Mutator = (b, r) => {
  const depth = r.pick([2, 63, 64, 65, 200, 5000]);
  const at = r.int(b.length + 1);
  const [open, close] = r.pick([['[', ']'], ['{"a":', '}'], ['{', '}']] as const);
  return Buffer.concat([b.subarray(0, at), Buffer.from(open.repeat(depth)), Buffer.from(close.repeat(r.next() < 0.5 ? depth : r.int(depth))), b.subarray(at)]);
};

const MUTATORS: readonly Mutator[] = [flipBits, setBytes, truncate, deleteRange, insertToken, repeatRange, splice, lyingLength, lyingLength, nonUtf8, nest];

/** 1–4 stacked mutations of `seed`, capped at `maxBytes`. */
export function mutate(
  seed: Buffer,
  r: Rng,
  seeds: readonly Buffer[],
  maxBytes: number,
  extra: ReadonlyArray<(input: Buffer, r: Rng) => Buffer> = [],
): Buffer {
  let b = seed;
  for (let k = 1 + r.int(4); k > 0; k--) {
    const useExtra = extra.length > 0 && r.next() < 0.25;
    b = useExtra ? r.pick(extra)(b, r) : r.pick(MUTATORS)(b, r, seeds);
    if (b.length > maxBytes) b = b.subarray(0, maxBytes);
  }
  return b;
}
