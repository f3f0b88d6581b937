import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DURATION_MS, parseDuration, parseSize, UnitError } from '../../../src/config/units.js';

test('parseDuration reads every documented form into milliseconds', () => {
  const cases: [unknown, number][] = [
    ['250ms', 250],
    ['5s', 5_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['1.5s', 1_500],
    ['1m30s', 90_000],
    ['1h 15m', 4_500_000],
    [' 5s ', 5_000],
    ['0.5ms', 1], // rounded to whole ms
    [5, 5_000],
    [0.25, 250],
    [0, 0],
    ['30', 30_000],
    ['.5s', 500],
  ];
  for (const [input, ms] of cases) assert.equal(parseDuration(input), ms, `parseDuration(${JSON.stringify(input)})`);
});

test('parseDuration rejects bad values with a precise message', () => {
  const cases: [unknown, RegExp][] = [
    ['-5s', /must not be negative, got "-5s"/],
    [-1, /must not be negative, got -1/],
    [NaN, /NaN/],
    ['5sec', /unknown unit "sec" in "5sec" \(use ms, s, m or h\)/],
    ['3d', /unknown unit "d" in "3d"/],
    ['1m30', /missing unit after 30 in "1m30"/],
    ['s', /cannot read "s" in duration "s"/],
    ['5s!', /cannot read "!" in duration "5s!"/],
    ['', /empty string/],
    [true, /got boolean true/],
    [[1], /got an array/],
    ['600h', /too long: at most 2147483647 ms/],
    [Infinity, /too long/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseDuration(input), (err: unknown) => {
      assert.ok(err instanceof UnitError, `${String(input)} should throw UnitError`);
      assert.match(err.message, message);
      return true;
    });
  }
});

test('parseDuration accepts the setTimeout limit and nothing above it', () => {
  assert.equal(parseDuration(`${MAX_DURATION_MS}ms`), MAX_DURATION_MS);
  assert.throws(() => parseDuration(`${MAX_DURATION_MS + 1}ms`), UnitError);
});

test('parseSize reads binary, decimal and bare sizes into bytes', () => {
  const cases: [unknown, number][] = [
    ['512', 512],
    [512, 512],
    [0, 0],
    ['10KiB', 10 * 1024],
    ['100MiB', 100 * 1024 * 1024],
    ['1GiB', 1024 ** 3],
    ['2TiB', 2 * 1024 ** 4],
    ['10KB', 10_000],
    ['10MB', 10_000_000],
    ['1GB', 1_000_000_000],
    ['1k', 1024],
    ['1K', 1024],
    ['1m', 1024 * 1024],
    ['1g', 1024 ** 3],
    ['64B', 64],
    ['1.5KiB', 1536],
    ['10 MiB', 10 * 1024 * 1024],
    ['10mib', 10 * 1024 * 1024],
  ];
  for (const [input, bytes] of cases) assert.equal(parseSize(input), bytes, `parseSize(${JSON.stringify(input)})`);
});

test('parseSize rejects bad values with a precise message', () => {
  const cases: [unknown, RegExp][] = [
    ['-1', /must not be negative, got "-1"/],
    [-1, /must not be negative, got -1/],
    [NaN, /NaN/],
    [1.5, /whole number of bytes, got 1.5/],
    ['1.5', /whole number of bytes, got "1.5"/],
    ['10XB', /unknown unit "XB" in "10XB"/],
    ['10 KiBs', /unknown unit "KiBs"/],
    ['abc', /cannot read size "abc"/],
    ['', /empty string/],
    [{}, /got a table/],
    [2 ** 60, /too large/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseSize(input), (err: unknown) => {
      assert.ok(err instanceof UnitError, `${String(input)} should throw UnitError`);
      assert.match(err.message, message);
      return true;
    });
  }
});
