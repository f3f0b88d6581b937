/** Small shared helpers for the mongrel2 codec tests. */
import assert from 'node:assert/strict';
import { FrameError } from '../../../src/errors.js';
import { DICT_PROTOTYPE, newDict } from '../../../src/mongrel2/dict.js';

/** A copy made the way the parsers make their dicts (src/mongrel2/dict.ts), to compare with what they return. */
export function dict<T>(o: Record<string, T>): Record<string, T> {
  return Object.assign(newDict<T>(), o);
}

/** The parsers' dicts inherit nothing: their prototype is DICT_PROTOTYPE, empty, frozen, with no prototype. */
export function assertInheritsNothing(v: unknown, what = 'dict'): void {
  assert.equal(Object.getPrototypeOf(v), DICT_PROTOTYPE, `${what}: the dict prototype`);
  assert.equal(Object.getPrototypeOf(DICT_PROTOTYPE), null, `${what}: the prototype has no prototype`);
  assert.deepEqual(Reflect.ownKeys(DICT_PROTOTYPE), [], `${what}: the prototype has no properties`);
  assert.ok(Object.isFrozen(DICT_PROTOTYPE), `${what}: the prototype is frozen`);
}

/** Asserts that fn throws a FrameError (and nothing else). */
export function throwsFrame(fn: () => unknown, msg?: string): void {
  assert.throws(fn, (e: unknown) => e instanceof FrameError, msg);
}

/**
 * Runs fn; anything other than returning or throwing FrameError fails the test,
 * with the input that caused it in the message.
 */
export function onlyFrameErrors(fn: () => unknown, what: string): 'ok' | 'frame-error' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof FrameError) return 'frame-error';
    assert.fail(`${what}: threw ${String(e)} instead of FrameError`);
  }
}

/** Deterministic PRNG (mulberry32) so fuzz failures reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
