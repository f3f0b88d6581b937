/** FastCGI upstream parsers: the record stream, the CGI head, name-value pairs. */
import { CgiHeaderError, CgiResponseParser, type CgiHead } from '../../src/upstream/fastcgi/cgi-response.js';
import { RecordDecodeError, RecordDecoder } from '../../src/upstream/fastcgi/record-decoder.js';
import { decodeNameValuePairs, encodeNameValuePairs, encodeRecord, RecordType } from '../../src/upstream/fastcgi/records.js';
import { bytePieces, FuzzFailure, randomPieces, type FuzzTarget } from '../core.js';
import { rng, type Rng } from '../mutate.js';
import { fastcgiStreams } from '../fixtures.js';

/** Everything a decoder reports, as one string, so different splits can be compared. */
export function decodeRecords(pieces: readonly Buffer[]): string {
  const out: string[] = [];
  let stdout: Buffer[] = [];
  const flush = (): void => {
    if (stdout.length > 0) out.push(`out:${Buffer.concat(stdout).toString('latin1')}`);
    stdout = [];
  };
  const d = new RecordDecoder({
    onStdout: (id, data) => {
      if (data.length === 0) throw new FuzzFailure('empty STDOUT piece delivered');
      if (out.length === 0 || out[out.length - 1] !== `id:${id}`) {
        flush();
        out.push(`id:${id}`);
      }
      stdout.push(data);
    },
    onStderr: (id, data) => {
      flush();
      out.push(`err:${id}:${data.length}`);
    },
    onEndRequest: (id, app, proto) => {
      flush();
      out.push(`end:${id}:${app}:${proto}`);
    },
    onRecord: (type, id, content) => {
      flush();
      out.push(`rec:${type}:${id}:${content.toString('latin1')}`);
    },
  });
  let error = '';
  try {
    for (const p of pieces) d.push(p);
  } catch (e) {
    if (!(e instanceof RecordDecodeError)) throw e;
    error = `error:${e.message}`;
  }
  flush();
  // STDERR pieces follow the split; count their bytes per record instead of per piece.
  return out.join('\n').replace(/(err:\d+:)\d+(\n\1\d+)*/g, '$1*') + error;
}

const splitRng = rng(7);

export const fastcgiRecordsTarget: FuzzTarget = {
  name: 'fastcgi-records',
  seeds: () => [
    ...fastcgiStreams(),
    Buffer.concat([encodeRecord(RecordType.STDOUT, 1, Buffer.from('Status: 200\r\n\r\nok')), encodeRecord(RecordType.END_REQUEST, 1, Buffer.alloc(8))]),
  ],
  run(input) {
    // The same stream whole, in random pieces, and byte by byte must decode the same.
    const whole = decodeRecords([input]);
    const pieces = decodeRecords(randomPieces(input, splitRng, 1 + splitRng.int(6)));
    if (pieces !== whole) throw new FuzzFailure('random split decodes differently');
    if (input.length <= 2048) {
      const bytes = decodeRecords(bytePieces(input));
      if (bytes !== whole) throw new FuzzFailure('1-byte pieces decode differently');
    }
  },
  // Never throws: decodeRecords catches the documented RecordDecodeError itself.
  expected: [],
  budgetMs: 10,
  mutators: [lyingRecordLength],
  shapes: [
    { name: 'many 1-byte STDOUT records', make: (n) => Buffer.concat(Array<Buffer>(Math.floor(n / 16)).fill(encodeRecord(RecordType.STDOUT, 1, Buffer.from('x')))) },
    { name: 'big records in 7-byte pieces', make: (n) => pieces(Buffer.concat(Array<Buffer>(Math.max(1, Math.floor(n / 65544))).fill(encodeRecord(RecordType.STDOUT, 1, Buffer.alloc(65535, 0x61)))), 7) },
    { name: 'many small non-stream records', make: (n) => Buffer.concat(Array<Buffer>(Math.floor(n / 24)).fill(encodeRecord(RecordType.GET_VALUES_RESULT, 0, Buffer.alloc(16)))) },
  ],
  runShape(input) {
    // The decoder alone, without the bookkeeping decodeRecords does for comparisons.
    const d = new RecordDecoder({ onStdout() {}, onStderr() {}, onEndRequest() {}, onRecord() {} });
    for (const p of Array.isArray(input) ? (input as Buffer[]) : [input as Buffer]) d.push(p);
  },
};

function pieces(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) out.push(b.subarray(i, i + size));
  return out;
}

/** Rewrites one record header's content length or padding to a lie. */
function lyingRecordLength(input: Buffer, r: Rng): Buffer {
  const out = Buffer.from(input);
  const heads: number[] = [];
  for (let o = 0; o + 8 <= out.length && heads.length < 256; ) {
    heads.push(o);
    o += 8 + out.readUInt16BE(o + 4) + out[o + 6]!;
  }
  if (heads.length === 0) return out;
  const o = r.pick(heads);
  if (r.next() < 0.7) out.writeUInt16BE(r.pick([0, 1, 7, 8, 0xffff, r.int(0x10000)]), o + 4);
  else out[o + 6] = r.int(256);
  return out;
}

/** STDOUT content of the recorded PHP-FPM responses: real CGI heads. */
function cgiSeeds(): Buffer[] {
  const heads: Buffer[] = [];
  for (const stream of fastcgiStreams()) {
    const chunks: Buffer[] = [];
    const d = new RecordDecoder({ onStdout: (_id, data) => chunks.push(Buffer.from(data)), onStderr: () => {}, onEndRequest: () => {} });
    try {
      d.push(stream);
    } catch {
      continue;
    }
    if (chunks.length > 0) heads.push(Buffer.concat(chunks).subarray(0, 4096));
  }
  heads.push(Buffer.from('Status: 404 Not Found\nContent-Type: text/html\nLocation: /x\n\nbody'));
  heads.push(Buffer.from('X-A: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n'));
  return heads;
}

/** The head and body, as one string, for comparing splits. */
export function parseCgi(pieces: readonly Buffer[], max = 64 * 1024): string {
  const p = new CgiResponseParser(max);
  let head: CgiHead | null = null;
  const body: Buffer[] = [];
  try {
    for (const piece of pieces) {
      if (head !== null) body.push(piece);
      else head = p.push(piece);
    }
  } catch (e) {
    if (!(e instanceof CgiHeaderError)) throw e;
    return `error:${e.message}`;
  }
  if (head === null) return 'incomplete';
  if (head.status < 100 || head.status > 599) throw new FuzzFailure(`status ${head.status}`);
  return JSON.stringify([head.status, head.reason ?? null, head.headers]) + Buffer.concat([head.rest, ...body]).toString('latin1');
}

export const cgiHeadTarget: FuzzTarget = {
  name: 'cgi-head',
  seeds: cgiSeeds,
  run(input) {
    const whole = parseCgi([input]);
    const split = parseCgi(randomPieces(input, splitRng, 1 + splitRng.int(4)));
    if (split !== whole) throw new FuzzFailure(`random split parses differently: ${split.slice(0, 100)} vs ${whole.slice(0, 100)}`);
    if (input.length <= 2048 && parseCgi(bytePieces(input)) !== whole) throw new FuzzFailure('1-byte pieces parse differently');
  },
  expected: [],
  budgetMs: 10,
  shapes: [
    { name: 'one long header in 1-byte pieces', make: (n) => bytePieces(Buffer.from(`X-A: ${'a'.repeat(n)}\r\n\r\n`)) },
    { name: 'many short header lines', make: (n) => [Buffer.from('X: 1\r\n'.repeat(Math.floor(n / 6)) + '\r\n')] },
    { name: 'Status with a long run of spaces', make: (n) => [Buffer.from(`Status: 200${' '.repeat(n)}a\rb\r\n\r\n`)] },
    { name: 'bare CRs and LFs', make: (n) => [Buffer.from('\r'.repeat(n))] },
  ],
  runShape(input) {
    parseCgi(input as Buffer[], 16 * 1024 * 1024);
  },
};

export const nameValuePairsTarget: FuzzTarget = {
  name: 'fastcgi-name-value-pairs',
  seeds: () => [encodeNameValuePairs([['FCGI_MAX_CONNS', '8'], ['FCGI_MPXS_CONNS', '0'], ['x'.repeat(200), 'y'.repeat(300)]])],
  run(input) {
    decodeNameValuePairs(input);
  },
  expected: [RangeError],
  shapes: [{ name: 'many 1-byte pairs', make: (n) => Buffer.from('\x01\x01ab'.repeat(Math.floor(n / 4)), 'latin1') }],
};
