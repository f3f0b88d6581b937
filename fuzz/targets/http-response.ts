/** m2gw's own HTTP/1.1 upstream client: the response parser (src/upstream/http/response-parser.ts). */
import { HttpResponseError, MAX_CHUNK_LINE_BYTES, ResponseParser, type ResponseHead } from '../../src/upstream/http/response-parser.js';
import { bytePieces, FuzzFailure, randomPieces, type FuzzTarget } from '../core.js';
import { rng, type Rng } from '../mutate.js';

interface Decoded {
  readonly summary: string;
  readonly error: HttpResponseError | null;
}

/**
 * Feeds `pieces` as one connection's bytes: a response, then (the parser being reused with
 * start(), as the client does) whatever responses follow it, until a 101 ends parsing; then the
 * connection's close (finish()). Checks the event invariants on the way; the heads, bodies,
 * ends, bytes left over after a 101 and the error, as one string that must not depend on the split.
 */
function decode(pieces: readonly Buffer[], headRequest: boolean, maxHeadBytes?: number): Decoded {
  const out: string[] = [];
  // One object, so the callbacks' assignments are seen by the code after them.
  const m = { head: null as ResponseHead | null, body: [] as Buffer[], bodyBytes: 0, ended: false };
  const flush = (): void => {
    if (m.body.length > 0) out.push(`body:${Buffer.concat(m.body).toString('latin1')}`);
    m.body = [];
  };
  const p = new ResponseParser(
    {
      onHead(h) {
        if (m.head !== null) throw new FuzzFailure('two final heads for one response');
        if (h.status < 100 || h.status > 999 || (h.status < 200 && h.status !== 101)) throw new FuzzFailure(`final head with status ${h.status}`);
        if (headRequest && h.framing !== 'none') throw new FuzzFailure(`framing ${h.framing} for a HEAD request`);
        if (h.framing === 'close' && h.keepAlive) throw new FuzzFailure('close-delimited yet keep-alive');
        for (const [name, value] of h.headers) {
          if (/[\r\n:]/.test(name) || /[\r\n\0]/.test(value)) throw new FuzzFailure(`header ${JSON.stringify([name, value])} passed`);
        }
        m.head = h;
        out.push(`head:${JSON.stringify([h.status, h.reason, h.headers, h.framing, h.contentLength, h.keepAlive, h.keepAliveTimeoutS])}`);
      },
      onBody(chunk) {
        if (m.head === null || m.ended) throw new FuzzFailure('body outside a message');
        if (chunk.length === 0) throw new FuzzFailure('empty body piece');
        if (m.head.framing === 'none') throw new FuzzFailure('body for a message without one');
        m.bodyBytes += chunk.length;
        if (m.head.framing === 'length' && m.bodyBytes > m.head.contentLength) throw new FuzzFailure('more body than Content-Length');
        m.body.push(chunk);
      },
      onEnd() {
        if (m.head === null || m.ended) throw new FuzzFailure('end outside a message');
        if (m.head.framing === 'length' && m.bodyBytes !== m.head.contentLength) throw new FuzzFailure(`${m.bodyBytes} body bytes for Content-Length ${m.head.contentLength}`);
        m.ended = true;
        flush();
        out.push('end');
      },
    },
    maxHeadBytes,
  );
  const next = (): void => {
    m.head = null;
    m.bodyBytes = 0;
    m.ended = false;
    p.start(headRequest);
    if (p.started || p.idle) throw new FuzzFailure('a fresh start() is started or idle');
  };
  next();
  const rest: Buffer[] = [];
  let upgraded = false;
  let error: HttpResponseError | null = null;
  try {
    for (const piece of pieces) {
      let off = 0;
      while (off < piece.length) {
        if (upgraded) {
          rest.push(piece.subarray(off));
          break;
        }
        if (p.idle) next();
        const given = piece.length - off;
        const used = p.feed(off === 0 ? piece : piece.subarray(off));
        if (used <= 0 || used > given) throw new FuzzFailure(`feed used ${used} of ${given} bytes`);
        if (!p.started) throw new FuzzFailure('bytes fed but not started');
        if (used < given && !p.idle) throw new FuzzFailure('bytes left over inside a message');
        off += used;
        if (p.idle) {
          if (m.head === null) throw new FuzzFailure('idle without a head');
          if (m.head.status === 101) upgraded = true;
          else if (!m.ended) throw new FuzzFailure('idle before the end');
        }
      }
    }
    // The connection closes: only a response that has begun is owed an end.
    if (!p.idle && p.started) p.finish();
    if (m.head !== null && m.head.framing === 'close' && !m.ended) throw new FuzzFailure('close-delimited body not ended by finish()');
  } catch (e) {
    if (!(e instanceof HttpResponseError)) throw e;
    error = e;
  }
  flush();
  if (rest.length > 0) out.push(`rest:${Buffer.concat(rest).toString('latin1')}`);
  if (error !== null) out.push(`error:${error.message}`);
  return { summary: out.join('\n'), error };
}

/** Everything the parser reported for one connection's bytes, as one string, so different splits can be compared. */
export function decodeHttpResponse(pieces: readonly Buffer[], headRequest = false, maxHeadBytes?: number): string {
  return decode(pieces, headRequest, maxHeadBytes).summary;
}

const splitRng = rng(17);

const CHUNKED_HEAD = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';

const LAST = ',"b":[1,2,3],"c":"\xe9t\xe9"} ';

function seeds(): Buffer[] {
  return [
    'HTTP/1.1 200 OK\r\nDate: Sun, 29 Nov 2026 10:00:00 GMT\r\nServer: nginx/1.24.0\r\nContent-Type: text/html; charset=utf-8\r\n' +
      'Content-Length: 13\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=100\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\n\r\n<h1>hi</h1>\r\n',
    'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n' +
      `5;ext=1\r\n{"a":\r\nA\r\n0123456789\r\n${LAST.length.toString(16)} ; name="q;v"\r\n${LAST}\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n`,
    'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nETag: "v1"\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 99\r\n\r\n' +
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nLink: </app.js>; rel=preload\r\n\r\n' +
      'HTTP/1.1 201 Created\r\nLocation: /items/7\r\nContent-Length: 2\r\n\r\nok',
    'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Latin1: caf\xe9 \x80\xff\r\n\r\nthe body runs until the connection closes\n\r\n\r\n',
    'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 9\r\n\r\nnot found',
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81\x05hello',
    `HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nx\r\n3\r\nabc\r\n0\r\n\r\n${CHUNKED_HEAD}0\r\n\r\n`,
    'HTTP/1.1 200\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00',
  ].map((s) => Buffer.from(s, 'latin1'));
}

/** Rewrites one Content-Length value or chunk size (a digit run after ': ' or at a line start) to a lie. */
function lyingSize(input: Buffer, r: Rng): Buffer {
  const runs: Array<[number, number]> = [];
  for (let i = 0; i < input.length && runs.length < 64; i++) {
    const prev = i === 0 ? 0x0a : input[i - 1]!;
    if (prev !== 0x0a && prev !== 0x20) continue;
    let j = i;
    while (j < input.length && /[0-9a-fA-F]/.test(String.fromCharCode(input[j]!))) j++;
    if (j > i) runs.push([i, j]);
  }
  if (runs.length === 0) return input;
  const [s, e] = r.pick(runs);
  const lie = r.pick(['0', '1', '2', 'ff', 'FFFFFFFFFFFFF', '10000000000000', '999999999999999', '1000000000000000', '+1', '-1', '0x1', '1, 1', '1, 2', '', ' ']);
  return Buffer.concat([input.subarray(0, s), Buffer.from(lie, 'latin1'), input.subarray(e)]);
}

const FRAMING_LINES = [
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: chunked, chunked\r\n',
  'Transfer-Encoding: gzip\r\n',
  'Content-Length: 3\r\n',
  'Content-Length: 0\r\n',
  'Connection: close\r\n',
  'Connection: keep-alive\r\n',
  'Keep-Alive: timeout=9\r\n',
  ' folded\r\n',
  'X: a\rb\r\n',
  'X: a\nb\r\n',
  '\r\n',
  'HTTP/1.1 100 Continue\r\n\r\n',
  'HTTP/1.1 101 Switching Protocols\r\n\r\n',
  '0\r\n\r\n',
  '5;x\r\nhello\r\n',
  'T: 1\r\n',
];

/** Inserts a framing header, a head or a chunk at a line start. */
function framingLine(input: Buffer, r: Rng): Buffer {
  const starts: number[] = [0];
  for (let i = input.indexOf(0x0a); i !== -1 && starts.length < 256; i = input.indexOf(0x0a, i + 1)) starts.push(i + 1);
  const at = r.pick(starts);
  return Buffer.concat([input.subarray(0, at), Buffer.from(r.pick(FRAMING_LINES), 'latin1'), input.subarray(at)]);
}

function slices(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const times = (n: number, unit: number): number => Math.max(1, Math.floor(n / unit));
/** The scaling shapes' parser: a head limit far above 4 MiB, so the head code itself is measured. */
const SHAPE_MAX_HEAD_BYTES = 64 * 1024 * 1024;

export const httpResponseTarget: FuzzTarget = {
  name: 'http-response',
  seeds,
  run(input) {
    // The same bytes whole, in random pieces and byte by byte must parse the same; once as the
    // answer to a GET, once to a HEAD.
    const whole = decode([input], false);
    const split = decodeHttpResponse(randomPieces(input, splitRng, 1 + splitRng.int(6)));
    if (split !== whole.summary) throw new FuzzFailure(`random split parses differently: ${split.slice(-120)} vs ${whole.summary.slice(-120)}`);
    if (input.length <= 2048 && decodeHttpResponse(bytePieces(input)) !== whole.summary) throw new FuzzFailure('1-byte pieces parse differently');
    // A small head limit: where a head crosses it must not depend on how its bytes arrive.
    const small = decodeHttpResponse([input], false, 128);
    if (decodeHttpResponse(randomPieces(input, splitRng, 1 + splitRng.int(6)), false, 128) !== small) throw new FuzzFailure('random split parses differently (128-byte head limit)');
    const head = decodeHttpResponse([input], true);
    if (decodeHttpResponse(randomPieces(input, splitRng, 1 + splitRng.int(4)), true) !== head) throw new FuzzFailure('random split parses differently (HEAD)');
    if (whole.error !== null) throw whole.error;
  },
  expected: [HttpResponseError],
  budgetMs: 10,
  mutators: [lyingSize, framingLine],
  shapes: [
    { name: 'many short header lines', make: (n) => [latin1(`HTTP/1.1 200 OK\r\n${'X: 1\r\n'.repeat(times(n, 6))}Content-Length: 0\r\n\r\n`)] },
    { name: 'one giant header value in 1-byte pieces', make: (n) => bytePieces(latin1(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(n)}\r\nContent-Length: 0\r\n\r\n`)) },
    { name: 'many 1-byte chunks in 5-byte pieces', make: (n) => slices(latin1(`${CHUNKED_HEAD}${'1\r\nx\r\n'.repeat(times(n, 6))}0\r\n\r\n`), 5) },
    {
      name: 'chunk extensions up to the line limit in 7-byte pieces',
      make: (n) => {
        const ext = Math.min(MAX_CHUNK_LINE_BYTES - 8, n);
        return slices(latin1(`${CHUNKED_HEAD}${`1;${'e'.repeat(ext)}\r\nx\r\n`.repeat(times(n, ext + 8))}0\r\n\r\n`), 7);
      },
    },
    { name: 'many trailer lines in 3-byte pieces', make: (n) => slices(latin1(`${CHUNKED_HEAD}0\r\n${'T: 1\r\n'.repeat(times(n, 6))}\r\n`), 3) },
    {
      name: 'many 100 Continue heads in 7-byte pieces',
      make: (n) => slices(latin1(`${'HTTP/1.1 100 Continue\r\n\r\n'.repeat(times(n, 25))}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n`), 7),
    },
    { name: 'a Content-Length body in 1-byte pieces', make: (n) => bytePieces(latin1(`HTTP/1.1 200 OK\r\nContent-Length: ${n}\r\n\r\n${'b'.repeat(n)}`)) },
    { name: 'many pipelined responses', make: (n) => [latin1('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'.repeat(times(n, 39)))] },
    { name: 'a long Content-Length list', make: (n) => [latin1(`HTTP/1.1 200 OK\r\nContent-Length: ${'0, '.repeat(times(n, 3))}0\r\n\r\n`)] },
    {
      name: 'Keep-Alive: timeout with long runs of spaces',
      make: (n) => [latin1(`HTTP/1.1 200 OK\r\nKeep-Alive: ${'timeout'.concat(' '.repeat(n / 2), '=', ' '.repeat(n / 2), 'x')}\r\nKeep-Alive: ${' timeout'.repeat(times(n, 8))}\r\nContent-Length: 0\r\n\r\n`)],
    },
    { name: 'bare LFs in a head that never ends, in 2-byte pieces', make: (n) => slices(latin1(`HTTP/1.1 200 OK${'\n'.repeat(n)}`), 2) },
  ],
  runShape(input) {
    // The parser alone, reused for each response as the client does; no bookkeeping.
    const p = new ResponseParser({ onHead() {}, onBody() {}, onEnd() {} }, SHAPE_MAX_HEAD_BYTES);
    p.start(false);
    for (const piece of input as Buffer[]) {
      let off = 0;
      while (off < piece.length) {
        if (p.idle) p.start(false);
        off += p.feed(off === 0 ? piece : piece.subarray(off));
      }
    }
    if (!p.idle) p.finish();
  },
};
