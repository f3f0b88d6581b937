import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, loadConfigOrThrow, parseConfigText } from '../../../src/config/load.js';
import { DEFAULTS, type Config } from '../../../src/config/schema.js';
import { ConfigError, formatProblems } from '../../../src/errors.js';
import { BASE, lineOf, tempDir } from './helpers.js';

const FULL = `[gateway]
workers = "auto"
spare_worker = false
drain_timeout = "45s"
pid_file = "run/m2gw.pid"
max_in_flight = 500
max_websockets = 20

[admin]
listen = "127.0.0.1:9180"

[log]
level = "debug"
format = "text"
file = "log/m2gw.log"
access_log = false

[[handler]]
send_spec = "tcp://127.0.0.1:9997"
recv_spec = "tcp://127.0.0.1:9996"
recv_ident = "m2gw-a"
chroot = "m2"

[[handler]]
send_spec = "ipc:///tmp/m2-send"
recv_spec = "ipc:///tmp/m2-recv"

[upstream.rails]
type = "http"
urls = ["http://127.0.0.1:3000", "https://app.internal:3443/base"]
connections = 16
connect_timeout = "250ms"
response_timeout = "2m"
idle_timeout = "1.5s"
keepalive_timeout = 2
fail_timeout = "0s"
retries = 0
websocket_ping_interval = "5s"
websocket_max_message = "1MiB"
websocket_idle_timeout = "10m"

[upstream.php]
type = "fastcgi"
address = "unix:php.sock"
document_root = "public"
index = "app.php"
front_controller = "app.php"
serve_static = true
deny = ["/conf/", "/data/"]
max_connections = 4
pipeline = 2
queue_timeout = "1s"
queue_size = 10
connect_timeout = "2s"
response_timeout = "30s"
idle_timeout = "15s"
params = { APP_ENV = "production", EMPTY = "" }
script_extension = ".php8"

[upstream.tcpphp]
type = "fastcgi"
address = "127.0.0.1:9000"
document_root = "/srv/other"

[[route]]
prefix = "/rails/"
host = "Example.COM"
upstream = "rails"
strip_prefix = true
max_body = "10KiB"
preserve_host = false
websocket = false

[[route]]
prefix = "/"
upstream = "php"

[[route]]
prefix = "/other/"
upstream = "tcpphp"
max_body = 2048
`;

test('a full config reads every key: durations in ms, sizes in bytes, relative paths resolved', () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'public'));
  const file = path.join(dir, 'gw.toml');
  const { config, problems } = parseConfigText(FULL, file);
  // /srv/other does not exist here: the only expected problem is that warning.
  assert.deepEqual(
    problems.map((p) => [p.key, p.severity]),
    [['upstream.tcpphp.document_root', 'warning']],
  );
  const expected: Config = {
    file,
    handlers: [
      { sendSpec: 'tcp://127.0.0.1:9997', recvSpec: 'tcp://127.0.0.1:9996', recvIdent: 'm2gw-a', chroot: path.join(dir, 'm2'), uploadTempStore: '/tmp/upload.XXXXXX', keepAliveMs: 20_000, sendTimeoutMs: 60_000 },
      { sendSpec: 'ipc:///tmp/m2-send', recvSpec: 'ipc:///tmp/m2-recv', recvIdent: '', chroot: '/', uploadTempStore: '/tmp/upload.XXXXXX', keepAliveMs: 20_000, sendTimeoutMs: 60_000 },
    ],
    upstreams: {
      rails: {
        type: 'http',
        name: 'rails',
        urls: ['http://127.0.0.1:3000', 'https://app.internal:3443/base'],
        connections: 16,
        connectTimeoutMs: 250,
        responseTimeoutMs: 120_000,
        idleTimeoutMs: 1_500,
        keepAliveTimeoutMs: 2_000,
        failTimeoutMs: 0,
        retries: 0,
        websocketPingIntervalMs: 5_000,
        websocketMaxMessageBytes: 1_048_576,
        websocketIdleTimeoutMs: 600_000,
      },
      php: {
        type: 'fastcgi',
        name: 'php',
        address: `unix:${path.join(dir, 'php.sock')}`,
        documentRoot: path.join(dir, 'public'),
        index: 'app.php',
        frontController: 'app.php',
        serveStatic: true,
        deny: ['/conf/', '/data/'],
        maxConnections: 4,
        pipeline: 2,
        queueTimeoutMs: 1_000,
        queueSize: 10,
        retries: 1,
        connectTimeoutMs: 2_000,
        responseTimeoutMs: 30_000,
        idleTimeoutMs: 15_000,
        params: { APP_ENV: 'production', EMPTY: '' },
        scriptExtension: '.php8',
      },
      tcpphp: {
        type: 'fastcgi',
        name: 'tcpphp',
        address: '127.0.0.1:9000',
        documentRoot: '/srv/other',
        index: 'index.php',
        frontController: null,
        serveStatic: false,
        deny: [],
        maxConnections: 8,
        pipeline: 4,
        queueTimeoutMs: 5_000,
        queueSize: 1024,
        retries: 1,
        connectTimeoutMs: 5_000,
        responseTimeoutMs: 60_000,
        idleTimeoutMs: 60_000,
        params: {},
        scriptExtension: '.php',
      },
    },
    routes: [
      { prefix: '/rails/', host: 'example.com', upstream: 'rails', stripPrefix: true, maxBodyBytes: 10_240, preserveHost: false, websocket: false },
      { prefix: '/', host: null, upstream: 'php', stripPrefix: false, maxBodyBytes: 104_857_600, preserveHost: true, websocket: true },
      { prefix: '/other/', host: null, upstream: 'tcpphp', stripPrefix: false, maxBodyBytes: 2048, preserveHost: true, websocket: true },
    ],
    gateway: { workers: 'auto', spareWorker: false, drainTimeoutMs: 45_000, pidFile: path.join(dir, 'run/m2gw.pid'), maxInFlight: 500, maxWebsockets: 20 },
    admin: { listen: '127.0.0.1:9180', allowRemote: false, token: null },
    log: { level: 'debug', format: 'text', file: path.join(dir, 'log/m2gw.log'), accessLog: false },
  };
  assert.deepEqual(config, expected);
});

test('a minimal config gets every default from schema.ts', () => {
  const { config, problems } = parseConfigText(BASE, '/etc/m2gw/gw.toml');
  assert.deepEqual(problems, []);
  assert.ok(config);
  assert.equal(config.file, '/etc/m2gw/gw.toml');
  assert.deepEqual(config.gateway, { ...DEFAULTS.gateway });
  assert.deepEqual(config.log, { ...DEFAULTS.log });
  assert.equal(config.admin, null);
  assert.deepEqual(config.handlers[0], {
    sendSpec: 'tcp://127.0.0.1:9997',
    recvSpec: 'tcp://127.0.0.1:9996',
    recvIdent: DEFAULTS.handler.recvIdent,
    chroot: DEFAULTS.handler.chroot,
    uploadTempStore: DEFAULTS.handler.uploadTempStore,
    keepAliveMs: DEFAULTS.handler.keepAliveMs,
    sendTimeoutMs: DEFAULTS.handler.sendTimeoutMs,
  });
  assert.deepEqual(config.upstreams.web, { type: 'http', name: 'web', urls: ['http://127.0.0.1:3000'], ...DEFAULTS.http });
  assert.deepEqual(config.routes, [{ prefix: '/', host: null, upstream: 'web', ...DEFAULTS.route }]);
  // The documented defaults, spelled out once so a silent change to DEFAULTS shows up here.
  assert.equal(config.routes[0]?.maxBodyBytes, 100 * 1024 * 1024);
  assert.equal(config.gateway.drainTimeoutMs, 30_000);
});

test('a relative config file name becomes an absolute Config.file', () => {
  const { config } = parseConfigText(BASE, 'conf/gw.toml');
  assert.equal(config?.file, path.resolve('conf/gw.toml'));
});

test('the config is deeply frozen', () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'public'));
  const { config } = parseConfigText(FULL, path.join(dir, 'gw.toml'));
  assert.ok(config);
  const php = config.upstreams.php;
  assert.ok(php?.type === 'fastcgi');
  for (const obj of [config, config.handlers, config.handlers[0], config.upstreams, php, php.deny, php.params, config.routes, config.routes[0], config.gateway, config.log, config.admin]) {
    assert.ok(Object.isFrozen(obj));
  }
  assert.throws(() => {
    (config.gateway as { maxInFlight: number }).maxInFlight = 1;
  }, TypeError);
  assert.throws(() => (php.deny as string[]).push('/x/'), TypeError);
  // Defaults handed out must not have been frozen along with a config.
  assert.ok(!Object.isFrozen(DEFAULTS.fastcgi.deny));
});

test('loadConfig reads the file; a missing file is one problem', () => {
  const dir = tempDir();
  const file = path.join(dir, 'gw.toml');
  fs.writeFileSync(file, BASE);
  const ok = loadConfig(file);
  assert.equal(ok.config?.upstreams.web?.type, 'http');
  const missing = loadConfig(path.join(dir, 'nope.toml'));
  assert.equal(missing.config, null);
  assert.equal(missing.problems.length, 1);
  assert.match(missing.problems[0]?.message ?? '', /nope\.toml: file not found/);
});

test('loadConfigOrThrow throws a ConfigError carrying every error', () => {
  const dir = tempDir();
  const file = path.join(dir, 'gw.toml');
  fs.writeFileSync(file, BASE.replace('upstream = "web"', 'upstream = "nope"') + '\n[log]\nlevel = "loud"\n');
  assert.throws(
    () => loadConfigOrThrow(file),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, 'M2GW_CONFIG');
      // upstream.web is now unused, but that warning is not the daemon's reason to refuse.
      assert.deepEqual(err.problems.map((p) => p.key), ['route[0].upstream', 'log.level']);
      assert.match(err.message, /route\[0\]\.upstream: no upstream named "nope"/);
      return true;
    },
  );
  fs.writeFileSync(file, BASE);
  assert.equal(loadConfigOrThrow(file).routes.length, 1);
});

test('formatProblems prints file:line: key: message, one per line, warnings marked', () => {
  const text = BASE + '\n[upstream.spare]\ntype = "http"\nurl = "http://127.0.0.1:4000"\n\n[log]\nlevel = "loud"\n';
  const { problems } = parseConfigText(text, 'gw.toml');
  const out = formatProblems('gw.toml', problems);
  assert.equal(
    out,
    [
      `gw.toml:${lineOf(text, '[upstream.spare]')}: warning: upstream.spare: no [[route]] uses this upstream`,
      `gw.toml:${lineOf(text, 'level = "loud"')}: log.level: must be one of "error", "warn", "info", "debug", got string "loud"`,
    ].join('\n'),
  );
  assert.equal(formatProblems('gw.toml', [{ key: 'handler', message: 'x' }]), 'gw.toml: handler: x');
});
