import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../../src/config/load.js';
import { BASE, lineOf } from './helpers.js';

test('every problem in a file is reported at once, in file order', () => {
  const text = `[gateway]
workers = -2
drain_timeout = "soon"

[log]
level = "loud"

[[handler]]
send_spec = "tcp://127.0.0.1:9997"

[upstream.php]
type = "fastcgi"
address = "127.0.0.1:9000"
document_root = "/"
max_connections = 0
unknown_thing = 1

[upstream.rails]
type = "http"
url = "gopher://x"

[[route]]
prefix = "/"
upstream = "nowhere"

[[route]]
prefix = "/"
upstream = "php"
`;
  const { config, problems } = parseConfigText(text, 'gw.toml');
  assert.equal(config, null);
  const expected: [string, string][] = [
    ['gateway.workers', 'workers = -2'],
    ['gateway.drain_timeout', 'drain_timeout'],
    ['log.level', 'level = "loud"'],
    ['handler[0].recv_spec', '[[handler]]'],
    ['upstream.php.max_connections', 'max_connections = 0'],
    ['upstream.php.unknown_thing', 'unknown_thing'],
    ['upstream.rails.url', 'gopher://'],
    ['route[0].upstream', 'upstream = "nowhere"'],
  ];
  assert.deepEqual(
    problems.filter((p) => p.severity === 'error').map((p) => [p.key, p.line]),
    expected.map(([key, needle]) => [key, lineOf(text, needle)]),
  );
});

test('a TOML syntax error becomes one problem on its line', () => {
  const text = BASE + '\n[gateway]\nworkers = \n';
  const { config, problems } = parseConfigText(text, 'gw.toml');
  assert.equal(config, null);
  assert.equal(problems.length, 1);
  const [p] = problems;
  assert.equal(p?.line, lineOf(text, 'workers = '));
  assert.equal(p?.severity, 'error');
  assert.match(p?.message ?? '', /^TOML syntax error: .+ \(column \d+\)$/);
});

test('a redefined table is a syntax problem on the second definition', () => {
  const text = BASE + '\n[log]\nlevel = "info"\n\n[log]\nformat = "text"\n';
  const { problems } = parseConfigText(text, 'gw.toml');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.line, lineOf(text, 'format = "text"') - 1);
});
