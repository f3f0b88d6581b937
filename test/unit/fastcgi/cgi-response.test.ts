import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CgiHeaderError, CgiResponseParser, parseHead, parseStatusValue } from '../../../src/upstream/fastcgi/cgi-response.js';
import type { CgiHead } from '../../../src/upstream/fastcgi/cgi-response.js';
import { RecordDecoder } from '../../../src/upstream/fastcgi/record-decoder.js';
import { retainedMiB } from '../../integration/hostile-support.js';
import { repoRoot } from '../fixtures.js';

/** CPU time of this process in ms: a loaded machine's waits do not count against the parser. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Feeds pieces; returns the head and all body bytes (rest + what followed). */
function parse(pieces: Buffer[], max?: number): { head: CgiHead; body: string } {
  const p = new CgiResponseParser(max);
  let head: CgiHead | null = null;
  const body: Buffer[] = [];
  for (const piece of pieces) {
    if (head !== null) {
      body.push(piece);
      continue;
    }
    head = p.push(piece);
    if (head !== null) body.push(head.rest);
  }
  assert.ok(head !== null, 'head complete');
  assert.ok(p.headComplete);
  return { head, body: Buffer.concat(body).toString('latin1') };
}

interface Case {
  name: string;
  input: string;
  status: number;
  reason?: string;
  headers: Array<[string, string]>;
  body: string;
}

const cases: Case[] = [
  {
    name: 'PHP default: CRLF lines',
    input: 'X-Powered-By: PHP/8.2\r\nContent-type: text/html; charset=UTF-8\r\n\r\nHello',
    status: 200,
    headers: [
      ['x-powered-by', 'PHP/8.2'],
      ['content-type', 'text/html; charset=UTF-8'],
    ],
    body: 'Hello',
  },
  {
    name: 'bare LF lines',
    input: 'Content-Type: text/plain\nX-A: 1\n\nbody\n\nmore',
    status: 200,
    headers: [
      ['content-type', 'text/plain'],
      ['x-a', '1'],
    ],
    body: 'body\n\nmore',
  },
  {
    name: 'mixed endings: LF then CRLF blank line',
    input: 'X-A: 1\n\r\nrest',
    status: 200,
    headers: [['x-a', '1']],
    body: 'rest',
  },
  {
    name: 'Status with reason',
    input: 'Status: 404 Not Found\r\nContent-Type: text/html\r\n\r\nFile not found.\n',
    status: 404,
    reason: 'Not Found',
    headers: [['content-type', 'text/html']],
    body: 'File not found.\n',
  },
  { name: 'Status without reason', input: 'Status: 503\r\n\r\n', status: 503, headers: [], body: '' },
  {
    name: 'Location without Status is a 302',
    input: 'Location: /elsewhere\r\n\r\n',
    status: 302,
    headers: [['location', '/elsewhere']],
    body: '',
  },
  {
    name: 'Location with Status keeps the Status',
    input: 'Status: 301 Moved Permanently\r\nLocation: https://example.test/\r\n\r\n',
    status: 301,
    reason: 'Moved Permanently',
    headers: [['location', 'https://example.test/']],
    body: '',
  },
  {
    name: 'multiple Set-Cookie stay separate, in order',
    input: 'Set-Cookie: a=1; path=/\r\nSet-Cookie: b=2, c\r\nContent-Type: text/plain\r\n\r\n',
    status: 200,
    headers: [
      ['set-cookie', 'a=1; path=/'],
      ['set-cookie', 'b=2, c'],
      ['content-type', 'text/plain'],
    ],
    body: '',
  },
  {
    name: 'values are trimmed, inner spaces and colons kept',
    input: 'X-Time:   12:30:00  \r\nX-Empty:\r\n\r\n',
    status: 200,
    headers: [
      ['x-time', '12:30:00'],
      ['x-empty', ''],
    ],
    body: '',
  },
  { name: 'no headers at all (blank first line)', input: '\r\nbody only', status: 200, headers: [], body: 'body only' },
  { name: 'no headers, LF', input: '\nx', status: 200, headers: [], body: 'x' },
  {
    name: 'latin1 bytes in a value survive',
    input: 'Content-Disposition: attachment; filename="\u00e9t\u00e9.txt"\r\n\r\n',
    status: 200,
    headers: [['content-disposition', 'attachment; filename="\u00e9t\u00e9.txt"']],
    body: '',
  },
];

test('CGI head: table, whole input', () => {
  for (const c of cases) {
    const { head, body } = parse([Buffer.from(c.input, 'latin1')]);
    assert.equal(head.status, c.status, c.name);
    assert.equal(head.reason, c.reason, c.name);
    assert.deepEqual(head.headers, c.headers, c.name);
    assert.equal(body, c.body, c.name);
  }
});

test('CGI head: table, split at every offset and byte by byte (head split across records)', () => {
  for (const c of cases) {
    const buf = Buffer.from(c.input, 'latin1');
    for (let cut = 0; cut <= buf.length; cut++) {
      const { head, body } = parse([buf.subarray(0, cut), buf.subarray(cut)]);
      assert.equal(head.status, c.status, `${c.name} @${cut}`);
      assert.deepEqual(head.headers, c.headers, `${c.name} @${cut}`);
      assert.equal(body, c.body, `${c.name} @${cut}`);
    }
    const { head, body } = parse([...buf].map((b) => Buffer.from([b])));
    assert.deepEqual(head.headers, c.headers, `${c.name} byte by byte`);
    assert.equal(body, c.body, `${c.name} byte by byte`);
  }
});

test('CGI head: incomplete input returns null and keeps waiting', () => {
  const p = new CgiResponseParser();
  assert.equal(p.push(Buffer.from('Content-Type: text/plain\r\n')), null);
  assert.ok(p.hasPartialHead);
  assert.equal(p.push(Buffer.from('\r')), null);
  const head = p.push(Buffer.from('\nx'));
  assert.ok(head !== null);
  assert.equal(head.rest.toString(), 'x');
  assert.throws(() => p.push(Buffer.from('more')), /already complete/);
});

test('CGI head: the held bytes are a copy (the caller may reuse its chunk)', () => {
  const p = new CgiResponseParser();
  const chunk = Buffer.from('X-A: 1\r\n');
  p.push(chunk);
  chunk.fill(0x21);
  const head = p.push(Buffer.from('\r\n'));
  assert.deepEqual(head?.headers, [['x-a', '1']]);
});

test('CGI head: malformed heads are CgiHeaderError', () => {
  const bad = [
    'no colon here\r\n\r\n',
    ': empty name\r\n\r\n',
    'Bad Name: x\r\n\r\n',
    ' folded: x\r\n\r\n',
    'Status: abc\r\n\r\n',
    'Status: 99 Low\r\n\r\n',
    'Status: 600 High\r\n\r\n',
    'Status: 2000\r\n\r\n',
  ];
  for (const input of bad) {
    assert.throws(() => new CgiResponseParser().push(Buffer.from(input)), CgiHeaderError, JSON.stringify(input));
  }
});

test('CGI head: a head over the limit is refused, whether or not its end was seen', () => {
  const big = 'X-Big: ' + 'b'.repeat(200) + '\r\n';
  assert.throws(() => new CgiResponseParser(100).push(Buffer.from(big + '\r\n')), CgiHeaderError);
  const p = new CgiResponseParser(100);
  assert.throws(() => {
    for (let i = 0; i < 10; i++) p.push(Buffer.from('X-A: 1234567890\r\n'));
  }, CgiHeaderError);
  // Default limit: 64 KiB.
  const q = new CgiResponseParser();
  assert.throws(() => {
    for (let i = 0; i < 100; i++) q.push(Buffer.from('X-Pad: ' + 'p'.repeat(1000) + '\r\n'));
  }, /exceeds 65536/);
  // Body bytes after a small head do not count against the limit.
  const { body } = parse([Buffer.from('A: 1\r\n\r\n' + 'z'.repeat(200))], 100);
  assert.equal(body.length, 200);
});

test('CGI head: parses the STDOUT PHP-FPM really sent (recorded)', () => {
  const bin = fs.readFileSync(path.join(repoRoot, 'test/fixtures/fastcgi/php-fpm-not-found.bin'));
  const pieces: Buffer[] = [];
  new RecordDecoder({ onStdout: (_id, d) => pieces.push(Buffer.from(d)), onStderr() {}, onEndRequest() {} }).push(bin);
  const { head, body } = parse(pieces);
  assert.equal(head.status, 404);
  assert.equal(head.reason, 'Not Found');
  assert.deepEqual(head.headers, [['content-type', 'text/html; charset=UTF-8']]);
  assert.equal(body, 'File not found.\n');
});

test('CGI head: linear when the head arrives in 1-byte pieces (it copied the whole head per piece)', () => {
  // 256 KiB in 1-byte pieces took ~16 s when each piece re-concatenated the head.
  const head = Buffer.from('X-A: ' + 'a'.repeat(256 * 1024) + '\r\nStatus: 201 Made\r\n\r\nbody');
  const p = new CgiResponseParser(1 << 20);
  const t0 = cpuMs();
  let got: CgiHead | null = null;
  for (let i = 0; i < head.length && got === null; i++) got = p.push(head.subarray(i, i + 1));
  const ms = cpuMs() - t0;
  assert.ok(got !== null);
  assert.equal(got.status, 201);
  assert.equal(got.headers[0]![1].length, 256 * 1024);
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms`);
});

test('CGI head: Status values, scanned without a backtracking regex', () => {
  assert.deepEqual(parseStatusValue('404'), { status: 404, reason: undefined });
  assert.deepEqual(parseStatusValue('404 Not Found'), { status: 404, reason: 'Not Found' });
  assert.deepEqual(parseStatusValue('200 \t OK'), { status: 200, reason: 'OK' });
  assert.deepEqual(parseStatusValue('200 '), { status: 200, reason: undefined });
  for (const bad of ['', '20', '600', '099', '2000', '200x', 'abc', '200 a\rb', '200 a\nb', ' 200']) {
    assert.equal(parseStatusValue(bad), null, JSON.stringify(bad));
  }
  const t0 = cpuMs();
  assert.equal(parseStatusValue('200' + ' '.repeat(60_000) + 'a\rb'), null);
  assert.ok(cpuMs() - t0 < 250);
});

test('the header-name memo keeps no long names (a CGI name may be ~64 KiB)', () => {
  const before = retainedMiB();
  let most = 0;
  // The memo forgets everything past 1024 names: the most it held at any time is measured.
  for (let i = 1; i <= 2048; i++) {
    const head = Buffer.from(`${'N'.repeat(8 * 1024)}${i}: v\r\n`, 'latin1');
    assert.equal(parseHead(head, head.length).headers.length, 1);
    if (i % 256 === 0) most = Math.max(most, retainedMiB() - before);
  }
  // Kept, 768 or more of them (raw and lower-cased, 16 KiB a name) are over 12 MiB.
  assert.ok(most < 4, `the memo held ${most} MiB`);
});
