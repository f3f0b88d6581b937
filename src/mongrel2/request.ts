/**
 * Mongrel2 → handler request messages (PROTOCOL.md §2–§5):
 *   SENDER SP CONN_ID SP PATH SP HEADERS BODY
 * HEADERS is `LEN:{json},` or a tnetstring dict `LEN:...}`; BODY is the netstring `LEN:bytes,`.
 * The header format is detected per message from the byte after the header data.
 */
import { FrameError } from '../errors.js';
import { parseLenientJson } from './lenient-json.js';
import { parseTNetstring, readLengthPrefix, type Cursor } from './tnetstring.js';

export type HeaderValue = string | string[];

export interface Mongrel2Request {
  readonly sender: string;
  /** Decimal text, as sent. */
  readonly connId: string;
  readonly path: string;
  /** Null-prototype. Client names are lower-case, Mongrel2's own keys upper-case; values are latin1 byte strings. */
  readonly headers: Readonly<Record<string, HeaderValue>>;
  /** A subarray of the message: copy it if the message buffer is reused. */
  readonly body: Buffer;
  readonly protocol: 'json' | 'tnetstring';
}

export type MessageKind =
  | { kind: 'http' }
  | { kind: 'upload-start'; path: string }
  | { kind: 'upload-done'; path: string }
  | { kind: 'upload-mismatch'; start: string; done: string }
  | { kind: 'disconnect' }
  | { kind: 'credits'; credits: number }
  | { kind: 'websocket-handshake' }
  | { kind: 'websocket'; flags: number }
  | { kind: 'upload-stream'; offset: number; done: boolean }
  | { kind: 'control-other'; type: string };

const SPACE = 0x20;
const COMMA = 0x2c;
const RBRACE = 0x7d;
/** Mongrel2 connection ids are C ints; anything longer than this is not one. */
const MAX_CONN_ID_DIGITS = 19;

/** Sender and connection id without parsing headers (for routing messages by connection). Throws FrameError. */
export function peekRoutingKey(msg: Buffer): { sender: string; connId: string } {
  const sp2 = routingEnd(msg);
  const sp1 = msg.indexOf(SPACE);
  return { sender: msg.toString('latin1', 0, sp1), connId: msg.toString('latin1', sp1 + 1, sp2) };
}

/** Validates `SENDER SP DIGITS SP` and returns the index of the second space. */
function routingEnd(msg: Buffer): number {
  const sp1 = msg.indexOf(SPACE);
  if (sp1 === -1) throw new FrameError('request has no space after the sender');
  if (sp1 === 0) throw new FrameError('request has an empty sender');
  // The reply encoder must be able to answer every sender let through here (sender.ts): a sender
  // it refused (sender.ts isSender) used to throw out of the gateway's flush and kill the worker.
  for (let i = 0; i < sp1; i++) {
    const c = msg[i]!;
    if (c < 0x20 || c === 0x7f) throw new FrameError(`request sender has control byte 0x${c.toString(16)} at offset ${i}`);
  }
  const idStart = sp1 + 1;
  let p = idStart;
  const len = msg.length;
  while (p < len) {
    const c = msg[p]!;
    if (c === SPACE) break;
    if (c < 0x30 || c > 0x39) throw new FrameError(`connection id has a non-digit at offset ${p}`);
    p++;
  }
  if (p >= len) throw new FrameError('request ends inside the connection id');
  if (p === idStart) throw new FrameError('request has an empty connection id');
  if (p - idStart > MAX_CONN_ID_DIGITS) throw new FrameError('connection id is too long');
  return p;
}

/**
 * Mongrel2's credits message, in the one form 1.12 writes it for a JSON handler:
 *   SENDER SP CONN_ID SP "@*" SP LEN:{"METHOD":"JSON","DOWNLOAD_CREDITS":"N"},18:{"type":"credits"},
 * With download.flow_control on, one arrives for every write Mongrel2 makes to a client
 * (about ten per 1 MiB response), so it is recognised byte for byte here instead of being
 * parsed as a request: the gateway's cost per credits message drops from a full parse
 * (two JSON documents) to a comparison.
 *
 * Returns null for anything else, including every variation of this form that the general
 * path would also accept (other key order, spaces, tnetstring): those take parseRequest and
 * classify, which then give the same answer. Never throws: a malformed message is null too,
 * and the general path reports it. The result is exactly what parseRequest + classify give
 * (a unit test and the fuzz target `credits-fast-path` hold it to that).
 */
export function peekCredits(msg: Buffer): { connId: string; credits: number } | null {
  const len = msg.length;
  // The shortest possible form: "s 1 @* 44:{...1...},18:{...},".
  if (len < CREDITS_HEAD.length + CREDITS_TAIL.length + 10) return null;
  // Cheapest rejection first: every credits message ends with the same 22 bytes.
  if (!bytesAt(msg, len - CREDITS_TAIL.length, CREDITS_TAIL)) return null;
  let sp2: number;
  try {
    sp2 = routingEnd(msg);
  } catch {
    return null;
  }
  let p = sp2 + 1;
  if (msg[p] !== 0x40 || msg[p + 1] !== 0x2a || msg[p + 2] !== SPACE) return null; // "@* "
  p += 3;
  // The header netstring's length: 1-3 digits, no leading zero.
  const lenStart = p;
  let hlen = 0;
  while (p < len && p - lenStart < 4) {
    const c = msg[p]!;
    if (c < 0x30 || c > 0x39) break;
    hlen = hlen * 10 + (c - 0x30);
    p++;
  }
  if (p === lenStart || p - lenStart > 3 || (msg[lenStart] === 0x30 && p - lenStart > 1) || msg[p] !== 0x3a) return null;
  p++;
  const hstart = p;
  if (!bytesAt(msg, p, CREDITS_HEAD)) return null;
  p += CREDITS_HEAD.length;
  const digitsStart = p;
  let credits = 0;
  while (p < len) {
    const c = msg[p]!;
    if (c < 0x30 || c > 0x39) break;
    credits = credits * 10 + (c - 0x30);
    p++;
  }
  const digits = p - digitsStart;
  // DIGITS_RE's bound (1 to 15 digits), so the number is the same one Number() would give.
  if (digits < 1 || digits > 15) return null;
  if (msg[p] !== 0x22 || msg[p + 1] !== 0x7d) return null; // "}
  p += 2;
  if (p - hstart !== hlen || p + CREDITS_TAIL.length !== len) return null;
  return { connId: msg.toString('latin1', msg.indexOf(SPACE) + 1, sp2), credits };
}

/**
 * `bytes` is at msg[at…]. A loop, not subarray().equals(): these are a few dozen bytes, and
 * a view plus a call into C++ cost more than comparing them (twice per request: once for the
 * request itself, once for the credits message that follows its reply).
 */
function bytesAt(msg: Buffer, at: number, bytes: Buffer): boolean {
  if (at < 0 || at + bytes.length > msg.length) return false;
  for (let i = bytes.length - 1; i >= 0; i--) if (msg[at + i] !== bytes[i]) return false;
  return true;
}

const CREDITS_HEAD = Buffer.from('{"METHOD":"JSON","DOWNLOAD_CREDITS":"', 'latin1');
const CREDITS_TAIL = Buffer.from(',18:{"type":"credits"},', 'latin1');

export function parseRequest(msg: Buffer): Mongrel2Request {
  const sp2 = routingEnd(msg);
  const sp1 = msg.indexOf(SPACE);
  const sp3 = msg.indexOf(SPACE, sp2 + 1);
  if (sp3 === -1) throw new FrameError('request has no space after the path');
  if (sp3 === sp2 + 1) throw new FrameError('request has an empty path');

  const len = msg.length;
  const cur: Cursor = { buf: msg, pos: sp3 + 1, end: len };
  const headersAt = cur.pos;
  const hlen = readLengthPrefix(cur);
  const hstart = cur.pos;
  const htag = hstart + hlen;
  if (htag >= len) throw new FrameError(`headers claim ${hlen} byte(s), past the end of the message`);

  let headers: Record<string, HeaderValue>;
  let protocol: Mongrel2Request['protocol'];
  const tag = msg[htag];
  if (tag === COMMA) {
    protocol = 'json';
    headers = checkHeaders(parseLenientJson(msg, hstart, htag), 'JSON');
  } else if (tag === RBRACE) {
    protocol = 'tnetstring';
    headers = checkHeaders(parseTNetstring(msg, headersAt, { end: htag + 1 }).value, 'tnetstring');
  } else {
    throw new FrameError(`headers end in byte 0x${tag!.toString(16)}, neither ',' (JSON) nor '}' (tnetstring)`);
  }
  checkGeneratedValues(headers);

  cur.pos = htag + 1;
  const blen = readLengthPrefix(cur);
  const bstart = cur.pos;
  const bend = bstart + blen;
  if (bend >= len) throw new FrameError(`body claims ${blen} byte(s), past the end of the message`);
  if (msg[bend] !== COMMA) throw new FrameError(`body netstring is not terminated by ',' at offset ${bend}`);
  if (bend + 1 !== len) throw new FrameError(`${len - bend - 1} trailing byte(s) after the body`);

  return {
    sender: msg.toString('latin1', 0, sp1),
    connId: msg.toString('latin1', sp1 + 1, sp2),
    path: msg.toString('latin1', sp2 + 1, sp3),
    headers,
    body: msg.subarray(bstart, bend),
    protocol,
  };
}

/** Every header must be a string or a list of strings; the object is already null-prototype. */
function checkHeaders(v: unknown, format: string): Record<string, HeaderValue> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new FrameError(`${format} headers are not an object`);
  }
  const h = v as Record<string, unknown>;
  const keys = Object.keys(h);
  for (let i = 0; i < keys.length; i++) {
    const value = h[keys[i]!];
    if (typeof value === 'string' || isStringList(value)) continue;
    throw new FrameError(`${format} header ${JSON.stringify(keys[i])} is neither a string nor a list of strings`);
  }
  return h as Record<string, HeaderValue>;
}

function isStringList(v: unknown): boolean {
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'string') return false;
  return true;
}

const DIGITS_RE = /^\d{1,15}$/;
const FLAGS_RE = /^0x[0-9a-fA-F]{1,2}$/;

/**
 * The values classify() turns into numbers are Mongrel2-generated (clients' names are lower-cased,
 * so they cannot supply them); checking them here lets classify stay total and simple.
 */
function checkGeneratedValues(h: Record<string, HeaderValue>): void {
  checkValue(h, 'UPLOAD_STREAM', DIGITS_RE);
  checkValue(h, 'DOWNLOAD_CREDITS', DIGITS_RE);
  checkValue(h, 'FLAGS', FLAGS_RE);
}

function checkValue(h: Record<string, HeaderValue>, name: string, re: RegExp): void {
  const v = h[name];
  if (v !== undefined && (typeof v !== 'string' || !re.test(v))) {
    throw new FrameError(`bad ${name} value ${JSON.stringify(v)}`);
  }
}

/** First value of an exact (case-sensitive) key; undefined if absent or an empty list. */
export function headerFirst(h: Readonly<Record<string, HeaderValue>>, name: string): string | undefined {
  const v = h[name];
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v[0];
  return undefined;
}

/**
 * What the gateway must do with a request. Order matters: UPLOAD_STREAM follow-ups carry no METHOD,
 * and the first stream message is still a normal request that also carries UPLOAD_STREAM "0".
 * Malformed numbers (impossible after parseRequest) come back as -1 instead of throwing.
 * Upload kinds only report the headers: clients can forge them, see uploadPathMatches.
 */
export function classify(req: Mongrel2Request): MessageKind {
  const h = req.headers;
  const stream = headerFirst(h, 'UPLOAD_STREAM');
  if (stream !== undefined) {
    return { kind: 'upload-stream', offset: decimalOr(stream, -1), done: headerFirst(h, 'UPLOAD_STREAM_DONE') !== undefined };
  }
  const method = headerFirst(h, 'METHOD');
  if (method === 'JSON') return classifyControl(req);
  if (method === 'WEBSOCKET_HANDSHAKE') return { kind: 'websocket-handshake' };
  if (method === 'WEBSOCKET') {
    const flags = headerFirst(h, 'FLAGS');
    return { kind: 'websocket', flags: flags !== undefined && FLAGS_RE.test(flags) ? parseInt(flags.slice(2), 16) : -1 };
  }
  const start = headerFirst(h, 'x-mongrel2-upload-start');
  const done = headerFirst(h, 'x-mongrel2-upload-done');
  if (done !== undefined) {
    if (start === done) return { kind: 'upload-done', path: done };
    return { kind: 'upload-mismatch', start: start ?? '', done };
  }
  if (start !== undefined) return { kind: 'upload-start', path: start };
  return { kind: 'http' };
}

const CONTROL_PATH = '@*';

function classifyControl(req: Mongrel2Request): MessageKind {
  let body: unknown;
  try {
    body = parseLenientJson(req.body);
  } catch {
    return { kind: 'control-other', type: '' };
  }
  const type = isRecord(body) && typeof body.type === 'string' ? body.type : '';
  // Mongrel2's own control messages always use the path "@*"; METHOD JSON on any other path is a
  // client's JSON-socket message, whose body the client wrote: never let it fake a disconnect.
  if (req.path !== CONTROL_PATH) return { kind: 'control-other', type };
  if (type === 'disconnect') return { kind: 'disconnect' };
  if (type === 'credits') {
    // Mongrel2 1.12 puts the count in the DOWNLOAD_CREDITS header; accept it in the body too.
    const header = headerFirst(req.headers, 'DOWNLOAD_CREDITS');
    let credits = header !== undefined ? decimalOr(header, -1) : -1;
    if (credits < 0 && isRecord(body)) {
      const b = body.credits;
      if (typeof b === 'number' && Number.isSafeInteger(b) && b >= 0) credits = b;
      else if (typeof b === 'string') credits = decimalOr(b, -1);
    }
    if (credits >= 0) return { kind: 'credits', credits };
  }
  return { kind: 'control-other', type };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decimalOr(s: string, fallback: number): number {
  return DIGITS_RE.test(s) ? Number(s) : fallback;
}

const MKSTEMP_SUFFIX_RE = /^[A-Za-z0-9]{6}$/;

/**
 * Whether an x-mongrel2-upload-* path could have come from mkstemp(`template`) (upload.temp_store,
 * chroot-relative, ending in XXXXXX). The check matters: Mongrel2 passes client headers through,
 * so on a request that is *not* an upload a client can send its own
 * `X-Mongrel2-Upload-Start/-Done: /etc/passwd`, and classify() will report 'upload-done'.
 * The gateway must check the path with this (and expect a start before a done) before opening
 * or deleting anything.
 */
export function uploadPathMatches(template: string, path: string): boolean {
  if (!template.endsWith('XXXXXX') || path.length !== template.length) return false;
  const prefixLen = template.length - 6;
  return path.startsWith(template.slice(0, prefixLen)) && MKSTEMP_SUFFIX_RE.test(path.slice(prefixLen));
}
