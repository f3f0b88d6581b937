import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parentPath, scanKeyLines } from '../../../src/config/key-lines.js';
import { lineOf } from './helpers.js';

const TEXT = `# a comment with [fake.header] and key = 1
upstream.early.url = "http://a:1"   # dotted key before any table

[gateway]
workers = "auto"
  drain_timeout   =   "30s"

[[handler]]
send_spec = "tcp://127.0.0.1:9997"

[[handler]]
send_spec = 'tcp://127.0.0.1:9995'

[upstream.php]
type = "fastcgi"
params = { APP_ENV = "production", "X.Y" = "1", nested = { deep = true } }
deny = [
  "/conf/",
  "/data/",   # comment inside an array
]
index = """
[not.a.table]
not_a_key = 1
"""
front_controller = 'index.php'

[upstream."quoted name"]
type = "http"

[[route]]
prefix = "/a/"

[[route]]
prefix = "/b/"
upstream = "php"

[route.extra]
late = 1
`;

test('scanKeyLines maps headers, keys, arrays of tables, inline tables and array elements to lines', () => {
  const lines = scanKeyLines(TEXT);
  const expect: [string, string][] = [
    ['upstream.early.url', 'upstream.early.url ='],
    ['upstream.early', 'upstream.early.url ='],
    ['gateway', '[gateway]'],
    ['gateway.workers', 'workers = "auto"'],
    ['gateway.drain_timeout', 'drain_timeout'],
    ['handler[0].send_spec', 'tcp://127.0.0.1:9997'],
    ['handler[1].send_spec', 'tcp://127.0.0.1:9995'],
    ['upstream.php', '[upstream.php]'],
    ['upstream.php.params', 'params = {'],
    ['upstream.php.params.APP_ENV', 'params = {'],
    ['upstream.php.params.X.Y', 'params = {'],
    ['upstream.php.params.nested.deep', 'params = {'],
    ['upstream.php.deny', 'deny = ['],
    ['upstream.php.deny[0]', '"/conf/"'],
    ['upstream.php.deny[1]', '"/data/"'],
    ['upstream.php.index', 'index = """'],
    ['upstream.php.front_controller', 'front_controller'],
    ['upstream.quoted name', '[upstream."quoted name"]'],
    ['upstream.quoted name.type', 'type = "http"'],
    ['route[0]', 'prefix = "/a/"'],
    ['route[1].prefix', 'prefix = "/b/"'],
    ['route[1].upstream', 'upstream = "php"'],
    ['route[1].extra.late', 'late = 1'],
  ];
  for (const [key, needle] of expect) {
    // route[0] is the header line, one above its first key.
    const want = key === 'route[0]' ? lineOf(TEXT, needle) - 1 : lineOf(TEXT, needle);
    assert.equal(lines.lineOf(key), want, key);
  }
});

test('text inside strings and comments is never taken for keys or headers', () => {
  const lines = scanKeyLines(TEXT);
  for (const key of ['fake', 'fake.header', 'key', 'not', 'not.a.table', 'upstream.php.not_a_key', 'not_a_key']) {
    assert.equal(lines.lineOf(key), undefined, key);
  }
});

test('lineFor falls back to the nearest written ancestor', () => {
  const lines = scanKeyLines(TEXT);
  assert.equal(lines.lineFor('route[0].upstream'), lineOf(TEXT, 'prefix = "/a/"') - 1);
  assert.equal(lines.lineFor('upstream.php.max_connections'), lineOf(TEXT, '[upstream.php]'));
  assert.equal(lines.lineFor('handler[1].recv_spec'), lineOf(TEXT, 'tcp://127.0.0.1:9995') - 1);
  assert.equal(lines.lineFor('admin.listen'), undefined);
});

test('parentPath climbs keys and array indexes', () => {
  assert.equal(parentPath('route[2].upstream'), 'route[2]');
  assert.equal(parentPath('route[2]'), 'route');
  assert.equal(parentPath('route'), null);
  assert.equal(parentPath('upstream.php.deny[1]'), 'upstream.php.deny');
});

test('arrays of tables nested in arrays of tables restart their index per parent element', () => {
  const text = '[[a]]\n[[a.b]]\nx = 1\n[[a.b]]\nx = 2\n[[a]]\n[[a.b]]\nx = 3\n';
  const lines = scanKeyLines(text);
  assert.equal(lines.lineOf('a[0].b[0].x'), 3);
  assert.equal(lines.lineOf('a[0].b[1].x'), 5);
  assert.equal(lines.lineOf('a[1].b[0].x'), 8);
});

test('CRLF line endings and a closing triple quote with extra quotes keep lines right', () => {
  const text = 'a = """x""""\r\n[t]\r\nk = 1\r\n';
  const lines = scanKeyLines(text);
  assert.equal(lines.lineOf('t'), 2);
  assert.equal(lines.lineOf('t.k'), 3);
});
