import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newDict } from '../../../src/mongrel2/dict.js';
import {
  decodeTNetstring,
  encodeTNetstring,
  parseTNetstring,
  TNET_MAX_DEPTH,
  type TNetEncodable,
  type TNetValue,
} from '../../../src/mongrel2/tnetstring.js';
import { fixture } from '../fixtures.js';
import { assertInheritsNothing, dict, latin1, onlyFrameErrors, prng, throwsFrame } from './helpers.js';

test('encodes each type as the spec (and Mongrel2) write it', () => {
  const cases: [TNetEncodable, string][] = [
    ['', '0:,'],
    ['hello', '5:hello,'],
    [0, '1:0#'],
    [-42, '3:-42#'],
    [65536, '5:65536#'],
    [1.5, '3:1.5^'],
    [true, '4:true!'],
    [false, '5:false!'],
    [null, '0:~'],
    [[], '0:]'],
    [{}, '0:}'],
    [['a', 1], '8:1:a,1:1#]'],
    [{ credits: 65536 }, '18:7:credits,5:65536#}'],
    [latin1('\x00\xff'), '2:\x00\xff,'],
  ];
  for (const [v, expected] of cases) {
    assert.equal(encodeTNetstring(v).toString('latin1'), expected, `encoding ${JSON.stringify(v)}`);
  }
});

test('a ctl message encodes exactly as in reply-x-credits.bin', () => {
  const msg = fixture('reply-x-credits.bin');
  const payload = msg.subarray(msg.indexOf(', ') + 2);
  assert.deepEqual(encodeTNetstring(['ctl', { credits: 65536 }]), payload);
  assert.deepEqual(decodeTNetstring(payload), ['ctl', dict({ credits: 65536 })]);
});

test('decodes the header dict of a real Mongrel2 tnetstring request', () => {
  const msg = fixture('dup-headers.tnet-protocol.bin');
  const at = msg.indexOf(' /tnet/dup ') + ' /tnet/dup '.length;
  const { value, end } = parseTNetstring(msg, at);
  assert.equal(msg.toString('latin1', end), '0:,', 'end points at the body netstring');
  const h = value as Record<string, TNetValue>;
  assertInheritsNothing(h);
  assert.deepEqual(h['cookie'], ['c1=1', 'c2=2']);
  assert.deepEqual(h['x-dup'], ['a', 'b']);
  assert.equal(h['x-quote'], 'say "hi" \\ back');
  assert.equal(h['METHOD'], 'GET');
  assert.equal(Object.keys(h).length, 15);
});

test('round-trips every kind of value, including raw bytes and awkward keys', () => {
  const values: TNetValue[] = [
    '',
    'plain',
    '\x00\x01\r\n\xff\xfe',
    '3:abc,',
    0,
    -1,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    0.1,
    -2.5e-7,
    1e21,
    true,
    false,
    null,
    [],
    [[[]]],
    dict({}),
    dict({ __proto__: 'x', constructor: ['y'], '': null, 'k\xff': dict({ n: [1, 'two', false] }) }),
  ];
  for (const v of values) {
    const enc = encodeTNetstring(v);
    assert.deepEqual(decodeTNetstring(enc), v, `round trip of ${enc.toString('latin1')}`);
  }
});

test('buffers option returns byte strings as subarrays of the input', () => {
  const input = latin1('14:4:k\xffey,4:\x00\x01\x02\x03,}');
  const { value } = parseTNetstring(input, 0, { buffers: true });
  const v = value as Record<string, Buffer>;
  assert.ok(Buffer.isBuffer(v['k\xffey']));
  assert.deepEqual(v['k\xffey'], Buffer.from([0, 1, 2, 3]));
  assert.equal(v['k\xffey']!.buffer, input.buffer, 'no copy');
});

test('offset and end select one value inside a larger buffer', () => {
  const input = latin1('xx3:abc,1:7#yy');
  const first = parseTNetstring(input, 2);
  assert.deepEqual(first, { value: 'abc', end: 8 });
  const second = parseTNetstring(input, first.end);
  assert.deepEqual(second, { value: 7, end: 12 });
  throwsFrame(() => parseTNetstring(input, 2, { end: 7 }), 'value runs past `end`');
  assert.throws(() => parseTNetstring(input, 20), RangeError);
});

test('rejects malformed input with FrameError', () => {
  const bad: [string, string][] = [
    ['', 'empty'],
    [':', 'no length digits'],
    ['abc', 'no length'],
    ['-1:x,', 'negative length'],
    ['+1:x,', 'signed length'],
    [' 1:x,', 'blank before length'],
    ['1234567890:', 'too many length digits'],
    ['12', 'no colon'],
    ['5:abc,', 'length past end'],
    ['3:abc', 'missing type tag'],
    ['3:abc?', 'unknown type tag'],
    ['3:abcx', 'unknown type tag x'],
    ['0:#', 'empty integer'],
    ['1:-#', 'bare minus'],
    ['2:1a#', 'bad integer'],
    ['3:1.5#', 'float in integer'],
    ['20:99999999999999999999#', 'unsafe integer'],
    ['3:abc^', 'bad float'],
    ['2:1.^', 'bad float 2'],
    ['3:NaN^', 'NaN float'],
    ['3:yes!', 'bad boolean'],
    ['4:True!', 'bad boolean case'],
    ['1:x~', 'non-empty null'],
    ['9:3:abc,]', 'list length past end'],
    ['4:3:abc,]', 'child runs past its list'],
    ['5:1:1#1:a,}', 'non-string dict key'],
    ['4:1:a,}', 'dict key without value'],
    ['16:1:a,1:b,1:a,1:c,}', 'duplicate dict key'],
    ['6:3:abc,!', 'bool holding a string'],
  ];
  for (const [input, why] of bad) throwsFrame(() => parseTNetstring(latin1(input)), why);
});

test('decodeTNetstring rejects trailing garbage', () => {
  throwsFrame(() => decodeTNetstring(latin1('3:abc,x')));
  throwsFrame(() => decodeTNetstring(latin1('3:abc,3:abc,')));
  assert.equal(decodeTNetstring(latin1('3:abc,')), 'abc');
});

function nestedLists(depth: number): Buffer {
  let s = '0:]';
  for (let i = 1; i < depth; i++) s = `${s.length}:${s}]`;
  return latin1(s);
}

test(`nesting is limited to ${TNET_MAX_DEPTH} containers`, () => {
  assert.ok(Array.isArray(decodeTNetstring(nestedLists(TNET_MAX_DEPTH))));
  throwsFrame(() => decodeTNetstring(nestedLists(TNET_MAX_DEPTH + 1)));
  // Deep enough to overflow the stack if recursion were unbounded.
  throwsFrame(() => decodeTNetstring(nestedLists(20000)));
  assert.ok(Array.isArray(decodeTNetstring(nestedLists(100), { maxDepth: 100 })));
});

test('encoding refuses what cannot be represented', () => {
  assert.throws(() => encodeTNetstring(NaN), TypeError);
  assert.throws(() => encodeTNetstring(Infinity), TypeError);
  assert.throws(() => encodeTNetstring('€'), TypeError, 'chars above U+00FF');
  assert.throws(() => encodeTNetstring({ a: undefined } as unknown as TNetEncodable), TypeError);
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assert.throws(() => encodeTNetstring(cyclic as TNetEncodable), RangeError);
});

test('every truncation of a valid tnetstring throws FrameError', () => {
  const enc = encodeTNetstring(['ctl', { credits: 65536, list: [1, 'x', null, true, 2.5], s: '\xff' }]);
  for (let i = 0; i < enc.length; i++) throwsFrame(() => decodeTNetstring(enc.subarray(0, i)), `cut at ${i}`);
});

function randomValue(rand: () => number, depth: number): TNetValue {
  const r = Math.floor(rand() * (depth > 3 ? 6 : 8));
  switch (r) {
    case 0: {
      let s = '';
      const n = Math.floor(rand() * 12);
      for (let i = 0; i < n; i++) s += String.fromCharCode(Math.floor(rand() * 256));
      return s;
    }
    case 1:
      return Math.floor((rand() - 0.5) * 2 ** 40);
    case 2:
      return (rand() - 0.5) * 1e6;
    case 3:
      return rand() < 0.5;
    case 4:
      return null;
    case 5:
      return '';
    case 6:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    default: {
      const o = newDict<TNetValue>();
      const n = Math.floor(rand() * 4);
      for (let i = 0; i < n; i++) o['k' + i + String.fromCharCode(Math.floor(rand() * 256))] = randomValue(rand, depth + 1);
      return o;
    }
  }
}

test('random values round-trip; random byte damage only ever raises FrameError', () => {
  const rand = prng(0x7e57);
  for (let n = 0; n < 500; n++) {
    const v = randomValue(rand, 0);
    const enc = encodeTNetstring(v);
    assert.deepEqual(decodeTNetstring(enc), v);
    const damaged = Buffer.from(enc);
    const at = Math.floor(rand() * damaged.length);
    damaged[at] = Math.floor(rand() * 256);
    onlyFrameErrors(() => decodeTNetstring(damaged), `damaged ${damaged.toString('latin1')}`);
  }
});
