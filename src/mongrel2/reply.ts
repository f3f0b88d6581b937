/**
 * Handler → Mongrel2 reply messages (PROTOCOL.md §6):
 *   SENDER SP LEN:ID[ ID...], SP PAYLOAD          normal: payload written verbatim to each client
 *   SENDER SP LEN:ID..., SP                      empty payload: close after queued writes
 *   SENDER SP LEN:X ID..., SP TNETSTRING         extended: ["ctl", {...}]
 * Mongrel2's handler_parser.rl drops the whole message if the sender is not [A-Za-z0-9-]+, the
 * length is off, or there are more than limits.handler_targets ids; so we never build those: the
 * sender goes out as its reply token (sender.ts), and ids are checked.
 */
import { FrameError } from '../errors.js';
import { REPLY_TOKEN_RE, replyToken } from './sender.js';
import { encodeTNetstring, readLengthPrefix, type Cursor, type TNetValue } from './tnetstring.js';

/** Mongrel2's default limits.handler_targets. */
export const MAX_TARGETS = 128;

const CONN_ID_RE = /^\d{1,19}$/;
// eslint-disable-next-line no-control-regex
const NON_LATIN1 = /[^\u0000-\u00ff]/;

/**
 * `TOKEN LEN:[X ]ids, ` as a latin1 (here: ASCII) string. Throws TypeError/RangeError, never for a
 * sender or id that parseRequest returned.
 */
function replyHeader(sender: string, connIds: readonly string[], extended: boolean): string {
  const token = replyToken(sender);
  const n = connIds.length;
  if (n === 0) throw new RangeError('a reply needs at least one connection id');
  if (n > MAX_TARGETS) throw new RangeError(`${n} connection ids in one reply, Mongrel2 accepts at most ${MAX_TARGETS}`);
  let ids = extended ? 'X ' : '';
  for (let i = 0; i < n; i++) {
    const id = connIds[i]!;
    if (!CONN_ID_RE.test(id)) throw new TypeError(`connection id ${JSON.stringify(id)} is not a decimal number`);
    ids += i === 0 ? id : ' ' + id;
  }
  return token + ' ' + ids.length + ':' + ids + ', ';
}

/**
 * One reply message. A string payload is a byte string (chars <= U+00FF, written as latin1,
 * TypeError otherwise); pass a Buffer for UTF-8 text. An empty payload is the close message.
 */
export function encodeReply(sender: string, connIds: readonly string[], payload: Buffer | string): Buffer {
  const head = replyHeader(sender, connIds, false);
  const hlen = head.length;
  if (typeof payload === 'string') {
    if (NON_LATIN1.test(payload)) throw new TypeError('reply payload string holds a char above U+00FF; pass a Buffer');
    const out = Buffer.allocUnsafe(hlen + payload.length);
    out.write(head, 0, hlen, 'latin1');
    out.write(payload, hlen, payload.length, 'latin1');
    return out;
  }
  const out = Buffer.allocUnsafe(hlen + payload.length);
  out.write(head, 0, hlen, 'latin1');
  payload.copy(out, hlen);
  return out;
}

/** The header as its own Buffer followed by the payload Buffers unchanged, for multipart/iovec sends. */
export function encodeReplyParts(sender: string, connIds: readonly string[], payload: readonly Buffer[]): Buffer[] {
  const parts: Buffer[] = [Buffer.from(replyHeader(sender, connIds, false), 'latin1')];
  for (const p of payload) parts.push(p);
  return parts;
}

/** The close message: Mongrel2 closes each connection after writing what was queued before it. */
export function encodeClose(sender: string, connIds: readonly string[]): Buffer {
  return Buffer.from(replyHeader(sender, connIds, false), 'latin1');
}

/** Extended reply `["ctl", args]`, e.g. `{ credits: 65536 }` for streamed uploads. */
export function encodeCtl(sender: string, connIds: readonly string[], args: Record<string, TNetValue>): Buffer {
  const head = Buffer.from(replyHeader(sender, connIds, true), 'latin1');
  return Buffer.concat([head, encodeTNetstring(['ctl', args])]);
}

/**
 * Parses a reply the way Mongrel2 does (for tests and fake Mongrel2s). Ids may be followed by a
 * trailing space as in handler_parser.rl. Throws FrameError for anything Mongrel2 would drop.
 */
export function parseReply(msg: Buffer): { sender: string; connIds: string[]; extended: boolean; payload: Buffer } {
  const sp = msg.indexOf(0x20);
  if (sp <= 0) throw new FrameError('reply has no sender');
  const sender = msg.toString('latin1', 0, sp);
  if (!REPLY_TOKEN_RE.test(sender)) throw new FrameError(`reply sender ${JSON.stringify(sender)} is not [A-Za-z0-9-]+`);
  const cur: Cursor = { buf: msg, pos: sp + 1, end: msg.length };
  const len = readLengthPrefix(cur);
  const start = cur.pos;
  const comma = start + len;
  if (comma >= msg.length || msg[comma] !== 0x2c) throw new FrameError('reply id netstring length is wrong');
  if (msg[comma + 1] !== 0x20) throw new FrameError("reply id netstring is not followed by ' '");
  let text = msg.toString('latin1', start, comma);
  const extended = text.startsWith('X ');
  if (extended) text = text.slice(2);
  if (text.endsWith(' ')) text = text.slice(0, -1);
  const connIds = text.split(' ');
  for (const id of connIds) {
    if (!CONN_ID_RE.test(id)) throw new FrameError(`reply connection id ${JSON.stringify(id)} is not a decimal number`);
  }
  if (connIds.length > MAX_TARGETS) throw new FrameError(`reply has ${connIds.length} ids, more than ${MAX_TARGETS}`);
  return { sender, connIds, extended, payload: msg.subarray(comma + 2) };
}
