/**
 * The character rules both directions of the HTTP client check (RFC 9110 §5.1, §5.5), and a
 * memo for header names: a server or a client sends the same few names on every message, so a
 * name is tested against its pattern once, not per message.
 */

/** A token (header name, method). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A test of `re` that remembers up to 1024 strings' answers (forgetting all of them past that). */
export function memoizedTest(re: RegExp): (s: string) => boolean {
  const seen = new Map<string, boolean>();
  return (s) => {
    let ok = seen.get(s);
    if (ok === undefined) {
      ok = re.test(s);
      if (seen.size >= 1024) seen.clear();
      seen.set(s, ok);
    }
    return ok;
  };
}
