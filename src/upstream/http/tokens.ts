/**
 * The character rules both directions of the HTTP client check (RFC 9110 §5.1, §5.5), and a
 * memo for header names: a server or a client sends the same few names on every message, so a
 * name is tested against its pattern once, not per message.
 */

/** A token (header name, method). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Names longer than this are tested every time: they are rare, and each entry holds its name. */
const MEMO_MAX_LENGTH = 64;

/**
 * A test of `re` (an ASCII-only pattern) that remembers up to 1024 short strings that passed
 * (forgetting all of them past that). Failures are not kept: they end their message anyway.
 */
export function memoizedTest(re: RegExp): (s: string) => boolean {
  const passed = new Set<string>();
  return (s) => {
    if (passed.has(s)) return true;
    if (!re.test(s)) return false;
    if (s.length <= MEMO_MAX_LENGTH) {
      if (passed.size >= 1024) passed.clear();
      // A copy: a name cut out of a response head with slice() is a V8 sliced string, which as
      // a key would keep its whole head (up to 16 KiB) alive. ASCII, so latin1 copies it exactly.
      passed.add(Buffer.from(s, 'latin1').toString('latin1'));
    }
    return true;
  };
}
