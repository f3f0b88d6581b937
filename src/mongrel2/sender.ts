/**
 * What a sender is, on both legs, so the request parser and the reply encoder agree
 * (PROTOCOL.md §1; checked against Mongrel2 1.12 end to end):
 * - Mongrel2 writes its handler's `send_ident` verbatim as the first token of every request.
 *   m2sh takes any string there, so `send_ident = "web_1"` is an operator's valid configuration.
 * - Mongrel2's handler_parser.rl reads a reply's first token as `(alpha | digit | '-')+` and drops
 *   the whole message otherwise ("Failed to parse message from handler", then that handler task
 *   sleeps 100 ms). Apart from the SUB subscription prefix (recv_ident) the token is compared
 *   with nothing.
 * So a request sender is any run of visible bytes, and a reply goes out under the sender with every
 * byte outside `[A-Za-z0-9-]` written as `-` (`web_1` → `web-1`): a token Mongrel2 parses, equal to
 * the sender whenever the sender already was one, and keeping any prefix made of token bytes (a
 * recv_ident must be one: see config/read-sections.ts). Echoing `web_1` as it came would have every
 * reply dropped; refusing it would drop every request.
 */

/** Mongrel2's reply-token grammar (handler_parser.rl `UUID`). */
export const REPLY_TOKEN_RE = /^[A-Za-z0-9-]+$/;

/**
 * A sender as Mongrel2 can send it: non-empty, no space (the space ends it), no control bytes.
 * `s` is a latin1 byte string.
 */
export function isSender(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || c > 0xff) return false;
  }
  return true;
}

function isTokenByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) || c === 0x2d;
}

/** The token a reply to `sender` starts with. Throws TypeError when `sender` is not isSender(). */
export function replyToken(sender: string): string {
  if (REPLY_TOKEN_RE.test(sender)) return sender;
  if (!isSender(sender)) throw new TypeError(`reply sender ${JSON.stringify(sender)} is not a Mongrel2 sender`);
  let out = '';
  for (let i = 0; i < sender.length; i++) {
    const c = sender.charCodeAt(i);
    out += isTokenByte(c) ? sender[i] : '-';
  }
  return out;
}
