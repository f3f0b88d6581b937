/**
 * The header-name memo (src/upstream/http/tokens.ts) is bounded in bytes, not only in entries:
 * what it keeps is measured after a full collection while the memo is still in use.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { memoizedTest, TOKEN } from '../../../src/upstream/http/tokens.js';
import { retainedMiB } from '../../integration/hostile-support.js';

test('memoizedTest answers like its pattern, remembered or not', () => {
  const valid = memoizedTest(TOKEN);
  for (let round = 0; round < 2; round++) {
    assert.equal(valid('Content-Type'), true);
    assert.equal(valid('x'.repeat(100)), true);
    assert.equal(valid('Bad Name'), false);
    assert.equal(valid('ä'), false);
    assert.equal(valid(''), false);
  }
});

/** MiB still held, after a full collection, by a memo that was given 1000 names (all tokens). */
function heldByMemo(name: (i: number) => string): number {
  const valid = memoizedTest(TOKEN);
  const before = retainedMiB();
  for (let i = 0; i < 1000; i++) assert.equal(valid(name(i)), true);
  const held = retainedMiB() - before;
  assert.equal(valid(name(999)), true);
  return held;
}

test('memoizedTest keeps neither long names nor the heads short names were cut from', () => {
  // Kept whole, either is ~16 MiB; 1000 short names themselves are a few KiB.
  const long = heldByMemo((i) => `${'n'.repeat(16 * 1024)}${i}`);
  assert.ok(long < 4, `16 KiB names: the memo holds ${long} MiB`);
  // A name sliced out of a 16 KiB head, as response-head.ts hands it to the memo.
  const sliced = heldByMemo((i) => {
    const head = `X-Unique-Name-${String(i).padStart(6, '0')}: ${'v'.repeat(16 * 1024)}`;
    return head.slice(0, head.indexOf(':'));
  });
  assert.ok(sliced < 4, `names sliced from 16 KiB heads: the memo holds ${sliced} MiB`);
});
