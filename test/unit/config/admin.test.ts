/** [admin]: loopback by default; elsewhere only with allow_remote and a bearer token. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseConfigText } from '../../../src/config/load.js';
import { isLoopbackHost } from '../../../src/config/read-admin.js';
import { BASE, lineOf, tempDir } from './helpers.js';

const TOKEN = 'abcdefghijklmnop0123';

function load(admin: string) {
  const text = BASE + `\n[admin]\n${admin}\n`;
  return { text, ...parseConfigText(text, '/etc/m2gw/gw.toml') };
}

test('isLoopbackHost', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '[::1]', '::1', '[::ffff:127.0.0.1]']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '10.0.0.1', '[::]', '::', 'example.com', '128.0.0.1', '[::ffff:10.0.0.1]', '']) assert.ok(!isLoopbackHost(h), h);
});

test('loopback listen: no token needed; a token may be set', () => {
  const plain = load('listen = "127.0.0.1:9180"');
  assert.deepEqual(plain.config?.admin, { listen: '127.0.0.1:9180', allowRemote: false, token: null });
  const withToken = load(`listen = "[::1]:9180"\ntoken = "${TOKEN}"`);
  assert.deepEqual(withToken.config?.admin, { listen: '[::1]:9180', allowRemote: false, token: TOKEN });
});

test('a non-loopback listen is refused without allow_remote', () => {
  for (const listen of ['0.0.0.0:9180', '[::]:9180', '10.1.2.3:9180', 'admin.example.com:9180']) {
    const r = load(`listen = "${listen}"\ntoken = "${TOKEN}"`);
    assert.equal(r.config, null, listen);
    const p = r.problems.find((x) => x.key === 'admin.listen');
    assert.ok(p, listen);
    assert.match(p.message, /not a loopback address.*allow_remote = true/);
    assert.equal(p.line, lineOf(r.text, 'listen = '));
  }
});

test('allow_remote needs a token of at least 16 characters, from token or token_file (not both)', () => {
  const none = load('listen = "0.0.0.0:9180"\nallow_remote = true');
  assert.equal(none.config, null);
  assert.match(none.problems.find((x) => x.key === 'admin.allow_remote')?.message ?? '', /needs a bearer token/);

  const short = load('listen = "0.0.0.0:9180"\nallow_remote = true\ntoken = "short"');
  assert.equal(short.config, null);
  assert.match(short.problems.find((x) => x.key === 'admin.token')?.message ?? '', /at least 16/);

  const spaced = load(`listen = "0.0.0.0:9180"\nallow_remote = true\ntoken = "${TOKEN} x"`);
  assert.equal(spaced.config, null);

  const ok = load(`listen = "0.0.0.0:9180"\nallow_remote = true\ntoken = "${TOKEN}"`);
  assert.deepEqual(ok.config?.admin, { listen: '0.0.0.0:9180', allowRemote: true, token: TOKEN });

  const dir = tempDir();
  const file = path.join(dir, 'admin.token');
  fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
  const fromFile = load(`listen = "0.0.0.0:9180"\nallow_remote = true\ntoken_file = "${file}"`);
  assert.deepEqual(fromFile.config?.admin, { listen: '0.0.0.0:9180', allowRemote: true, token: TOKEN });
  assert.deepEqual(fromFile.problems, []);

  fs.chmodSync(file, 0o644);
  const readable = load(`listen = "0.0.0.0:9180"\nallow_remote = true\ntoken_file = "${file}"`);
  assert.ok(readable.config);
  assert.match(readable.problems.find((x) => x.key === 'admin.token_file')?.message ?? '', /readable by every user/);

  const both = load(`listen = "0.0.0.0:9180"\nallow_remote = true\ntoken = "${TOKEN}"\ntoken_file = "${file}"`);
  assert.equal(both.config, null);
  const missing = load(`listen = "0.0.0.0:9180"\nallow_remote = true\ntoken_file = "${path.join(dir, 'nope')}"`);
  assert.equal(missing.config, null);
  assert.match(missing.problems.find((x) => x.key === 'admin.token_file')?.message ?? '', /ENOENT/);
});
