/** Request fields the FastCGI upstream parses itself: Range, If-None-Match, the request path. */
import { etagMatches, parseRange } from '../../src/upstream/fastcgi/static-files.js';
import { decodeRequestPath, hasHiddenSegment, isDenied, slashRedirect, splitScriptPath } from '../../src/upstream/fastcgi/script-resolver.js';
import { FuzzFailure, type FuzzTarget } from '../core.js';

const latin1 = (b: Buffer): string => b.toString('latin1');
const seedsOf = (xs: readonly string[]): Buffer[] => xs.map((s) => Buffer.from(s, 'latin1'));

export const rangeTarget: FuzzTarget = {
  name: 'range',
  seeds: () => seedsOf(['bytes=0-99', 'bytes=100-', 'bytes=-100', ' BYTES = 1 - 2 ', 'bytes=0-1,5-6', 'items=0-1', 'bytes=99999999999999999999-', 'bytes=-0']),
  run(input) {
    for (const size of [0, 1, 1000]) {
      const r = parseRange(latin1(input), size);
      if (r.kind === 'partial' && !(r.start >= 0 && r.start <= r.end && r.end < size)) {
        throw new FuzzFailure(`range ${r.start}-${r.end} outside a ${size}-byte file`);
      }
    }
  },
  expected: [],
  runShape: (h) => parseRange(h as string, 1000),
  shapes: [
    { name: '"bytes=" + spaces', make: (n) => 'bytes=' + ' '.repeat(n) },
    { name: '"bytes=" + spaces + junk', make: (n) => 'bytes=' + ' '.repeat(n) + 'x' },
    { name: 'digits', make: (n) => 'bytes=' + '1'.repeat(n) + '-' },
    { name: 'spaces around "-"', make: (n) => 'bytes=1' + ' \t'.repeat(n / 2) + '-' + ' '.repeat(n / 2) + 'x' },
  ],
};

const ETAG = 'W/"ff-1000"';

export const ifNoneMatchTarget: FuzzTarget = {
  name: 'if-none-match',
  seeds: () => seedsOf([ETAG, '"ff-1000"', '"x", W/"ff-1000"', '*', 'W/"a" , "b",,', '']),
  run(input) {
    etagMatches(latin1(input), ETAG);
  },
  expected: [],
  runShape: (h) => etagMatches(h as string, ETAG),
  shapes: [
    { name: 'commas', make: (n) => ','.repeat(n) },
    { name: 'spaces', make: (n) => ' '.repeat(n) },
    { name: 'W/ prefixes', make: (n) => 'W/'.repeat(n / 2) },
    { name: 'many tags', make: (n) => '"abc", '.repeat(n / 7) + ETAG },
  ],
};

/** The resolver's pure decisions on a raw path: decode/normalise, split, hidden, deny, redirect. */
function checkPath(raw: string): void {
  const d = decodeRequestPath(raw);
  if (!d.ok) return;
  const p = d.path;
  if (!p.startsWith('/') || p.startsWith('//') || p.includes('\0')) throw new FuzzFailure(`decoded path ${JSON.stringify(p)}`);
  for (const seg of p.split('/')) if (seg === '.' || seg === '..') throw new FuzzFailure(`dot segment left in ${JSON.stringify(p)}`);
  splitScriptPath(p, '.php');
  hasHiddenSegment(p);
  isDenied(p, ['/private', '/.git']);
  const loc = slashRedirect(raw, raw, p.endsWith('/') ? p.slice(0, -1) || '/' : p);
  if (loc.startsWith('//') || loc.startsWith('/\\')) throw new FuzzFailure(`redirect ${JSON.stringify(loc)} names a host`);
}

export const requestPathTarget: FuzzTarget = {
  name: 'request-path',
  seeds: () =>
    seedsOf(['/index.php', '/a/b.php/x/y', '/%2e%2e/x', '//admin', '/./a/', '/.well-known/acme', '/a%2fb', '/caf%C3%A9.php', '/x.PHP', '/.git/hook.php', '/a\\b', '/%00']),
  run(input) {
    checkPath(latin1(input));
  },
  expected: [],
  runShape: (p) => checkPath(p as string),
  shapes: [
    { name: '"/%2e" segments', make: (n) => '/%2e'.repeat(n / 4) },
    { name: 'empty segments', make: (n) => '/'.repeat(n) + 'a' },
    { name: '"/." segments', make: (n) => '/.'.repeat(n / 2) },
    { name: 'escapes', make: (n) => '/' + '%41'.repeat(n / 3) },
    { name: '".ph" near-misses', make: (n) => '/' + '.ph'.repeat(n / 3) + '.php' },
    { name: 'plain segments', make: (n) => '/ab'.repeat(n / 3) },
  ],
};
