/**
 * The object a parsed Mongrel2 header dict (JSON or tnetstring) becomes. Its keys are chosen
 * by clients, so it must inherit nothing: `h['constructor']` or `h['__proto__']` may only ever
 * read what the message said. An `Object.create(null)` object has that property, but V8 keeps
 * it as a hash table (dictionary mode), so every insert and every lookup of a request's ~12
 * headers paid a hash probe (bench/README.md, "where the time goes").
 *
 * Objects made here have the same guarantees and V8's fast layout: their prototype is one
 * frozen object that has no properties and itself no prototype. So nothing is inherited (no
 * `constructor`, no `__proto__` accessor: assigning `__proto__` makes an ordinary own key),
 * and nothing can be added to that prototype to reach every dict (it is frozen).
 */

/** The prototype of every dict: no properties, no prototype, frozen. */
export const DICT_PROTOTYPE: object = Object.freeze(Object.create(null) as object);

// A plain function, not a class: a class's prototype would carry a `constructor` key.
function Dict(): void {}
Dict.prototype = DICT_PROTOTYPE;
const DictCtor = Dict as unknown as new () => Record<string, never>;

/** A new empty dict (see above). */
export function newDict<T>(): Record<string, T> {
  return new DictCtor() as Record<string, T>;
}
