import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { RecordDecodeError, RecordDecoder } from '../../../src/upstream/fastcgi/record-decoder.js';
import type { RecordHandler } from '../../../src/upstream/fastcgi/record-decoder.js';
import {
  MAX_CONTENT,
  ParamTooLargeError,
  RecordType,
  STDIN_CHUNK,
  decodeHeader,
  decodeNameValuePairs,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeNameValuePairs,
  encodeRecord,
  encodeRequestHead,
  paddingFor,
  stdinRecords,
} from '../../../src/upstream/fastcgi/records.js';
import { repoRoot } from '../fixtures.js';

const fixture = (name: string): Buffer => fs.readFileSync(path.join(repoRoot, 'test/fixtures/fastcgi', name));

/** Everything a decoder reported, with stream content joined per record id. */
interface Collected {
  stdout: Map<number, Buffer[]>;
  stderr: Map<number, Buffer[]>;
  ends: Array<{ id: number; appStatus: number; protocolStatus: number }>;
  records: Array<{ type: number; id: number; content: Buffer }>;
  /** Event order: 'o1' stdout of id 1, 'e1' stderr, 'E1' end. Consecutive duplicates merged. */
  order: string[];
}

function collector(): { c: Collected; handler: RecordHandler } {
  const c: Collected = { stdout: new Map(), stderr: new Map(), ends: [], records: [], order: [] };
  const mark = (m: string): void => {
    if (c.order[c.order.length - 1] !== m) c.order.push(m);
  };
  const handler: RecordHandler = {
    onStdout(id, data) {
      assert.ok(data.length > 0, 'stream pieces are never empty');
      if (!c.stdout.has(id)) c.stdout.set(id, []);
      c.stdout.get(id)!.push(Buffer.from(data));
      mark(`o${id}`);
    },
    onStderr(id, data) {
      assert.ok(data.length > 0, 'stream pieces are never empty');
      if (!c.stderr.has(id)) c.stderr.set(id, []);
      c.stderr.get(id)!.push(Buffer.from(data));
      mark(`e${id}`);
    },
    onEndRequest(id, appStatus, protocolStatus) {
      c.ends.push({ id, appStatus, protocolStatus });
      mark(`E${id}`);
    },
    onRecord(type, id, content) {
      c.records.push({ type, id, content: Buffer.from(content) });
      mark(`r${type}:${id}`);
    },
  };
  return { c, handler };
}

function decodeChunks(chunks: Buffer[]): Collected {
  const { c, handler } = collector();
  const d = new RecordDecoder(handler);
  for (const ch of chunks) d.push(ch);
  assert.ok(d.atRecordBoundary, 'the stream ends on a record boundary');
  return c;
}

const joined = (m: Map<number, Buffer[]>, id: number): string => Buffer.concat(m.get(id) ?? []).toString('latin1');

test('record header: encode then decode, table', () => {
  const cases = [
    { type: RecordType.STDOUT, id: 1, content: 0 },
    { type: RecordType.STDIN, id: 0xffff, content: 1 },
    { type: RecordType.PARAMS, id: 256, content: 8 },
    { type: RecordType.STDERR, id: 7, content: 9 },
    { type: RecordType.STDIN, id: 2, content: MAX_CONTENT },
  ];
  for (const k of cases) {
    const rec = encodeRecord(k.type, k.id, Buffer.alloc(k.content, 0x61));
    const h = decodeHeader(rec);
    assert.deepEqual(h, { version: 1, type: k.type, recordId: k.id, contentLength: k.content, paddingLength: paddingFor(k.content) });
    assert.equal(rec.length, 8 + k.content + h.paddingLength);
    assert.equal((8 + k.content + h.paddingLength) % 8 === 0 || 8 + k.content + h.paddingLength > MAX_CONTENT, true);
  }
});

test('padding brings content to a multiple of 8 but never past 65535 in all (PHP-FPM rejects that)', () => {
  const table: Array<[number, number]> = [
    [0, 0],
    [1, 7],
    [7, 1],
    [8, 0],
    [9, 7],
    [65528, 0],
    [65529, 0],
    [65535, 0],
  ];
  for (const [len, pad] of table) assert.equal(paddingFor(len), pad, `content ${len}`);
});

test('BEGIN_REQUEST is RESPONDER with FCGI_KEEP_CONN, byte for byte (spec §5.1)', () => {
  assert.deepEqual(
    [...encodeBeginRequest(1)],
    [1, 1, 0, 1, 0, 8, 0, 0, /* role */ 0, 1, /* flags */ 1, 0, 0, 0, 0, 0],
  );
  assert.equal(encodeBeginRequest(0x0102, false)[10], 0);
  assert.deepEqual([...encodeBeginRequest(0x0102).subarray(2, 4)], [1, 2]);
});

test('ABORT_REQUEST and END_REQUEST bytes', () => {
  assert.deepEqual([...encodeAbortRequest(3)], [1, 2, 0, 3, 0, 0, 0, 0]);
  assert.deepEqual([...encodeEndRequest(1, 0x01020304, 2)], [1, 3, 0, 1, 0, 8, 0, 0, 1, 2, 3, 4, 2, 0, 0, 0]);
});

test('name-value pairs: 1-byte lengths below 128, 4-byte with the top bit from 128 (spec §3.4)', () => {
  assert.deepEqual([...encodeNameValuePairs([['A', 'bc']])], [1, 2, 0x41, 0x62, 0x63]);
  const long = 'v'.repeat(128);
  const enc = encodeNameValuePairs([['N', long]]);
  assert.deepEqual([...enc.subarray(0, 6)], [1, 0x80, 0, 0, 0x80, 0x4e]);
  const name127 = 'n'.repeat(127);
  assert.equal(encodeNameValuePairs([[name127, '']])[0], 127);
  const pairs: Array<[string, string]> = [
    ['', ''],
    ['EMPTY', ''],
    [name127, long],
    ['BYTES', '\u00e9\u00ff\u0000\u0001'],
    ['BIG', 'x'.repeat(70_000)],
  ];
  assert.deepEqual(decodeNameValuePairs(encodeNameValuePairs(pairs)), pairs);
});

test('name-value pairs: truncated input throws', () => {
  const enc = encodeNameValuePairs([['NAME', 'value']]);
  for (let cut = 1; cut < enc.length; cut++) {
    assert.throws(() => decodeNameValuePairs(enc.subarray(0, cut)), RangeError, `cut at ${cut}`);
  }
  assert.throws(() => decodeNameValuePairs(Buffer.from([0x80, 0, 0])), RangeError);
});

/** Splits an encoded request into records (header fields + content). */
function records(buf: Buffer): Array<{ type: number; id: number; content: Buffer; padding: number }> {
  const out = [];
  let o = 0;
  while (o < buf.length) {
    const h = decodeHeader(buf, o);
    assert.equal(h.version, 1);
    assert.ok(h.contentLength + h.paddingLength <= MAX_CONTENT, 'content + padding fits PHP-FPM’s 65535 limit');
    out.push({ type: h.type, id: h.recordId, content: buf.subarray(o + 8, o + 8 + h.contentLength), padding: h.paddingLength });
    o += 8 + h.contentLength + h.paddingLength;
  }
  assert.equal(o, buf.length);
  return out;
}

test('request head: BEGIN, PARAMS, empty PARAMS, STDIN, empty STDIN', () => {
  const head = encodeRequestHead({ recordId: 1, params: [['A', '1']], stdin: Buffer.from('body') });
  const recs = records(head);
  assert.deepEqual(
    recs.map((r) => [r.type, r.content.length]),
    [
      [RecordType.BEGIN_REQUEST, 8],
      [RecordType.PARAMS, 4],
      [RecordType.PARAMS, 0],
      [RecordType.STDIN, 4],
      [RecordType.STDIN, 0],
    ],
  );
  assert.equal(recs[3]!.content.toString(), 'body');
  const noBody = records(encodeRequestHead({ recordId: 9, params: [], stdin: null }));
  assert.deepEqual(noBody.map((r) => [r.type, r.id, r.content.length]), [
    [RecordType.BEGIN_REQUEST, 9, 8],
    [RecordType.PARAMS, 9, 0],
    [RecordType.STDIN, 9, 0],
  ]);
  const streamed = records(encodeRequestHead({ recordId: 2, params: [['A', '1']], stdin: 'stream' }));
  assert.equal(streamed[streamed.length - 1]!.type, RecordType.PARAMS, 'stream: STDIN left to the caller');
});

test('request head: a name-value pair never spans two PARAMS records (PHP-FPM parses each alone)', () => {
  const params: Array<[string, string]> = [];
  for (let i = 0; i < 7; i++) params.push([`P${i}`, String(i).repeat(20_000 + i * 1000)]);
  const recs = records(encodeRequestHead({ recordId: 1, params, stdin: null })).filter((r) => r.type === RecordType.PARAMS);
  assert.ok(recs.length > 2, 'several PARAMS records');
  const decoded = recs.flatMap((r) => decodeNameValuePairs(r.content));
  assert.deepEqual(decoded, params);
});

test('request head: one param too large for a record is refused', () => {
  assert.throws(() => encodeRequestHead({ recordId: 1, params: [['HTTP_COOKIE', 'c'.repeat(70_000)]], stdin: null }), ParamTooLargeError);
});

test('STDIN is split into records of at most 65528 bytes, ending with an empty record', () => {
  for (const size of [0, 1, STDIN_CHUNK - 1, STDIN_CHUNK, STDIN_CHUNK + 1, 200_001]) {
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i++) body[i] = (i * 7) & 0xff;
    const inline = records(encodeRequestHead({ recordId: 3, params: [], stdin: body })).filter((r) => r.type === RecordType.STDIN);
    const separate = records(Buffer.concat(stdinRecords(3, body, true)));
    for (const recs of [inline, separate]) {
      assert.ok(recs.every((r) => r.content.length <= STDIN_CHUNK && r.id === 3));
      assert.equal(recs[recs.length - 1]!.content.length, 0, 'terminated');
      assert.equal(recs.filter((r) => r.content.length === 0).length, 1, 'one terminator only');
      assert.ok(Buffer.concat(recs.map((r) => r.content)).equals(body), `size ${size}`);
    }
  }
});

// --- decoding bytes recorded from the real PHP-FPM (see test/harness/record-fastcgi-fixtures.ts) -------------------

test('decodes PHP-FPM’s recorded response: headers, flushed chunks, stderr, split large write, end', () => {
  const c = decodeChunks([fixture('php-fpm-response.bin')]);
  const out = joined(c.stdout, 1);
  assert.ok(out.startsWith('Content-type: text/plain;charset=UTF-8\r\nX-Record: 1\r\n\r\nfirst\n'), out.slice(0, 80));
  assert.ok(out.endsWith('x'.repeat(1000) + '\ntail\n'));
  assert.equal(out.length - out.indexOf('\r\n\r\n') - 4, 'first\n'.length + 70_001 + 'tail\n'.length);
  assert.equal(joined(c.stderr, 1), 'PHP message: recorded stderr line');
  assert.deepEqual(c.ends, [{ id: 1, appStatus: 0, protocolStatus: 0 }]);
  assert.deepEqual(c.order, ['o1', 'e1', 'o1', 'E1'], 'stderr arrives between the flushed stdout pieces');
});

test('decodes PHP-FPM’s own 404 (Primary script unknown)', () => {
  const c = decodeChunks([fixture('php-fpm-not-found.bin')]);
  assert.equal(joined(c.stderr, 1), 'Primary script unknown');
  assert.match(joined(c.stdout, 1), /^Status: 404 Not Found\r\n[^]*\r\n\r\nFile not found\.\n$/);
  assert.deepEqual(c.ends, [{ id: 1, appStatus: 0, protocolStatus: 0 }]);
});

test('decodes two pipelined responses from PHP-FPM, in order, by record id', () => {
  const c = decodeChunks([fixture('php-fpm-pipelined.bin')]);
  assert.match(joined(c.stdout, 1), /\r\n\r\nHello, world!$/);
  assert.match(joined(c.stdout, 2), /^Status: 404 Not Found\r\n[^]*status body$/);
  assert.deepEqual(c.ends.map((e) => e.id), [1, 2]);
  assert.deepEqual(c.order, ['o1', 'E1', 'o2', 'E2']);
});

test('recorded PHP-FPM END_REQUEST has garbage in its reserved bytes: the decoder must ignore them', () => {
  // Guards against a decoder that reads the reserved bytes as part of the status.
  const buf = fixture('php-fpm-pipelined.bin');
  const h = decodeHeader(buf, 0);
  const endAt = 8 + h.contentLength + h.paddingLength;
  assert.equal(decodeHeader(buf, endAt).type, RecordType.END_REQUEST);
  const reserved = buf.subarray(endAt + 8 + 5, endAt + 16);
  assert.ok(reserved.some((b) => b !== 0), 'this recording has non-zero reserved bytes');
  assert.deepEqual(decodeChunks([buf]).ends[0], { id: 1, appStatus: 0, protocolStatus: 0 });
});

/** Feeds `buf` split at every offset (two pieces) and checks the result equals the whole-buffer decode. */
function assertSplitInvariant(buf: Buffer): void {
  const whole = decodeChunks([buf]);
  const expectOut = new Map([...whole.stdout].map(([id, bs]) => [id, Buffer.concat(bs)]));
  const expectErr = new Map([...whole.stderr].map(([id, bs]) => [id, Buffer.concat(bs)]));
  for (let cut = 0; cut <= buf.length; cut++) {
    // Compare incrementally: concatenating 70 KB per offset would make this slow.
    const got = { out: new Map<number, number>(), err: new Map<number, number>() };
    const ends: number[] = [];
    const check = (m: Map<number, number>, expect: Map<number, Buffer>, id: number, data: Buffer): void => {
      const at = m.get(id) ?? 0;
      const exp = expect.get(id)!;
      assert.ok(exp.compare(data, 0, data.length, at, at + data.length) === 0, `cut ${cut}: content differs at ${at}`);
      m.set(id, at + data.length);
    };
    const d = new RecordDecoder({
      onStdout: (id, data) => check(got.out, expectOut, id, data),
      onStderr: (id, data) => check(got.err, expectErr, id, data),
      onEndRequest: (id) => ends.push(id),
      onRecord: () => {},
    });
    d.push(buf.subarray(0, cut));
    d.push(buf.subarray(cut));
    for (const [id, b] of expectOut) assert.equal(got.out.get(id), b.length, `cut ${cut}: stdout ${id} length`);
    for (const [id, b] of expectErr) assert.equal(got.err.get(id), b.length, `cut ${cut}: stderr ${id} length`);
    assert.deepEqual(ends, whole.ends.map((e) => e.id), `cut ${cut}`);
  }
}

test('decoder: PHP-FPM byte streams split at every offset decode the same', () => {
  for (const name of ['php-fpm-response.bin', 'php-fpm-not-found.bin', 'php-fpm-pipelined.bin']) {
    assertSplitInvariant(fixture(name));
  }
});

test('decoder: small streams fed one byte at a time and in three pieces at every offset pair', () => {
  const buf = fixture('php-fpm-pipelined.bin');
  const whole = decodeChunks([buf]);
  const oneByOne = decodeChunks([...buf].map((b) => Buffer.from([b])));
  assert.equal(joined(oneByOne.stdout, 1), joined(whole.stdout, 1));
  assert.equal(joined(oneByOne.stdout, 2), joined(whole.stdout, 2));
  for (let i = 0; i <= buf.length; i += 3) {
    for (let j = i; j <= buf.length; j += 5) {
      const c = decodeChunks([buf.subarray(0, i), buf.subarray(i, j), buf.subarray(j)]);
      assert.equal(joined(c.stdout, 2), joined(whole.stdout, 2), `cuts ${i},${j}`);
      assert.deepEqual(c.ends, whole.ends);
    }
  }
});

test('decoder: a request written by nginx decodes to the params and body nginx sent', () => {
  // nginx-request.bin: POST /app/index.php/extra?x=1&y=%20z through nginx's fastcgi module.
  const buf = fixture('nginx-request.bin');
  for (const chunks of [[buf], [...buf].map((b) => Buffer.from([b]))]) {
    const c = decodeChunks(chunks);
    const types = c.records.map((r) => r.type);
    assert.equal(types[0], RecordType.BEGIN_REQUEST);
    const begin = c.records[0]!.content;
    assert.deepEqual([...begin.subarray(0, 3)], [0, 1, 1], 'RESPONDER, keep_conn');
    const params = new Map(
      c.records.filter((r) => r.type === RecordType.PARAMS).flatMap((r) => decodeNameValuePairs(r.content)),
    );
    assert.equal(params.get('REQUEST_METHOD'), 'POST');
    assert.equal(params.get('QUERY_STRING'), 'x=1&y=%20z');
    assert.equal(params.get('SCRIPT_NAME'), '/app/index.php/extra');
    assert.equal(params.get('CONTENT_LENGTH'), '116');
    assert.equal(params.get('HTTP_X_LONG_HEADER'), 'h'.repeat(300), 'a 4-byte value length written by nginx');
    const stdin = c.records.filter((r) => r.type === RecordType.STDIN);
    assert.equal(stdin[stdin.length - 1]!.content.length, 0, 'empty STDIN ends the body');
    assert.equal(Buffer.concat(stdin.map((r) => r.content)).toString(), 'name=m2gw&value=' + 'v'.repeat(100));
  }
});

test('decoder: pause stops callbacks mid-chunk, resume delivers the rest in order', () => {
  const buf = fixture('php-fpm-pipelined.bin');
  const events: string[] = [];
  const d: RecordDecoder = new RecordDecoder({
    onStdout: (id) => {
      events.push(`o${id}`);
      d.pause();
    },
    onStderr: () => {},
    onEndRequest: (id) => events.push(`E${id}`),
  });
  d.push(buf);
  assert.deepEqual(events, ['o1'], 'paused after the first callback');
  d.push(Buffer.alloc(0));
  assert.deepEqual(events, ['o1'], 'input while paused is kept');
  d.resume();
  assert.deepEqual(events, ['o1', 'E1', 'o2']);
  d.resume();
  assert.deepEqual(events, ['o1', 'E1', 'o2', 'E2']);
  assert.ok(d.atRecordBoundary);
});

test('decoder: pause() and resume() from inside a callback keep the order', () => {
  const buf = fixture('php-fpm-response.bin');
  const whole = decodeChunks([buf]);
  const out: Buffer[] = [];
  const d: RecordDecoder = new RecordDecoder({
    onStdout: (_id, data) => {
      out.push(Buffer.from(data));
      d.pause();
      d.resume(); // re-entrant: must not process newer input before the rest of this chunk
    },
    onStderr: () => {},
    onEndRequest: () => {},
  });
  d.pause();
  for (let o = 0; o < buf.length; o += 1000) d.push(buf.subarray(o, o + 1000));
  assert.equal(out.length, 0, 'nothing while paused');
  d.resume();
  assert.ok(Buffer.concat(out).equals(Buffer.concat(whole.stdout.get(1)!)));
  assert.ok(d.atRecordBoundary);
});

test('decoder: a wrong version byte or a short END_REQUEST is a RecordDecodeError', () => {
  const bad = encodeRecord(RecordType.STDOUT, 1, Buffer.from('x'));
  bad[0] = 2;
  const d = new RecordDecoder(collector().handler);
  assert.throws(() => d.push(bad), RecordDecodeError);
  assert.throws(() => d.push(Buffer.alloc(1)), RecordDecodeError, 'stays failed');
  const shortEnd = encodeRecord(RecordType.END_REQUEST, 1, Buffer.alloc(4));
  assert.throws(() => new RecordDecoder(collector().handler).push(shortEnd), RecordDecodeError);
});

test('decoder: an empty STDOUT record (end of stream) is not reported as data', () => {
  const c = decodeChunks([encodeRecord(RecordType.STDOUT, 1, Buffer.from('a')), encodeRecord(RecordType.STDOUT, 1), encodeEndRequest(1, 0, 0)]);
  assert.equal(joined(c.stdout, 1), 'a');
  assert.equal(c.ends.length, 1);
});
