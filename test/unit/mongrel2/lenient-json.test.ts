import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newDict } from '../../../src/mongrel2/dict.js';
import { JSON_MAX_DEPTH, parseLenientJson } from '../../../src/mongrel2/lenient-json.js';
import { fixture, fixtureNames } from '../fixtures.js';
import { assertInheritsNothing, dict, latin1, onlyFrameErrors, prng, throwsFrame } from './helpers.js';

/** The JSON header netstring of a json-protocol request fixture: [start, end). */
function headerRange(msg: Buffer): [number, number] {
  let sp = -1;
  for (let i = 0; i < 3; i++) sp = msg.indexOf(0x20, sp + 1);
  const colon = msg.indexOf(0x3a, sp);
  const len = Number(msg.toString('latin1', sp + 1, colon));
  return [colon + 1, colon + 1 + len];
}

/** JSON.parse result with objects made the parsers' dicts, for comparison. */
function nullProto(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(nullProto);
  if (v !== null && typeof v === 'object') {
    const out = newDict<unknown>();
    for (const [k, x] of Object.entries(v)) out[k] = nullProto(x);
    return out;
  }
  return v;
}

test('agrees with JSON.parse on the header JSON of every json-protocol fixture', () => {
  const names = fixtureNames((n) => n.endsWith('.json-protocol.bin'));
  assert.ok(names.length >= 20, `found ${names.length} fixtures`);
  for (const name of names) {
    const msg = fixture(name);
    const [s, e] = headerRange(msg);
    const ours = parseLenientJson(msg, s, e);
    assert.deepEqual(ours, nullProto(JSON.parse(msg.toString('latin1', s, e))), name);
  }
});

test('raw control characters inside strings are kept as-is', () => {
  const v = parseLenientJson(latin1('{"a":"x\x01\x1f\ty\n\x00z"}'));
  assert.deepEqual(v, dict({ a: 'x\x01\x1f\ty\n\x00z' }));
});

test('raw non-UTF-8 bytes decode as latin1 and re-encode to the same bytes', () => {
  const raw = Buffer.concat([latin1('{"a":"'), Buffer.from([0xff, 0xfe, 0xc3, 0xa9, 0x80]), latin1('"}')]);
  const v = parseLenientJson(raw) as Record<string, string>;
  assert.equal(v['a']!.length, 5);
  assert.deepEqual(Buffer.from(v['a']!, 'latin1'), Buffer.from([0xff, 0xfe, 0xc3, 0xa9, 0x80]));
});

test('raw bytes in a header name are accepted', () => {
  const raw = Buffer.concat([latin1('{"x-'), Buffer.from([0xff, 0x01]), latin1('name":"v","ok":"w"}')]);
  const v = parseLenientJson(raw) as Record<string, string>;
  assert.deepEqual(Object.keys(v), ['x-\xff\x01name', 'ok']);
  assert.equal(v['x-\xff\x01name'], 'v');
});

test('escaped quotes and backslashes (what Mongrel2 escapes) are decoded', () => {
  const v = parseLenientJson(latin1('{"x-quote":"say \\"hi\\" \\\\ back","k\\"ey":"\\\\"}'));
  assert.deepEqual(v, dict({ 'x-quote': 'say "hi" \\ back', 'k"ey': '\\' }));
});

test('the other standard escapes decode', () => {
  assert.equal(parseLenientJson(latin1('"\\n\\r\\t\\b\\f\\/"')), '\n\r\t\b\f/');
});

test('\\u escapes become UTF-8 bytes held in a latin1 string', () => {
  const asBytes = (json: string): Buffer => Buffer.from(parseLenientJson(latin1(json)) as string, 'latin1');
  assert.deepEqual(asBytes('"\\u0041"'), Buffer.from('A'));
  assert.deepEqual(asBytes('"\\u00e9"'), Buffer.from('é', 'utf8'));
  assert.deepEqual(asBytes('"\\u20AC"'), Buffer.from([0xe2, 0x82, 0xac]));
  assert.deepEqual(asBytes('"\\ud83d\\ude00"'), Buffer.from('😀', 'utf8'), 'surrogate pair → one code point');
  assert.deepEqual(asBytes('"x\\ud800y"'), Buffer.from([0x78, 0xef, 0xbf, 0xbd, 0x79]), 'lone surrogate → U+FFFD');
  assert.deepEqual(asBytes('"a\\u00e9\\nb"'), Buffer.from('aé\nb', 'utf8'));
  const long = '"' + '\\u0041'.repeat(100_000) + '"';
  assert.equal(parseLenientJson(latin1(long)), 'A'.repeat(100_000), 'long escape runs do not overflow');
});

test('nested arrays, numbers and literals parse as JSON says', () => {
  const text = ' { "a" : [ ["x"] , [ ] ] ,\n"b":[1,2.5,-3e2,0,-0.5E+1,true,false,null],"c":{"d":{}} } ';
  assert.deepEqual(parseLenientJson(latin1(text)), nullProto(JSON.parse(text)));
});

test('objects inherit nothing and __proto__ is an ordinary key', () => {
  const v = parseLenientJson(latin1('{"__proto__":"x","constructor":"y"}')) as Record<string, unknown>;
  assertInheritsNothing(v);
  assert.equal(v['__proto__'], 'x');
  assert.equal(v['constructor'], 'y');
  assert.deepEqual(Object.keys(v), ['__proto__', 'constructor']);
  const empty = parseLenientJson(latin1('{}')) as Record<string, unknown>;
  for (const k of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) assert.equal(empty[k], undefined, k);
  // A key that would pollute a plain object's prototype changes nothing for the next object.
  parseLenientJson(latin1('{"__proto__":{"polluted":"yes"}}'));
  assert.equal((parseLenientJson(latin1('{}')) as Record<string, unknown>)['polluted'], undefined);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('start and end select a subrange', () => {
  const buf = latin1('xx{"a":"b"}yy');
  assert.deepEqual(parseLenientJson(buf, 2, 11), dict({ a: 'b' }));
  throwsFrame(() => parseLenientJson(buf, 2, 10));
  throwsFrame(() => parseLenientJson(buf, 2), 'trailing yy');
  assert.throws(() => parseLenientJson(buf, 5, 100), RangeError);
});

test('a quote or backslash beyond `end` is not used', () => {
  throwsFrame(() => parseLenientJson(latin1('"abc"'), 0, 4), 'closing quote outside the range');
  assert.equal(parseLenientJson(latin1('"abc"\\'), 0, 5), 'abc');
  assert.equal(parseLenientJson(latin1('"a\\"b"\\"'), 0, 6), 'a"b');
});

test('rejects malformed JSON with FrameError', () => {
  const bad = [
    '',
    '   ',
    '{',
    '{"a"',
    '{"a":',
    '{"a":"b"',
    '{"a":"b",}',
    '{"a" "b"}',
    '{a:1}',
    "{'a':1}",
    '[1,]',
    '[1 2]',
    '"\\x"',
    '"\\',
    '"\\u12"',
    '"\\u12G4"',
    '01',
    '-',
    '1.',
    '1e',
    '.5',
    'tru',
    'nul',
    'True',
    '{"a":1}x',
    '{"a":1,"a":2}',
    '"unterminated',
  ];
  for (const s of bad) throwsFrame(() => parseLenientJson(latin1(s)), JSON.stringify(s));
});

test(`nesting is limited to ${JSON_MAX_DEPTH}`, () => {
  const nest = (n: number): Buffer => latin1('['.repeat(n) + ']'.repeat(n));
  assert.ok(Array.isArray(parseLenientJson(nest(JSON_MAX_DEPTH))));
  throwsFrame(() => parseLenientJson(nest(JSON_MAX_DEPTH + 1)));
  throwsFrame(() => parseLenientJson(nest(50_000)));
});

function randomJson(rand: () => number, depth: number): unknown {
  const r = Math.floor(rand() * (depth > 3 ? 5 : 7));
  switch (r) {
    case 0: {
      let s = '';
      const n = Math.floor(rand() * 10);
      for (let i = 0; i < n; i++) s += String.fromCharCode(32 + Math.floor(rand() * 95));
      return s;
    }
    case 1:
      return Math.round((rand() - 0.5) * 1e6) / 100;
    case 2:
      return rand() < 0.5;
    case 3:
      return null;
    case 4:
      return String.fromCharCode(Math.floor(rand() * 0x20)) + '"\\';
    case 5:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomJson(rand, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(rand() * 4);
      for (let i = 0; i < n; i++) o['k' + i] = randomJson(rand, depth + 1);
      return o;
    }
  }
}

test('random documents: same as JSON.parse; truncated objects and damaged bytes raise only FrameError', () => {
  const rand = prng(42);
  for (let n = 0; n < 300; n++) {
    const doc = { root: randomJson(rand, 0) };
    const text = JSON.stringify(doc, null, rand() < 0.5 ? 1 : undefined);
    const buf = latin1(text);
    assert.deepEqual(parseLenientJson(buf), nullProto(doc));
    const cut = Math.floor(rand() * buf.length);
    throwsFrame(() => parseLenientJson(buf.subarray(0, cut)), `cut ${text} at ${cut}`);
    const damaged = Buffer.from(buf);
    damaged[Math.floor(rand() * damaged.length)] = Math.floor(rand() * 256);
    onlyFrameErrors(() => parseLenientJson(damaged), `damaged ${damaged.toString('latin1')}`);
  }
});

test('long runs of \\u escapes, lone high surrogates included, decode or raise FrameError only', () => {
  // 150,000 `\ud800` threw RangeError (the run was never flushed while it ended in a high surrogate).
  const lone = parseLenientJson(Buffer.from('"' + '\\ud800'.repeat(150_000) + '"'));
  assert.equal(lone, '\xef\xbf\xbd'.repeat(150_000));
  const pairs = parseLenientJson(Buffer.from('"' + '\\ud83d\\ude00'.repeat(50_000) + '"'));
  assert.equal(pairs, Buffer.from('\u{1f600}'.repeat(50_000), 'utf8').toString('latin1'));
  const mixed = parseLenientJson(Buffer.from('"' + '\\ud800'.repeat(4095) + '\\ud83d\\ude00' + '"'));
  assert.equal(mixed, '\xef\xbf\xbd'.repeat(4095) + Buffer.from('\u{1f600}', 'utf8').toString('latin1'));
});
