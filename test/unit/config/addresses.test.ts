import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHostPort, checkHttpUrl, checkZmqSpec, normaliseFastcgiAddress } from '../../../src/config/addresses.js';

test('host:port accepts names, IPv4 and bracketed IPv6, and rejects the rest', () => {
  for (const ok of ['127.0.0.1:9000', 'localhost:1', 'php-fpm.internal:65535', '[::1]:9180']) {
    assert.equal(checkHostPort(ok), null, ok);
  }
  const bad: [string, RegExp][] = [
    ['127.0.0.1', /must be host:port/],
    [':9000', /host is missing/],
    ['::1:9000', /in brackets: \[::1\]/],
    ['[zz]:80', /not an IPv6 address/],
    ['host_name:80', /not a host name/],
    ['a:0', /from 1 to 65535, got "0"/],
    ['a:x', /got "x"/],
  ];
  for (const [value, message] of bad) assert.match(checkHostPort(value) ?? '(accepted)', message, value);
  assert.equal(checkHostPort('127.0.0.1:0', { allowZeroPort: true }), null);
});

test('zmq specs: tcp://host:port and ipc://path only', () => {
  assert.equal(checkZmqSpec('tcp://127.0.0.1:9997'), null);
  assert.equal(checkZmqSpec('ipc://run/m2-send'), null);
  assert.match(checkZmqSpec('ipc://') ?? '', /needs a socket path/);
  assert.match(checkZmqSpec('ipc://@m2-send') ?? '', /abstract ipc sockets/);
  assert.match(checkZmqSpec('inproc://x') ?? '', /must be "tcp:\/\/host:port" or "ipc:\/\/path"/);
});

test('http urls: http/https with a host, no query, fragment or credentials', () => {
  assert.equal(checkHttpUrl('http://127.0.0.1:3000'), null);
  assert.equal(checkHttpUrl('https://app.example/base/'), null);
  assert.match(checkHttpUrl('http:/x') ?? '', /http:\/\/ or https:\/\//);
  assert.match(checkHttpUrl('ws://x') ?? '', /http:\/\/ or https:\/\//);
  assert.match(checkHttpUrl('http://x/#a') ?? '', /query or fragment/);
  assert.match(checkHttpUrl('http://u:p@x/') ?? '', /credentials/);
});

test('fastcgi addresses: host:port or unix:path, relative sockets resolved', () => {
  assert.deepEqual(normaliseFastcgiAddress('127.0.0.1:9000', '/etc/m2gw'), { address: '127.0.0.1:9000' });
  assert.deepEqual(normaliseFastcgiAddress('unix:/run/php.sock', '/etc/m2gw'), { address: 'unix:/run/php.sock' });
  assert.deepEqual(normaliseFastcgiAddress('unix:run/php.sock', '/etc/m2gw'), { address: 'unix:/etc/m2gw/run/php.sock' });
  assert.match(JSON.stringify(normaliseFastcgiAddress('/run/php.sock', '/')), /unix:\/run\/php.sock/);
  assert.ok('problem' in normaliseFastcgiAddress('unix:', '/'));
});
