/** Mongrel2 codecs: tnetstrings, the lenient JSON of request headers, request messages. */
import { FrameError } from '../../src/errors.js';
import { parseLenientJson } from '../../src/mongrel2/lenient-json.js';
import { encodeReply, parseReply } from '../../src/mongrel2/reply.js';
import { classify, parseRequest, peekCredits, peekRoutingKey } from '../../src/mongrel2/request.js';
import { encodeTNetstring, parseTNetstring } from '../../src/mongrel2/tnetstring.js';
import { FuzzFailure, type FuzzTarget } from '../core.js';
import type { Rng } from '../mutate.js';
import { mongrel2Requests } from '../fixtures.js';

const SP = 0x20;

/** The header part (tnetstring dict or JSON netstring payload) of a request fixture. */
function headerPart(msg: Buffer): Buffer {
  let sp = -1;
  for (let k = 0; k < 3; k++) sp = msg.indexOf(SP, sp + 1);
  const colon = msg.indexOf(0x3a, sp);
  const len = Number(msg.toString('latin1', sp + 1, colon));
  return msg.subarray(sp + 1, colon + 1 + len + 1);
}

const tnetNest = (input: Buffer, r: Rng): Buffer => {
  let v = input;
  for (let d = r.pick([2, 63, 64, 65, 100]); d > 0; d--) v = Buffer.concat([Buffer.from(`${v.length}:`), v, Buffer.from(']')]);
  return v;
};

export const tnetstringTarget: FuzzTarget = {
  name: 'tnetstring',
  seeds: () => [
    ...mongrel2Requests('tnet').map(headerPart),
    encodeTNetstring(['ctl', { credits: 65536 }]),
    encodeTNetstring({ a: [1, 2.5, true, null, 'x', Buffer.from([0, 255])], b: { c: {} } }),
  ],
  run(input) {
    parseTNetstring(input);
    parseTNetstring(input, 0, { buffers: true });
  },
  expected: [FrameError],
  mutators: [tnetNest],
  shapes: [
    { name: 'list of 1-byte strings', make: (n) => tnetList('1:a,'.repeat(n / 4)) },
    { name: 'one long string', make: (n) => Buffer.from(`${n}:${'x'.repeat(n)},`) },
    { name: 'dict of many keys', make: (n) => tnetDict(n) },
    { name: 'list of max-depth nests', make: (n) => tnetList(nested64().toString('latin1').repeat(Math.max(1, Math.floor(n / nested64().length)))) },
  ],
};

function tnetList(body: string): Buffer {
  return Buffer.from(`${body.length}:${body}]`, 'latin1');
}

function tnetDict(n: number): Buffer {
  let body = '';
  for (let i = 0; body.length < n; i++) {
    const k = `k${i}`;
    body += `${k.length}:${k},1:v,`;
  }
  return Buffer.from(`${body.length}:${body}}`, 'latin1');
}

let nest64: Buffer | null = null;
function nested64(): Buffer {
  if (nest64 === null) {
    let v = Buffer.from('0:]');
    for (let d = 1; d < 64; d++) v = Buffer.concat([Buffer.from(`${v.length}:`), v, Buffer.from(']')]);
    nest64 = v;
  }
  return nest64;
}

/** What every parsed request must allow: classify never throws, and the request can be answered. */
function checkRequest(msg: Buffer): void {
  let req;
  try {
    req = parseRequest(msg);
  } catch (e) {
    // peekRoutingKey may accept what parseRequest refuses (it reads only the routing key), never the reverse.
    if (e instanceof FrameError) peekIfPossible(msg);
    throw e;
  }
  const key = peekRoutingKey(msg);
  if (key.sender !== req.sender || key.connId !== req.connId) throw new FuzzFailure('peekRoutingKey disagrees with parseRequest');
  classify(req);
  // The codecs agree: every sender and connection id parsed can be answered, and Mongrel2 would take the reply.
  const reply = parseReply(encodeReply(req.sender, [req.connId], 'x'));
  if (reply.connIds[0] !== req.connId) throw new FuzzFailure('reply carries another connection id');
}

function peekIfPossible(msg: Buffer): void {
  try {
    peekRoutingKey(msg);
  } catch (e) {
    if (!(e instanceof FrameError)) throw e;
  }
}

const jsonNest = (input: Buffer, r: Rng): Buffer => {
  const d = r.pick([63, 64, 65, 1000]);
  const inner = '{"a":'.repeat(d) + '1' + '}'.repeat(d);
  return Buffer.from(input.toString('latin1').replace(/\{"PATH"/, `{"x":${inner},"PATH"`), 'latin1');
};

function jsonRequest(headers: string, body = ''): Buffer {
  return Buffer.from(`sender-1 7 /p ${headers.length}:${headers},${body.length}:${body},`, 'latin1');
}

export const requestJsonTarget: FuzzTarget = {
  name: 'mongrel2-request-json',
  seeds: () => mongrel2Requests('json'),
  run: checkRequest,
  expected: [FrameError],
  mutators: [jsonNest],
  shapes: [
    { name: 'many headers', make: (n) => jsonRequest(manyJsonHeaders(n)) },
    { name: 'lone \\ud800 escapes', make: (n) => jsonRequest(`{"METHOD":"GET","x":"${'\\ud800'.repeat(Math.floor(n / 6))}"}`) },
    { name: 'escaped quotes and backslashes', make: (n) => jsonRequest(`{"METHOD":"GET","x":"${'\\"\\\\'.repeat(Math.floor(n / 4))}"}`) },
    { name: 'long body', make: (n) => jsonRequest('{"METHOD":"POST"}', 'b'.repeat(n)) },
    { name: 'unterminated strings', make: (n) => jsonRequest(`{"METHOD":"GET","x":"${'a'.repeat(n)}`) },
  ],
};

function manyJsonHeaders(n: number): string {
  const parts: string[] = ['"METHOD":"GET"'];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const p = `"x-h${i}":"v${i}"`;
    parts.push(p);
    len += p.length + 1;
  }
  return `{${parts.join(',')}}`;
}

export const requestTnetTarget: FuzzTarget = {
  name: 'mongrel2-request-tnet',
  seeds: () => mongrel2Requests('tnet'),
  run: checkRequest,
  expected: [FrameError],
  mutators: [tnetNest],
  shapes: [
    {
      name: 'many headers',
      make: (n) => {
        const h = tnetDict(n);
        return Buffer.concat([Buffer.from('sender-1 7 /p '), h, Buffer.from('0:,')]);
      },
    },
  ],
};

export const lenientJsonTarget: FuzzTarget = {
  name: 'lenient-json',
  seeds: () => mongrel2Requests('json').map((m) => {
    const h = headerPart(m);
    return h.subarray(h.indexOf(0x3a) + 1, h.length - 1);
  }),
  run(input) {
    parseLenientJson(input);
  },
  expected: [FrameError],
  mutators: [jsonNest],
  shapes: [
    { name: 'array of numbers', make: (n) => Buffer.from(`[${'1,'.repeat(Math.floor(n / 2))}1]`) },
    { name: 'long number', make: (n) => Buffer.from('1'.repeat(n)) },
    { name: 'many whitespace', make: (n) => Buffer.from(`[${' '.repeat(n)}1]`) },
    { name: 'string of \\u escapes', make: (n) => Buffer.from(`"${'\\u00e9'.repeat(Math.floor(n / 6))}"`) },
  ],
};

/**
 * The gateway's credits fast path against the general path: whatever peekCredits accepts,
 * parseRequest + classify must accept as the same credits for the same connection.
 */
function checkCreditsFastPath(msg: Buffer): void {
  const fast = peekCredits(msg);
  if (fast === null) return;
  let req;
  try {
    req = parseRequest(msg);
  } catch (e) {
    throw new FuzzFailure(`peekCredits accepted what parseRequest refuses: ${String(e)}`);
  }
  const kind = classify(req);
  if (kind.kind !== 'credits' || kind.credits !== fast.credits || req.connId !== fast.connId) {
    throw new FuzzFailure(`peekCredits says ${JSON.stringify(fast)}, the general path ${JSON.stringify({ connId: req.connId, kind })}`);
  }
}

function creditsMessage(credits: string, connId = '7', sender = '0b9a6b7e-6c35-4b6c-9a3c-000000000001'): Buffer {
  const h = `{"METHOD":"JSON","DOWNLOAD_CREDITS":"${credits}"}`;
  return Buffer.from(`${sender} ${connId} @* ${h.length}:${h},18:{"type":"credits"},`, 'latin1');
}

export const creditsFastPathTarget: FuzzTarget = {
  name: 'credits-fast-path',
  seeds: () => [creditsMessage('116'), creditsMessage('102400', '123456'), creditsMessage('0'), ...mongrel2Requests('json').slice(0, 4)],
  run: checkCreditsFastPath,
  expected: [],
  shapes: [
    { name: 'long sender', make: (n) => creditsMessage('1', '7', 's'.repeat(n)) },
    { name: 'long credits digits', make: (n) => creditsMessage('9'.repeat(n)) },
    { name: 'long connection id', make: (n) => creditsMessage('1', '1'.repeat(n)) },
  ],
};
