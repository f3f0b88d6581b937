import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, parseConfigText } from '../../../src/config/load.js';
import { BASE, lineOf, problemAt, repoRoot, tempDir } from './helpers.js';

/** A config with one fastcgi upstream (routed, existing document_root) plus `extra` lines in its table. */
function fastcgiConfig(dir: string, extra: string): string {
  fs.mkdirSync(path.join(dir, 'public'), { recursive: true });
  return `${BASE}
[upstream.php]
type = "fastcgi"
address = "127.0.0.1:9000"
document_root = "public"
${extra}

[[route]]
prefix = "/php/"
upstream = "php"
`;
}

function poolFile(dir: string, body: string): string {
  const file = path.join(dir, 'www.conf');
  fs.writeFileSync(file, body);
  return file;
}

const POOL = `[www]
user = www-data
listen = /run/php/php8.2-fpm.sock
; pm.max_children = 100   (a comment, must be ignored)
pm = dynamic
pm.max_children = 4
pm.start_servers = 2
`;

test('max_connections above the pool\'s pm.max_children warns, on the max_connections line', () => {
  const dir = tempDir();
  const pool = poolFile(dir, POOL);
  const text = fastcgiConfig(dir, `max_connections = 8\nfpm_pool_config = "${pool}"`);
  const { config, problems } = parseConfigText(text, path.join(dir, 'gw.toml'));
  assert.ok(config, 'a warning must not withhold the config');
  const p = problemAt(problems, 'upstream.php.max_connections');
  assert.equal(p.severity, 'warning');
  assert.equal(p.line, lineOf(text, 'max_connections = 8'));
  assert.match(p.message, /max_connections = 8 but .*www\.conf has pm\.max_children = 4/);
  assert.match(p.message, /a held keep-alive connection pins a PHP-FPM child: keep max_connections ≤ pm\.max_children/);
  assert.equal(problems.length, 1);
});

test('max_connections within pm.max_children gives no warning', () => {
  const dir = tempDir();
  const pool = poolFile(dir, POOL);
  const text = fastcgiConfig(dir, `max_connections = 4\nfpm_pool_config = "${pool}"`);
  assert.deepEqual(parseConfigText(text, path.join(dir, 'gw.toml')).problems, []);
});

test('a relative fpm_pool_config resolves against the config dir; the default max_connections is compared too', () => {
  const dir = tempDir();
  poolFile(dir, POOL);
  const text = fastcgiConfig(dir, 'fpm_pool_config = "www.conf"');
  const { problems } = parseConfigText(text, path.join(dir, 'gw.toml'));
  // Nothing names max_connections, so the warning sits on the pool line.
  const p = problemAt(problems, 'upstream.php.fpm_pool_config');
  assert.equal(p.severity, 'warning');
  assert.equal(p.line, lineOf(text, 'fpm_pool_config'));
  assert.match(p.message, /max_connections = 8 but .*pm\.max_children = 4/);
});

test('pipelining does not excuse more connections than children', () => {
  const dir = tempDir();
  const pool = poolFile(dir, POOL);
  const text = fastcgiConfig(dir, `max_connections = 6\npipeline = 4\nfpm_pool_config = "${pool}"`);
  const p = problemAt(parseConfigText(text, path.join(dir, 'gw.toml')).problems, 'upstream.php.max_connections');
  assert.equal(p.severity, 'warning');
  assert.match(p.message, /pins a PHP-FPM child.*pipeline = 4/);
});

test('a pool file that is missing or has no usable pm.max_children is a warning', () => {
  const dir = tempDir();
  const missing = fastcgiConfig(dir, `fpm_pool_config = "${path.join(dir, 'nope.conf')}"`);
  const p1 = problemAt(parseConfigText(missing, path.join(dir, 'gw.toml')).problems, 'upstream.php.fpm_pool_config');
  assert.equal(p1.severity, 'warning');
  assert.match(p1.message, /nope\.conf does not exist/);

  const noValue = poolFile(dir, '[www]\npm = ondemand\n');
  const text = fastcgiConfig(dir, `fpm_pool_config = "${noValue}"`);
  const p2 = problemAt(parseConfigText(text, path.join(dir, 'gw.toml')).problems, 'upstream.php.fpm_pool_config');
  assert.match(p2.message, /has no pm\.max_children/);
});

test('a document_root that does not exist is a warning, not an error', () => {
  const text = BASE + '\n[upstream.php]\ntype = "fastcgi"\naddress = "127.0.0.1:9000"\ndocument_root = "/nonexistent/m2gw/public"\n\n[[route]]\nprefix = "/p/"\nupstream = "php"\n';
  const { config, problems } = parseConfigText(text, '/etc/m2gw/gw.toml');
  assert.ok(config);
  const p = problemAt(problems, 'upstream.php.document_root');
  assert.equal(p.severity, 'warning');
  assert.equal(p.line, lineOf(text, 'document_root'));
  assert.match(p.message, /\/nonexistent\/m2gw\/public does not exist/);
});

test('an upstream no route uses is a warning on its header', () => {
  const text = BASE + '\n[upstream.spare]\ntype = "http"\nurl = "http://127.0.0.1:4000"\n';
  const { config, problems } = parseConfigText(text, '/etc/m2gw/gw.toml');
  assert.ok(config);
  const p = problemAt(problems, 'upstream.spare');
  assert.equal(p.severity, 'warning');
  assert.equal(p.line, lineOf(text, '[upstream.spare]'));
  assert.match(p.message, /no \[\[route\]\] uses this upstream/);
});

test('the example config/gw.toml loads with no errors', () => {
  const file = path.join(repoRoot(), 'config', 'gw.toml');
  const { config, problems } = loadConfig(file);
  assert.deepEqual(problems.filter((p) => p.severity !== 'warning'), []);
  assert.ok(config);
  assert.ok(config.handlers.length >= 1);
  assert.ok(config.routes.length >= 1);
  // It shows both upstream kinds, so every key of both has been through validation.
  const types = Object.values(config.upstreams).map((u) => u.type).sort();
  assert.deepEqual(types, ['fastcgi', 'http']);
});

test('the example gw.toml and mongrel2.conf agree on the handler endpoints', () => {
  const root = repoRoot();
  const conf = fs.readFileSync(path.join(root, 'config', 'mongrel2.conf'), 'utf8');
  const { config } = loadConfig(path.join(root, 'config', 'gw.toml'));
  const [handler] = config?.handlers ?? [];
  assert.ok(handler);
  assert.match(conf, new RegExp(`send_spec='${handler.sendSpec}'`));
  assert.match(conf, new RegExp(`recv_spec='${handler.recvSpec}'`));
  // Mongrel2's chroot "." is config/, so uploads resolve under the same directory.
  assert.match(conf, /chroot="\."/);
  assert.equal(handler.chroot, path.join(root, 'config'));
});

test('fastcgi upstreams sharing one PHP-FPM address are warned about together', () => {
  const text = `[[handler]]\nsend_spec = "tcp://127.0.0.1:1"\nrecv_spec = "tcp://127.0.0.1:2"\n` +
    `[upstream.a]\ntype = "fastcgi"\naddress = "127.0.0.1:9000"\ndocument_root = "/"\nmax_connections = 2\n` +
    `[upstream.b]\ntype = "fastcgi"\naddress = "127.0.0.1:9000"\ndocument_root = "/"\nmax_connections = 3\n` +
    `[[route]]\nprefix = "/a/"\nupstream = "a"\n[[route]]\nprefix = "/b/"\nupstream = "b"\n`;
  const { config, problems } = parseConfigText(text, '/tmp/gw.toml');
  assert.ok(config, 'a warning does not fail the load');
  const shared = problems.filter((p) => p.message.includes('share the PHP-FPM pool'));
  assert.equal(shared.length, 1);
  assert.equal(shared[0]!.severity, 'warning');
  assert.match(shared[0]!.message, /up to 5 connections/);
  assert.equal(shared[0]!.key, 'upstream.b');
});
