import assert from 'node:assert/strict';
import { test } from 'node:test';
import { everySplit } from '../../../fuzz/core.js';
import {
  DEFAULT_MAX_HEAD_BYTES,
  HttpResponseError,
  MAX_CHUNK_LINE_BYTES,
  ResponseParser,
  type ResponseHead,
} from '../../../src/upstream/http/response-parser.js';

/** CPU time of this process in ms: a loaded machine's waits do not count against the parser. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A parser whose events are recorded. */
function recorder(maxHeadBytes?: number) {
  const r = {
    heads: [] as ResponseHead[],
    bodies: [] as Buffer[],
    ends: 0,
    parser: null as unknown as ResponseParser,
    body: (): string => Buffer.concat(r.bodies).toString('latin1'),
  };
  r.parser = new ResponseParser(
    {
      onHead: (h) => r.heads.push(h),
      onBody: (chunk) => {
        assert.ok(chunk.length > 0, 'onBody is never empty');
        r.bodies.push(chunk);
      },
      onEnd: () => r.ends++,
    },
    maxHeadBytes,
  );
  return r;
}

interface Parsed {
  head: ResponseHead;
  body: string;
  ended: boolean;
  /** Bytes feed() used of the input. */
  used: number;
}

/** One response: start(headRequest), one feed() of the whole input, then finish() if asked. */
function parse(input: string | Buffer, opts: { head?: boolean; finish?: boolean; max?: number } = {}): Parsed {
  const r = recorder(opts.max);
  r.parser.start(opts.head ?? false);
  const used = r.parser.feed(typeof input === 'string' ? b(input) : input);
  if (opts.finish) r.parser.finish();
  assert.equal(r.heads.length, 1, 'one final head');
  assert.ok(r.ends <= 1);
  return { head: r.heads[0]!, body: r.body(), ended: r.ends === 1, used };
}

/** The input is refused (on feed, or on finish when `finish`) with an HttpResponseError matching `re`. */
function refused(input: string | Buffer, re?: RegExp, opts: { head?: boolean; finish?: boolean; max?: number } = {}): void {
  const r = recorder(opts.max);
  r.parser.start(opts.head ?? false);
  assert.throws(
    () => {
      r.parser.feed(typeof input === 'string' ? b(input) : input);
      if (opts.finish) r.parser.finish();
    },
    (e: unknown) => e instanceof HttpResponseError && (re === undefined || re.test(e.message)),
    JSON.stringify(typeof input === 'string' ? input.slice(0, 200) : input.subarray(0, 200).toString('latin1')),
  );
}

const OK = 'HTTP/1.1 200 OK\r\n';
const CL0 = 'Content-Length: 0\r\n';
const CHUNKED = `${OK}Transfer-Encoding: chunked\r\n\r\n`;

// ---------------------------------------------------------------- status line

test('status line: with and without a reason, HTTP/1.0 and 1.1', () => {
  const cases: Array<[string, number, string]> = [
    ['HTTP/1.1 200 OK', 200, 'OK'],
    ['HTTP/1.1 404 Not Found', 404, 'Not Found'],
    ['HTTP/1.1 200 ', 200, ''],
    ['HTTP/1.1 200', 200, ''],
    ['HTTP/1.1 200  two spaces', 200, ' two spaces'],
    ['HTTP/1.1 500 a\tb \xe9\x80\xff', 500, 'a\tb \xe9\x80\xff'],
    ['HTTP/1.0 302 Found', 302, 'Found'],
    ['HTTP/1.1 299 odd', 299, 'odd'],
    ['HTTP/1.1 999 Three Digits', 999, 'Three Digits'],
    ['HTTP/1.1 600 ', 600, ''],
  ];
  for (const [line, status, reason] of cases) {
    const { head } = parse(`${line}\r\n${CL0}\r\n`);
    assert.equal(head.status, status, line);
    assert.equal(head.reason, reason, line);
  }
});

test('status line: malformed ones are refused', () => {
  const bad = [
    'HTTP/2 200 OK',
    'HTTP/2.0 200 OK',
    'HTTP/1.2 200 OK',
    'HTTP/1.9 200 OK',
    'HTTP/0.9 200 OK',
    'HTTP/1.11 200 OK',
    'HTTP/1 200 OK',
    'http/1.1 200 OK',
    'HTTPS/1.1 200 OK',
    'ICY 200 OK',
    ' HTTP/1.1 200 OK',
    'HTTP/1.1  200 OK',
    'HTTP/1.1\t200 OK',
    'HTTP/1.1 20 OK',
    'HTTP/1.1 20',
    'HTTP/1.1 2000 OK',
    'HTTP/1.1 2000',
    'HTTP/1.1 099 Low',
    'HTTP/1.1 000',
    'HTTP/1.1 2x0 OK',
    'HTTP/1.1 20x OK',
    'HTTP/1.1 -20 OK',
    'HTTP/1.1 +20 OK',
    'HTTP/1.1 200\tOK',
    'HTTP/1.1 200x',
    'HTTP/1.1',
    '',
    'garbage',
  ];
  for (const line of bad) refused(`${line}\r\n${CL0}\r\n`, /status line/);
});

test('status line: control characters, a bare CR or a bare LF in the reason are refused', () => {
  for (const reason of ['O\x00K', 'O\x01K', 'O\x1fK', 'O\x7fK', 'O\rK', 'O\x0bK']) {
    refused(`HTTP/1.1 200 ${reason}\r\n${CL0}\r\n`, /reason phrase/);
  }
  // A bare LF ends the status line without its CR.
  refused(`HTTP/1.1 200 O\nK\r\n${CL0}\r\n`, /status line not ended by CRLF/);
});

test('status line: bare LF line ends are refused; heads ended by LF only never end', () => {
  refused(`HTTP/1.1 200 OK\n${CL0}\r\n`, /status line not ended by CRLF/);
  refused(`HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n\r\n`, /header line not ended by CRLF/);
  refused(`HTTP/1.1 200 OK\r\nX: 1\nContent-Length: 0\r\n\r\n`, /header line not ended by CRLF/);
  // No CRLF CRLF at all: the head is still incomplete, and the close is an error.
  const r = recorder();
  r.parser.start(false);
  const input = b('HTTP/1.1 200 OK\nContent-Length: 0\n\nbody');
  assert.equal(r.parser.feed(input), input.length);
  assert.equal(r.heads.length, 0);
  assert.throws(() => r.parser.finish(), /before the response head/);
});

test('status line: missing CRLF (the connection closes mid-line or mid-head)', () => {
  for (const partial of ['H', 'HTTP/1.1 200', 'HTTP/1.1 200 OK\r', 'HTTP/1.1 200 OK\r\n', 'HTTP/1.1 200 OK\r\nX: 1\r\n', 'HTTP/1.1 200 OK\r\n\r']) {
    const r = recorder();
    r.parser.start(false);
    assert.equal(r.parser.feed(b(partial)), partial.length);
    assert.equal(r.heads.length, 0, partial);
    assert.throws(() => r.parser.finish(), (e: unknown) => e instanceof HttpResponseError && /before the response head/.test(e.message), partial);
  }
});

// ---------------------------------------------------------------- headers

test('headers: names keep their case, repeats stay separate and in order', () => {
  const { head } = parse(`${OK}content-TYPE: text/plain\r\nSet-Cookie: a=1; Path=/\r\nX-A: 1\r\nSet-Cookie: b=2, c=3\r\nset-cookie: d=4\r\n${CL0}\r\n`);
  assert.deepEqual(head.headers, [
    ['content-TYPE', 'text/plain'],
    ['Set-Cookie', 'a=1; Path=/'],
    ['X-A', '1'],
    ['Set-Cookie', 'b=2, c=3'],
    ['set-cookie', 'd=4'],
    ['Content-Length', '0'],
  ]);
});

test('headers: OWS around the value is trimmed, inner spaces, tabs and colons are kept, empty values allowed', () => {
  const { head } = parse(`${OK}X-A: \t v a\tl \t \r\nX-T:12:30:00\r\nX-E:\r\nX-S:   \r\nX-Tab:\t\t\r\n${CL0}\r\n`);
  assert.deepEqual(head.headers.slice(0, 5), [
    ['X-A', 'v a\tl'],
    ['X-T', '12:30:00'],
    ['X-E', ''],
    ['X-S', ''],
    ['X-Tab', ''],
  ]);
});

test('headers: every token character is allowed in a name', () => {
  const name = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const { head } = parse(`${OK}${name}: v\r\n${CL0}\r\n`);
  assert.deepEqual(head.headers[0], [name, 'v']);
});

test('headers: invalid names, a space before the colon, a missing name or colon are refused', () => {
  const bad: Array<[string, RegExp]> = [
    ['Bad Name: x', /invalid header name/],
    ['X(a): y', /invalid header name/],
    ['X"a: y', /invalid header name/],
    ['X/Y: z', /invalid header name/],
    ['X@Y: z', /invalid header name/],
    ['X,Y: z', /invalid header name/],
    ['X=Y: z', /invalid header name/],
    ['X\x00: y', /invalid header name/],
    ['X\x7f: y', /invalid header name/],
    ['X\rY: z', /invalid header name/],
    ['\xe9t\xe9: y', /invalid header name/],
    ['X-A : b', /invalid header name/],
    ['X-A\t: b', /invalid header name/],
    [': b', /without a name and colon/],
    ['X-A b', /without a name and colon/],
    ['X-A', /without a name and colon/],
  ];
  for (const [line, re] of bad) refused(`${OK}${line}\r\n${CL0}\r\n`, re);
  // A colon only on a later line does not rescue a line without one.
  refused(`${OK}X-A b\r\nX-B: c\r\n${CL0}\r\n`, /without a name and colon/);
});

test('headers: obs-fold (a line starting with a space or tab) is refused', () => {
  refused(`${OK}X-A: b\r\n c\r\n${CL0}\r\n`, /obs-fold/);
  refused(`${OK}X-A: b\r\n\tc\r\n${CL0}\r\n`, /obs-fold/);
  refused(`${OK} X-A: b\r\n${CL0}\r\n`, /obs-fold/);
});

test('headers: control characters, a bare CR and a bare LF in a value are refused; HTAB is allowed', () => {
  for (const c of ['\x00', '\x01', '\x08', '\x0b', '\x0c', '\x1b', '\x1f', '\x7f', '\r']) {
    refused(`${OK}X-A: a${c}b\r\n${CL0}\r\n`, /control character in header/);
  }
  // A bare CR just before the CRLF (value "a\r") and a bare CR alone.
  refused(`${OK}X-A: a\r\r\n${CL0}\r\n`, /control character/);
  refused(`${OK}X-A: \r\r\n${CL0}\r\n`, /control character/);
  // A bare LF is a line end without its CR, never a new header (the injection case).
  refused(`${OK}X-A: a\nSet-Cookie: evil=1\r\n${CL0}\r\n`, /not ended by CRLF/);
  assert.deepEqual(parse(`${OK}X-A: a\tb\r\n${CL0}\r\n`).head.headers[0], ['X-A', 'a\tb']);
});

test('headers: obs-text bytes 0x80-0xff are allowed in values, as latin1', () => {
  let all = '';
  for (let c = 0x80; c <= 0xff; c++) all += String.fromCharCode(c);
  const { head } = parse(Buffer.concat([b(`${OK}X-Bin: `), Buffer.from(all, 'latin1'), b(`\r\nX-Utf8: caf`), Buffer.from('é', 'utf8'), b(`\r\n${CL0}\r\n`)]));
  assert.equal(head.headers[0]![1], all);
  assert.equal(head.headers[1]![1], 'caf\xc3\xa9');
});

// ---------------------------------------------------------------- Content-Length

test('Content-Length: 0 ends the message at the head, N bytes of body', () => {
  const zero = parse(`${OK}${CL0}\r\n`);
  assert.equal(zero.head.framing, 'length');
  assert.equal(zero.head.contentLength, 0);
  assert.ok(zero.ended);
  assert.equal(zero.body, '');

  const r = recorder();
  r.parser.start(false);
  assert.equal(r.parser.feed(b(`${OK}Content-Length: 10\r\n\r\n0123`)), 4 + OK.length + 22);
  assert.equal(r.heads[0]!.framing, 'length');
  assert.equal(r.heads[0]!.contentLength, 10);
  assert.equal(r.ends, 0);
  assert.ok(!r.parser.idle);
  assert.equal(r.parser.feed(b('456')), 3);
  assert.equal(r.parser.feed(b('789')), 3);
  assert.equal(r.ends, 1);
  assert.ok(r.parser.idle);
  assert.equal(r.body(), '0123456789');
});

test('Content-Length: identical repeats and lists are one length; conflicting values are refused', () => {
  for (const h of [
    'Content-Length: 5\r\nContent-Length: 5',
    'Content-Length: 5, 5',
    'Content-Length: 5,5,5',
    'Content-Length: 5 ,\t5',
    'content-length: 005\r\nContent-Length: 5',
    'Content-Length:5',
    'Content-Length: \t5\t ',
  ]) {
    const { head, body } = parse(`${OK}${h}\r\n\r\nhello`);
    assert.equal(head.contentLength, 5, h);
    assert.equal(body, 'hello', h);
  }
  for (const h of ['Content-Length: 5\r\nContent-Length: 6', 'Content-Length: 5, 6', 'Content-Length: 0\r\nContent-Length: 1', 'Content-Length: 6,5,5']) {
    refused(`${OK}${h}\r\n\r\nhello`, /conflicting Content-Length/);
  }
});

test('Content-Length: signs, hex, decimals, junk, empty elements and more than 15 digits are refused', () => {
  for (const v of ['+5', '-5', '-0', '0x5', '5a', 'a', '5.0', '1e3', '1 2', '', ' ', '5,', ',5', '5,,5', '1234567890123456', '0000000000000005', '5\x0b']) {
    refused(`${OK}Content-Length: ${v}\r\n\r\n`, /Content-Length/);
  }
  // 15 digits are fine (below 2^53).
  assert.equal(parse(`${OK}Content-Length: 999999999999999\r\n\r\n`).head.contentLength, 999999999999999);
  assert.equal(parse(`${OK}Content-Length: 000000000000007\r\n\r\n`).head.contentLength, 7);
});

test('Content-Length: the close before the whole body is an error; bytes after it are not consumed', () => {
  refused(`${OK}Content-Length: 10\r\n\r\nshort`, /before the end of the body/, { finish: true });
  const input = b(`${OK}Content-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n`);
  const p = parse(input);
  assert.equal(p.body, 'ok');
  assert.ok(p.ended);
  assert.equal(p.used, input.length - OK.length);
});

// ---------------------------------------------------------------- chunked

test('chunked: sizes in upper and lower case hex, leading zeros, a chunk per feed or all at once', () => {
  const data = (n: number, c: string): string => c.repeat(n);
  const input = `${CHUNKED}5\r\nhello\r\nA\r\n${data(10, 'a')}\r\na\r\n${data(10, 'b')}\r\nfF\r\n${data(255, 'c')}\r\n1F\r\n${data(31, 'd')}\r\n0005\r\nworld\r\n0\r\n\r\n`;
  const { head, body, ended, used } = parse(input);
  assert.equal(head.framing, 'chunked');
  assert.equal(head.contentLength, 0);
  assert.ok(head.keepAlive);
  assert.ok(ended);
  assert.equal(used, input.length);
  assert.equal(body, `hello${data(10, 'a')}${data(10, 'b')}${data(255, 'c')}${data(31, 'd')}world`);
  // Byte by byte.
  const r = recorder();
  r.parser.start(false);
  for (const byte of b(input)) assert.equal(r.parser.feed(Buffer.from([byte])), 1);
  assert.equal(r.body(), body);
  assert.equal(r.ends, 1);
});

test('chunked: extensions and whitespace before them are ignored', () => {
  for (const line of ['5;name=value', '5;a', '5 ;a="b;c"', '5\t;x', '5 ', '5\t', '5;', '5;a=1;b=2;c', '5 ; a = "q\\"x" ', '5;\xe9\x80\t']) {
    const { body, ended } = parse(`${CHUNKED}${line}\r\nhello\r\n0;last=1\r\n\r\n`);
    assert.equal(body, 'hello', line);
    assert.ok(ended, line);
  }
});

test('chunked: chunk data not followed by CRLF is refused', () => {
  for (const after of ['XX', '\n', '\nx', '\rx', 'x\r\n', '\r\r\n', ' \r\n']) {
    refused(`${CHUNKED}5\r\nhello${after}0\r\n\r\n`, /chunk data not followed by CRLF/);
  }
  // The body before the bad byte was delivered.
  const r = recorder();
  r.parser.start(false);
  assert.throws(() => r.parser.feed(b(`${CHUNKED}5\r\nhelloX`)), HttpResponseError);
  assert.equal(r.body(), 'hello');
});

test('chunked: a missing size, a malformed line, a bare LF and control characters in extensions are refused', () => {
  const cases: Array<[string, RegExp]> = [
    ['\r\n', /without a size/],
    [';ext\r\n', /without a size/],
    [' 5\r\n', /without a size/],
    ['g\r\n', /without a size/],
    ['-5\r\n', /without a size/],
    ['+5\r\n', /without a size/],
    ['0x5\r\n', /malformed chunk-size line/],
    ['5x\r\n', /malformed chunk-size line/],
    ['5 x\r\n', /malformed chunk-size line/],
    ['5,6\r\n', /malformed chunk-size line/],
    ['5\rx\r\n', /malformed chunk-size line/],
    ['5\n', /not ended by CRLF/],
    ['\n', /not ended by CRLF/],
    ['5;a\rb\n', /not ended by CRLF/],
    ['5;a\x00\r\n', /control character in a chunk extension/],
    ['5;a\rb\r\n', /control character in a chunk extension/],
    ['5;a\x7f\r\n', /control character in a chunk extension/],
  ];
  for (const [line, re] of cases) refused(`${CHUNKED}${line}hello\r\n0\r\n\r\n`, re);
});

test('chunked: sizes of 13 significant hex digits are accepted (leading zeros do not count), 14 refused', () => {
  const r = recorder();
  r.parser.start(false);
  r.parser.feed(b(`${CHUNKED}fffffffffffff\r\nabc`));
  assert.equal(r.body(), 'abc');
  assert.throws(() => r.parser.finish(), /before the end of the body/);
  refused(`${CHUNKED}10000000000000\r\n`, /chunk size too large/);
  const z = recorder();
  z.parser.start(false);
  z.parser.feed(b(`${CHUNKED}00000000000001\r\nx\r\n0000\r\n\r\n`));
  assert.equal(z.body(), 'x');
  assert.equal(z.ends, 1);
  refused(`${CHUNKED}ffffffffffffffffffffffff\r\n`, /chunk size too large/);
});

test('chunked: a chunk-size line is refused past MAX_CHUNK_LINE_BYTES, whole or in pieces, ended or not', () => {
  assert.equal(MAX_CHUNK_LINE_BYTES, 4096);
  // The line with its CRLF at exactly the limit is fine.
  const atLimit = `1;${'e'.repeat(MAX_CHUNK_LINE_BYTES - 4)}\r\n`;
  assert.equal(atLimit.length, MAX_CHUNK_LINE_BYTES);
  assert.equal(parse(`${CHUNKED}${atLimit}x\r\n0\r\n\r\n`).body, 'x');
  const over = `1;${'e'.repeat(MAX_CHUNK_LINE_BYTES - 3)}\r\n`;
  refused(`${CHUNKED}${over}x\r\n0\r\n\r\n`, /chunk-size line longer/);
  // In pieces, and never ended: refused once the limit is passed.
  const r = recorder();
  r.parser.start(false);
  r.parser.feed(b(`${CHUNKED}1;`));
  assert.throws(() => {
    for (let i = 0; i < 2 * MAX_CHUNK_LINE_BYTES; i++) r.parser.feed(b('e'));
  }, /chunk-size line longer/);
  // A long run of size digits without an LF.
  refused(`${CHUNKED}${'0'.repeat(MAX_CHUNK_LINE_BYTES + 1)}`, /chunk-size line longer/);
});

test('chunked: trailers are checked, accepted and dropped', () => {
  const r = recorder();
  r.parser.start(false);
  const input = b(`${CHUNKED}3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nX-Empty:\r\nX-Tab:\ta\tb\r\nX-Bin: \xe9\xff\r\n\r\n`);
  assert.equal(r.parser.feed(input), input.length);
  assert.equal(r.body(), 'abc');
  assert.equal(r.ends, 1);
  assert.equal(r.heads.length, 1);
  assert.deepEqual(r.heads[0]!.headers, [['Transfer-Encoding', 'chunked']]);
});

test('chunked: malformed trailer lines are refused', () => {
  const cases: Array<[string, RegExp]> = [
    ['bad line', /malformed trailer line/],
    [': x', /malformed trailer line/],
    ['Bad Name: x', /malformed trailer line/],
    [' folded: x', /malformed trailer line/],
    ['X-A : x', /malformed trailer line/],
    ['X: a\x00b', /control character in a trailer/],
    ['X: a\rb', /control character in a trailer/],
    ['X: a\x7f', /control character in a trailer/],
  ];
  for (const [line, re] of cases) refused(`${CHUNKED}0\r\n${line}\r\n\r\n`, re);
  refused(`${CHUNKED}0\r\nX: 1\n\r\n`, /trailer line not ended by CRLF/);
  refused(`${CHUNKED}0\r\n\n`, /trailer line not ended by CRLF/);
  refused(`${CHUNKED}0\r\nX: 1\r\n`, /before the end of the body/, { finish: true });
});

test('chunked: trailers over the head limit are refused (default and custom limit)', () => {
  refused(`${CHUNKED}0\r\n${'X-Trailer: 0123456789\r\n'.repeat(Math.ceil(DEFAULT_MAX_HEAD_BYTES / 23) + 1)}\r\n`, /trailers larger than 16384/);
  // Just under the default limit is fine.
  const fits = `${'X-Trailer: 0123456789\r\n'.repeat(Math.floor((DEFAULT_MAX_HEAD_BYTES - 2) / 23))}\r\n`;
  assert.ok(fits.length <= DEFAULT_MAX_HEAD_BYTES);
  assert.ok(parse(`${CHUNKED}0\r\n${fits}`).ended);
  // A custom limit (the head itself must fit it too), and a trailer line that never ends.
  refused(`${CHUNKED}0\r\nX: ${'a'.repeat(200)}\r\n\r\n`, /trailers larger than 100/, { max: 100 });
  const r = recorder(100);
  r.parser.start(false);
  r.parser.feed(b(`${CHUNKED}0\r\nX: `));
  assert.throws(() => {
    for (let i = 0; i < 200; i++) r.parser.feed(b('a'));
  }, /trailers larger than 100/);
});

test('chunked: finish() mid-chunk, mid-size-line, before the CRLF after data and before the last chunk is an error', () => {
  for (const partial of ['5\r\nhel', '5', '5;ext', '5\r\nhello', '5\r\nhello\r', '5\r\nhello\r\n', '0\r\n', '0\r\n\r']) {
    refused(`${CHUNKED}${partial}`, /before the end of the body/, { finish: true });
  }
});

// ---------------------------------------------------------------- Transfer-Encoding

test('Transfer-Encoding: chunked as the final coding, in any case, across lines and lists', () => {
  for (const te of ['chunked', 'CHUNKED', 'Chunked', 'gzip, chunked', 'gzip,chunked', 'chunked,', ' , chunked ,', 'gzip\r\nTransfer-Encoding: chunked', 'gzip\r\ntransfer-encoding: deflate, chunked']) {
    const { head, body } = parse(`${OK}Transfer-Encoding: ${te}\r\n\r\n2\r\nhi\r\n0\r\n\r\n`);
    assert.equal(head.framing, 'chunked', te);
    assert.equal(body, 'hi', te);
  }
});

test('Transfer-Encoding: a final coding other than chunked makes the body close-delimited', () => {
  for (const te of ['gzip', 'identity', 'deflate, gzip', '', 'chunkedx', 'x-chunked']) {
    const r = recorder();
    r.parser.start(false);
    const input = b(`${OK}Transfer-Encoding: ${te}\r\n\r\n2\r\nhi\r\n0\r\n\r\n`);
    assert.equal(r.parser.feed(input), input.length, te);
    assert.equal(r.heads[0]!.framing, 'close', te);
    assert.equal(r.heads[0]!.keepAlive, false, te);
    assert.equal(r.ends, 0, te);
    r.parser.finish();
    assert.equal(r.ends, 1, te);
    assert.equal(r.body(), '2\r\nhi\r\n0\r\n\r\n', te);
  }
});

test('Transfer-Encoding: chunked twice or a coding after chunked is refused', () => {
  for (const te of ['chunked, chunked', 'chunked\r\nTransfer-Encoding: chunked', 'chunked\r\nTransfer-Encoding: gzip', 'chunked, gzip']) {
    refused(`${OK}Transfer-Encoding: ${te}\r\n\r\n0\r\n\r\n`, /a transfer coding after chunked/);
  }
});

test('Transfer-Encoding with Content-Length is refused, in either order, even where no body is read', () => {
  refused(`${OK}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, /both Content-Length and Transfer-Encoding/);
  refused(`${OK}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello`, /both Content-Length and Transfer-Encoding/);
  refused(`${OK}Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\nhello`, /both Content-Length and Transfer-Encoding/);
  refused(`HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n`, /both/);
  refused(`${OK}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`, /both/, { head: true });
});

test('Transfer-Encoding on HTTP/1.0 is refused', () => {
  refused('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', /HTTP\/1\.0/);
  refused('HTTP/1.0 200 OK\r\ntransfer-encoding: gzip\r\n\r\n', /HTTP\/1\.0/);
});

// ---------------------------------------------------------------- no body

test('no body: a HEAD request, whatever the head says; bytes after the head are not consumed', () => {
  for (const h of ['Content-Length: 5', 'Transfer-Encoding: chunked', 'X-A: 1', 'Connection: close']) {
    const head = `${OK}${h}\r\n\r\n`;
    const { head: parsed, ended, used, body } = parse(`${head}HTTP/1.1 200 OK\r\n`, { head: true });
    assert.equal(parsed.framing, 'none', h);
    assert.ok(ended, h);
    assert.equal(body, '', h);
    assert.equal(used, head.length, h);
  }
  assert.equal(parse(`${OK}Content-Length: 5\r\n\r\n`, { head: true }).head.contentLength, 5);
  assert.equal(parse(`${OK}Content-Length: 5\r\n\r\n`, { head: true }).head.keepAlive, true);
  assert.equal(parse(`${OK}\r\n`, { head: true }).head.keepAlive, true);
});

test('no body: 204 and 304, with or without a Content-Length', () => {
  for (const status of ['204 No Content', '304 Not Modified']) {
    for (const h of ['', 'Content-Length: 10\r\n', 'Content-Length: 0\r\n', 'Transfer-Encoding: chunked\r\n']) {
      const head = `HTTP/1.1 ${status}\r\n${h}\r\n`;
      const p = parse(`${head}body?`);
      assert.equal(p.head.framing, 'none', head);
      assert.ok(p.ended, head);
      assert.equal(p.body, '', head);
      assert.equal(p.used, head.length, head);
      assert.equal(p.head.keepAlive, true, head);
    }
  }
  // 205 and others do read a body.
  assert.equal(parse('HTTP/1.1 205 Reset Content\r\nContent-Length: 2\r\n\r\nok').body, 'ok');
});

// ---------------------------------------------------------------- 1xx

test('1xx: 100 Continue and 103 Early Hints (with headers) are skipped, then the final head', () => {
  const input = `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\nLink: </a.js>\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.0 199 Whatever\r\nX: 1\r\n\r\n${OK}Content-Length: 2\r\n\r\nok`;
  const r = recorder();
  r.parser.start(false);
  assert.equal(r.parser.feed(b(input)), input.length);
  assert.equal(r.heads.length, 1);
  assert.equal(r.heads[0]!.status, 200);
  assert.deepEqual(r.heads[0]!.headers, [['Content-Length', '2']]);
  assert.equal(r.body(), 'ok');
  assert.equal(r.ends, 1);
  // In pieces.
  everySplit(b(input), (pieces) => {
    const q = recorder();
    q.parser.start(false);
    for (const piece of pieces) q.parser.feed(piece);
    assert.equal(q.heads.length, 1);
    assert.equal(q.heads[0]!.status, 200);
    assert.equal(q.body(), 'ok');
    assert.equal(q.ends, 1);
  });
  // For a HEAD request too.
  const h = parse(`HTTP/1.1 100 Continue\r\n\r\n${OK}Content-Length: 2\r\n\r\n`, { head: true });
  assert.equal(h.head.status, 200);
  assert.ok(h.ended);
});

test('1xx: their lines are still checked; a close after one is a close before the head', () => {
  const cases: Array<[string, RegExp]> = [
    ['HTTP/1.1 103 Early Hints\r\nBad Name: x\r\n\r\n', /invalid header name/],
    ['HTTP/1.1 103 Early Hints\r\n folded: x\r\n\r\n', /obs-fold/],
    ['HTTP/1.1 103 Early Hints\r\nLink: a\x00b\r\n\r\n', /control character in header/],
    ['HTTP/1.1 103 Early Hints\r\nLink: a\rb\r\n\r\n', /control character in header/],
    ['HTTP/1.1 103 Early Hints\r\nLink: a\nX: b\r\n\r\n', /not ended by CRLF/],
    ['HTTP/1.1 103 Early Hints\r\nno colon\r\n\r\n', /without a name and colon/],
    ['HTTP/1.1 100 Continue\n\r\n\r\n', /status line not ended by CRLF/],
    ['HTTP/1.1 100 Cont\x01inue\r\n\r\n', /reason phrase/],
  ];
  for (const [input, re] of cases) refused(`${input}${OK}${CL0}\r\n`, re);
  refused('HTTP/1.1 100 Continue\r\n\r\n', /before the response head/, { finish: true });
});

// ---------------------------------------------------------------- 101

test('101 ends parsing: no onEnd, feed returns the bytes of the head, the rest is left to the caller', () => {
  const head = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 9\r\n\r\n';
  const r = recorder();
  r.parser.start(false);
  assert.equal(r.parser.feed(b(`${head}\x81\x05hello`)), head.length);
  assert.equal(r.heads.length, 1);
  assert.equal(r.heads[0]!.status, 101);
  assert.equal(r.heads[0]!.framing, 'none');
  assert.equal(r.heads[0]!.keepAlive, false);
  assert.equal(r.ends, 0);
  assert.ok(r.parser.idle);
  assert.equal(r.parser.feed(b('more')), 0);
  assert.equal(r.bodies.length, 0);
  r.parser.finish(); // nothing owed
  // Split: the second piece holds the end of the head and the first tunnel bytes.
  const q = recorder();
  q.parser.start(false);
  assert.equal(q.parser.feed(b(head.slice(0, 20))), 20);
  assert.equal(q.parser.feed(b(`${head.slice(20)}tunnel`)), head.length - 20);
  // After 1xx heads in the same chunk.
  const c = `HTTP/1.1 100 Continue\r\n\r\n${head}`;
  assert.equal(parse(`${c}tunnel`).used, c.length);
});

// ---------------------------------------------------------------- keep-alive

test('keepAlive: the HTTP/1.1 default, Connection: close, HTTP/1.0 rules and close-delimited bodies', () => {
  const cases: Array<[string, boolean]> = [
    [`${OK}${CL0}\r\n`, true],
    [`${OK}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, true],
    [`${OK}Connection: keep-alive\r\n${CL0}\r\n`, true],
    [`${OK}Connection: close\r\n${CL0}\r\n`, false],
    [`${OK}connection: CLOSE\r\n${CL0}\r\n`, false],
    [`${OK}Connection: Upgrade, close\r\n${CL0}\r\n`, false],
    [`${OK}Connection: keep-alive, close\r\n${CL0}\r\n`, false],
    [`${OK}Connection: keep-alive\r\nConnection: close\r\n${CL0}\r\n`, false],
    [`${OK}Connection: closed\r\n${CL0}\r\n`, true],
    [`${OK}\r\n`, false], // close-delimited
    [`${OK}Connection: keep-alive\r\n\r\n`, false], // close-delimited
    ['HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n', false],
    [`HTTP/1.0 200 OK\r\n${CL0}\r\n`, false],
    [`HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n${CL0}\r\n`, true],
    [`HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nok`, true],
    [`HTTP/1.0 200 OK\r\nConnection: foo, keep-alive\r\n${CL0}\r\n`, true],
    [`HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n${CL0}\r\n`, false],
    ['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n', false], // close-delimited
    ['HTTP/1.0 204 No Content\r\nConnection: keep-alive\r\n\r\n', true],
    ['HTTP/1.0 304 Not Modified\r\n\r\n', false],
  ];
  for (const [input, keepAlive] of cases) assert.equal(parse(input).head.keepAlive, keepAlive, input);
});

test('keepAlive: Connection: close wins over keep-alive on HTTP/1.0 in any order', () => {
  assert.equal(parse(`HTTP/1.0 200 OK\r\nConnection: close, keep-alive\r\n${CL0}\r\n`).head.keepAlive, false);
  assert.equal(parse(`HTTP/1.0 200 OK\r\nConnection: close\r\nConnection: keep-alive\r\n${CL0}\r\n`).head.keepAlive, false);
});

test('Keep-Alive: timeout=N is read into keepAliveTimeoutS, -1 without one', () => {
  const cases: Array<[string, number]> = [
    ['', -1],
    ['Keep-Alive: timeout=5\r\n', 5],
    ['Keep-Alive: timeout=5, max=100\r\n', 5],
    ['Keep-Alive: max=100, timeout=30\r\n', 30],
    ['Keep-Alive: max=100,timeout=30\r\n', 30],
    ['keep-alive: Timeout = 7\r\n', 7],
    ['Keep-Alive: TIMEOUT=0\r\n', 0],
    ['Keep-Alive: max=100\r\n', -1],
    ['Keep-Alive: xtimeout=5\r\n', -1],
    ['Keep-Alive: timeout=\r\n', -1],
    ['Keep-Alive: timeout=abc\r\n', -1],
    ['Keep-Alive:\r\n', -1],
    ['X-Keep-Alive: timeout=5\r\n', -1],
  ];
  for (const [h, t] of cases) assert.equal(parse(`${OK}${h}${CL0}\r\n`).head.keepAliveTimeoutS, t, h);
  assert.equal(parse(`HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=15, max=5\r\n${CL0}\r\n`).head.keepAliveTimeoutS, 15);
});

// ---------------------------------------------------------------- feed() and leftovers

test('feed() returns fewer bytes than given when the message ends inside the chunk', () => {
  const cases: Array<[string, string]> = [
    [`${OK}Content-Length: 3\r\n\r\nabc`, 'HTTP/1.1 200 OK\r\n'],
    [`${CHUNKED}3\r\nabc\r\n0\r\n\r\n`, 'unsolicited'],
    [`${CHUNKED}3\r\nabc\r\n0\r\nT: 1\r\n\r\n`, 'x'],
    [`${OK}${CL0}\r\n`, '\r\n'],
    ['HTTP/1.1 304 Not Modified\r\n\r\n', 'garbage'],
  ];
  for (const [message, extra] of cases) {
    const r = recorder();
    r.parser.start(false);
    assert.equal(r.parser.feed(b(message + extra)), message.length, message);
    assert.equal(r.ends, 1);
    assert.ok(r.parser.idle);
    // A Done parser takes nothing more.
    assert.equal(r.parser.feed(b(extra)), 0);
    // The message split in two: the second feed reports what it used of its own chunk.
    const cut = message.length - 2;
    const q = recorder();
    q.parser.start(false);
    assert.equal(q.parser.feed(b(message.slice(0, cut))), cut);
    assert.equal(q.parser.feed(b(message.slice(cut) + extra)), 2);
    assert.equal(q.ends, 1);
  }
  // An empty chunk uses nothing and starts nothing.
  const e = recorder();
  e.parser.start(false);
  assert.equal(e.parser.feed(Buffer.alloc(0)), 0);
  assert.equal(e.parser.started, false);
});

test('onBody pieces are views of the fed chunk, never empty', () => {
  const chunk = b(`${OK}Content-Length: 5\r\n\r\nhello`);
  const r = recorder();
  r.parser.start(false);
  r.parser.feed(chunk);
  assert.equal(r.bodies.length, 1);
  assert.equal(r.bodies[0]!.buffer, chunk.buffer);
  assert.equal(r.bodies[0]!.byteOffset, chunk.byteOffset + chunk.length - 5);
  // A whole chunk of body is passed as is.
  const q = recorder();
  q.parser.start(false);
  q.parser.feed(b(`${OK}Content-Length: 10\r\n\r\n`));
  const body = b('0123456789');
  q.parser.feed(body);
  assert.equal(q.bodies[0], body);
});

// ---------------------------------------------------------------- finish()

test('finish(): completes a close-delimited body (with or without bytes), else throws mid-head or mid-body', () => {
  const r = recorder();
  r.parser.start(false);
  r.parser.feed(b(`${OK}X: 1\r\n\r\nsome `));
  r.parser.feed(b('body'));
  assert.equal(r.ends, 0);
  assert.ok(!r.parser.idle);
  r.parser.finish();
  assert.equal(r.ends, 1);
  assert.equal(r.body(), 'some body');
  assert.ok(r.parser.idle);
  r.parser.finish(); // no second end
  assert.equal(r.ends, 1);

  const empty = parse(`HTTP/1.0 200 OK\r\n\r\n`, { finish: true });
  assert.ok(empty.ended);
  assert.equal(empty.body, '');

  refused(`${OK}Content-Length: 5\r\n\r\nab`, /before the end of the body/, { finish: true });
  refused(`${OK}Content-Length: 5\r\n\r\n`, /before the end of the body/, { finish: true });
  refused(`${OK}Content-Len`, /before the response head/, { finish: true });
  // After a complete message, and on a parser never started, finish() is a no-op.
  const done = recorder();
  done.parser.start(false);
  done.parser.feed(b(`${OK}${CL0}\r\n`));
  done.parser.finish();
  assert.equal(done.ends, 1);
  recorder().parser.finish();
  // Started but no byte arrived: still a close before the head (the caller looks at `started`).
  const none = recorder();
  none.parser.start(false);
  assert.throws(() => none.parser.finish(), /before the response head/);
});

// ---------------------------------------------------------------- head limit

test('head limit: DEFAULT_MAX_HEAD_BYTES, whether or not the end of the head was seen', () => {
  assert.equal(DEFAULT_MAX_HEAD_BYTES, 16 * 1024);
  const many = `${OK}${'X-Header: 0123456789\r\n'.repeat(800)}${CL0}\r\n`;
  assert.ok(many.length > DEFAULT_MAX_HEAD_BYTES);
  refused(many, /response head larger than 16384 bytes/);
  refused(`${OK}X-Big: ${'b'.repeat(DEFAULT_MAX_HEAD_BYTES)}\r\n\r\n`, /response head larger/);
  // Fed in pieces and never ended.
  const r = recorder();
  r.parser.start(false);
  assert.throws(() => {
    for (let i = 0; i < 2000; i++) r.parser.feed(b('X-Header: 0123456789\r\n'));
  }, /response head larger than 16384 bytes/);
  // Just under the limit, in one piece and in 1000-byte pieces.
  const fits = `${OK}${'X-Header: 0123456789\r\n'.repeat(740)}${CL0}\r\n`;
  assert.ok(fits.length < DEFAULT_MAX_HEAD_BYTES);
  assert.equal(parse(fits).head.headers.length, 741);
  const q = recorder();
  q.parser.start(false);
  for (let i = 0; i < fits.length; i += 1000) q.parser.feed(b(fits.slice(i, i + 1000)));
  assert.equal(q.heads[0]!.headers.length, 741);
});

test('head limit: a custom smaller limit; the body does not count; each 1xx head has its own', () => {
  refused(`${OK}X-Big: ${'b'.repeat(100)}\r\n\r\n`, /response head larger than 100 bytes/, { max: 100 });
  refused(`${OK}X-Big: ${'b'.repeat(100)}`, /response head larger than 100 bytes/, { max: 100 });
  const p = parse(`${OK}Content-Length: 500\r\n\r\n${'z'.repeat(500)}`, { max: 64 });
  assert.equal(p.body.length, 500);
  const cont = 'HTTP/1.1 100 Continue\r\n\r\n';
  const input = `${cont.repeat(10)}${OK}${CL0}\r\n`;
  assert.ok(input.length > 64);
  assert.equal(parse(input, { max: 64 }).head.status, 200);
});

test('head limit: a head that fits whole fits in any split', () => {
  const max = 100;
  const prefix = `${OK}${CL0}X: `;
  for (let total = max; total <= max + 4; total++) {
    const head = b(`${prefix}${'a'.repeat(total - prefix.length - 4)}\r\n\r\n`);
    assert.equal(head.length, total);
    const whole = parse(head, { max }).head.status;
    everySplit(head, (pieces) => {
      const r = recorder(max);
      r.parser.start(false);
      for (const piece of pieces) r.parser.feed(piece);
      assert.equal(r.heads[0]?.status, whole, `${total} bytes, split at ${pieces[0]!.length}`);
    });
  }
});

// ---------------------------------------------------------------- started, idle, reuse

test('started and idle', () => {
  const r = recorder();
  assert.equal(r.parser.started, false);
  assert.equal(r.parser.idle, true);
  assert.equal(r.parser.feed(b('HTTP/1.1')), 0, 'not started: nothing is taken');
  r.parser.start(false);
  assert.equal(r.parser.started, false);
  assert.equal(r.parser.idle, false);
  r.parser.feed(Buffer.alloc(0));
  assert.equal(r.parser.started, false);
  r.parser.feed(b('H'));
  assert.equal(r.parser.started, true);
  r.parser.feed(b(`TTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n`));
  assert.equal(r.parser.started, true);
  assert.equal(r.parser.idle, false);
  r.parser.feed(b('x'));
  assert.equal(r.parser.idle, true);
  assert.equal(r.parser.started, true);
  r.parser.start(true);
  assert.equal(r.parser.started, false);
  assert.equal(r.parser.idle, false);
  // A 1xx counts as started.
  r.parser.feed(b('HTTP/1.1 100 Continue\r\n\r\n'));
  assert.equal(r.parser.started, true);
  assert.equal(r.heads.length, 1);
});

test('one parser reused for consecutive responses with start()', () => {
  const r = recorder();
  const responses: Array<[boolean, string, number, string]> = [
    [false, `${OK}Content-Length: 3\r\n\r\nabc`, 200, 'abc'],
    // A head split so it is buffered, then a chunked body.
    [false, `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nX-Pad: ${'p'.repeat(300)}\r\nTransfer-Encoding: chunked\r\n\r\n4;x\r\ndefg\r\n0\r\nT: 1\r\n\r\n`, 201, 'defg'],
    [true, `${OK}Content-Length: 99\r\n\r\n`, 200, ''],
    [false, 'HTTP/1.1 204 No Content\r\n\r\n', 204, ''],
    [false, `HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno`, 404, 'no'],
  ];
  for (const [headRequest, input, status, body] of responses) {
    r.parser.start(headRequest);
    r.bodies = [];
    const before = r.ends;
    const buf = b(input);
    const cut = Math.floor(buf.length / 3);
    assert.equal(r.parser.feed(buf.subarray(0, cut)), cut);
    assert.equal(r.parser.feed(buf.subarray(cut)), buf.length - cut);
    assert.equal(r.heads[r.heads.length - 1]!.status, status);
    assert.equal(r.body(), body);
    assert.equal(r.ends, before + 1);
    assert.ok(r.parser.idle);
  }
  assert.equal(r.heads.length, responses.length);
  // start() after an unfinished response forgets it.
  r.parser.start(false);
  r.parser.feed(b(`${OK}X-Partial: `));
  r.parser.start(false);
  r.parser.feed(b(`${OK}Content-Length: 1\r\n\r\nz`));
  assert.deepEqual(r.heads[r.heads.length - 1]!.headers, [['Content-Length', '1']]);
  // A chunked response left mid chunk-line, then a fresh one.
  r.parser.start(false);
  r.parser.feed(b(`${CHUNKED}5;ext`));
  r.parser.start(false);
  r.bodies = [];
  r.parser.feed(b(`${CHUNKED}1\r\nq\r\n0\r\n\r\n`));
  assert.equal(r.body(), 'q');
});

// ---------------------------------------------------------------- every split

/** Everything reported for one response, as a string, so splits can be compared. */
function summary(pieces: readonly Buffer[], headRequest: boolean): string {
  const r = recorder();
  r.parser.start(headRequest);
  const used: number[] = [];
  let error = '';
  try {
    for (const piece of pieces) used.push(r.parser.feed(piece));
    if (!r.parser.idle) r.parser.finish();
  } catch (e) {
    if (!(e instanceof HttpResponseError)) throw e;
    error = e.message;
  }
  const consumed = used.reduce((a, n) => a + n, 0);
  return JSON.stringify([r.heads, r.body(), r.ends, consumed, error]);
}

const SAMPLES: Array<[string, boolean]> = [
  [`${OK}Content-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world!`, false],
  [`${OK}Content-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n`, false],
  [`${CHUNKED}5;a=b\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\nleftover`, false],
  [`HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n${OK}Content-Length: 1\r\n\r\nx`, false],
  ['HTTP/1.1 204 No Content\r\nETag: "a"\r\n\r\nHTTP/1.1', false],
  ['HTTP/1.1 304 Not Modified\r\n\r\n', false],
  [`${OK}Content-Length: 5\r\n\r\n`, true],
  ['HTTP/1.0 200 OK\r\nX-Bin: \xe9\x80\xff\r\n\r\nclose-delimited \r\n\r\n body', false],
  ['HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 3\r\n\r\nabc', false],
  ['HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00', false],
  [`${OK}Transfer-Encoding: gzip\r\n\r\n\x1f\x8b`, false],
  [`HTTP/1.1 200\r\nX-A:  a \t\r\nX-B:\r\n${CL0}\r\n`, false],
];

test('every well-formed sample parses the same when split at every byte boundary, and byte by byte', () => {
  for (const [input, headRequest] of SAMPLES) {
    const buf = b(input);
    const whole = summary([buf], headRequest);
    assert.equal(JSON.parse(whole)[4], '', `${input} is well-formed`);
    const splits = everySplit(buf, (pieces) => assert.equal(summary(pieces, headRequest), whole, input));
    assert.equal(splits, buf.length + 1);
    const bytes: Buffer[] = [];
    for (let i = 0; i < buf.length; i++) bytes.push(buf.subarray(i, i + 1));
    assert.equal(summary(bytes, headRequest), whole, `${input} byte by byte`);
  }
});

test('linear when the head arrives in 1-byte pieces and the body in 3-byte pieces', () => {
  const head = b(`${OK}X-A: ${'a'.repeat(256 * 1024)}\r\nContent-Length: ${256 * 1024}\r\n\r\n`);
  const r = recorder(1 << 20);
  r.parser.start(false);
  const t0 = cpuMs();
  for (let i = 0; i < head.length; i++) r.parser.feed(head.subarray(i, i + 1));
  const body = Buffer.alloc(256 * 1024, 0x62);
  for (let i = 0; i < body.length; i += 3) r.parser.feed(body.subarray(i, i + 3));
  const ms = cpuMs() - t0;
  assert.equal(r.heads[0]!.headers[0]![1].length, 256 * 1024);
  assert.equal(r.ends, 1);
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms`);
});
