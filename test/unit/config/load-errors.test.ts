import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../../src/config/load.js';
import { BASE, lineOf, problemAt } from './helpers.js';

interface Case {
  name: string;
  text: string;
  key: string;
  /** Text on the line the problem must point at; null = no line (nothing to point at). */
  at: string | null;
  message: RegExp;
}

const FCGI = `
[upstream.php]
type = "fastcgi"
address = "127.0.0.1:9000"
document_root = "/"
`;

const cases: Case[] = [
  {
    name: 'unknown key in a known table, with a suggestion',
    text: BASE + '\n[gateway]\nworkerz = 2\n',
    key: 'gateway.workerz',
    at: 'workerz = 2',
    message: /unknown key in \[gateway\] \(did you mean "workers"\?\)/,
  },
  {
    name: 'camelCase key suggests its snake_case form',
    text: BASE + FCGI + 'maxConnections = 2\n',
    key: 'upstream.php.maxConnections',
    at: 'maxConnections = 2',
    message: /did you mean "max_connections"/,
  },
  {
    name: 'unknown key with nothing close gets no suggestion',
    text: BASE + '\n[log]\ncolour = true\n',
    key: 'log.colour',
    at: 'colour = true',
    message: /^unknown key in \[log\]$/,
  },
  {
    name: 'unknown top-level table',
    text: BASE + '\n[[routes]]\nprefix = "/x/"\n',
    key: 'routes',
    at: '[[routes]]',
    message: /unknown key at the top level \(did you mean "route"\?\)/,
  },
  {
    name: 'a fastcgi key in an http upstream',
    text: BASE.replace('url = "http://127.0.0.1:3000"', 'url = "http://127.0.0.1:3000"\naddress = "127.0.0.1:9000"'),
    key: 'upstream.web.address',
    at: 'address = ',
    message: /is a fastcgi setting; this upstream has type = "http"/,
  },
  {
    name: 'wrong type: string for an integer',
    text: BASE + '\n[gateway]\nmax_in_flight = "lots"\n',
    key: 'gateway.max_in_flight',
    at: 'max_in_flight',
    message: /must be an integer >= 1, got string "lots"/,
  },
  {
    name: 'wrong type: string for a boolean',
    text: BASE + '\n[log]\naccess_log = "yes"\n',
    key: 'log.access_log',
    at: 'access_log',
    message: /must be true or false, got string "yes"/,
  },
  {
    name: 'wrong type: a number for spare_worker',
    text: BASE + '\n[gateway]\nspare_worker = 0\n',
    key: 'gateway.spare_worker',
    at: 'spare_worker',
    message: /must be true or false, got integer 0/,
  },
  {
    name: 'wrong type: a section that is not a table',
    text: 'gateway = 5\n' + BASE,
    key: 'gateway',
    at: 'gateway = 5',
    message: /must be a table \(\[gateway\]\), got integer 5/,
  },
  {
    name: 'wrong type: [handler] instead of [[handler]]',
    text: BASE.replace('[[handler]]', '[handler]'),
    key: 'handler',
    at: '[handler]',
    message: /must be an array of tables: write each one under \[\[handler\]\]/,
  },
  {
    name: 'wrong type: params value not a string',
    text: BASE + FCGI + 'params = { APP_DEBUG = 0 }\n',
    key: 'upstream.php.params.APP_DEBUG',
    at: 'params = {',
    message: /must be a string \(quote it: "0"\), got integer 0/,
  },
  {
    name: 'wrong type: deny element',
    text: BASE + FCGI + 'deny = [\n  "/conf/",\n  42,\n]\n',
    key: 'upstream.php.deny[1]',
    at: '  42,',
    message: /must be a string, got integer 42/,
  },
  {
    name: 'handler without recv_spec points at its header',
    text: BASE.replace('recv_spec = "tcp://127.0.0.1:9996"\n', ''),
    key: 'handler[0].recv_spec',
    at: '[[handler]]',
    message: /is required: Mongrel2's Handler recv_spec, e.g. "tcp:\/\/127.0.0.1:9996"/,
  },
  {
    name: 'no handler at all',
    text: BASE.replace(/\[\[handler\]\][^[]*/, ''),
    key: 'handler',
    at: null,
    message: /at least one \[\[handler\]\] is required/,
  },
  {
    name: 'http upstream without url or urls',
    text: BASE.replace('url = "http://127.0.0.1:3000"\n', ''),
    key: 'upstream.web.url',
    at: '[upstream.web]',
    message: /is required: the server's base URL/,
  },
  {
    name: 'http upstream with both url and urls',
    text: BASE.replace('url = "http://127.0.0.1:3000"', 'url = "http://127.0.0.1:3000"\nurls = ["http://127.0.0.1:3001"]'),
    key: 'upstream.web.urls',
    at: 'urls = [',
    message: /either url or urls, not both/,
  },
  {
    name: 'fastcgi upstream without address',
    text: BASE + FCGI.replace('address = "127.0.0.1:9000"\n', ''),
    key: 'upstream.php.address',
    at: '[upstream.php]',
    message: /is required: "host:port" or "unix:\/path/,
  },
  {
    name: 'fastcgi upstream without document_root',
    text: BASE + FCGI.replace('document_root = "/"\n', ''),
    key: 'upstream.php.document_root',
    at: '[upstream.php]',
    message: /is required: the directory PHP scripts are served from/,
  },
  {
    name: 'upstream without type',
    text: BASE.replace('type = "http"\n', ''),
    key: 'upstream.web.type',
    at: '[upstream.web]',
    message: /is required: "http" or "fastcgi"/,
  },
  {
    name: 'fastcgi address with a scheme',
    text: BASE + FCGI.replace('"127.0.0.1:9000"', '"tcp://127.0.0.1:9000"'),
    key: 'upstream.php.address',
    at: 'tcp://127.0.0.1:9000',
    message: /"host:port" or "unix:\/path" \(no scheme\)/,
  },
  {
    name: 'zmq spec without port',
    text: BASE.replace('"tcp://127.0.0.1:9997"', '"tcp://127.0.0.1"'),
    key: 'handler[0].send_spec',
    at: 'send_spec',
    message: /must be host:port.*in "tcp:\/\/127.0.0.1"/,
  },
  {
    name: 'zmq spec with a bad port',
    text: BASE.replace('"tcp://127.0.0.1:9996"', '"tcp://127.0.0.1:99999"'),
    key: 'handler[0].recv_spec',
    at: 'recv_spec',
    message: /port must be a number from 1 to 65535, got "99999"/,
  },
  {
    name: 'zmq spec with an unsupported transport',
    text: BASE.replace('"tcp://127.0.0.1:9997"', '"udp://127.0.0.1:9997"'),
    key: 'handler[0].send_spec',
    at: 'send_spec',
    message: /must be "tcp:\/\/host:port" or "ipc:\/\/path"/,
  },
  {
    name: 'zmq spec copied from Mongrel2 bind form',
    text: BASE.replace('"tcp://127.0.0.1:9997"', '"tcp://*:9997"'),
    key: 'handler[0].send_spec',
    at: 'send_spec',
    message: /"\*" is a bind address/,
  },
  {
    name: 'url with a non-http scheme',
    text: BASE.replace('"http://127.0.0.1:3000"', '"ftp://127.0.0.1:3000"'),
    key: 'upstream.web.url',
    at: 'ftp://',
    message: /must be an http:\/\/ or https:\/\/ URL/,
  },
  {
    name: 'url that is not a URL',
    text: BASE.replace('"http://127.0.0.1:3000"', '"127.0.0.1:3000"'),
    key: 'upstream.web.url',
    at: 'url = ',
    message: /is not a URL: "127.0.0.1:3000"/,
  },
  {
    name: 'one bad url in a multi-line urls array',
    text: BASE.replace('url = "http://127.0.0.1:3000"', 'urls = [\n  "http://127.0.0.1:3000",\n  "http://127.0.0.1:3001?x=1",\n]'),
    key: 'upstream.web.urls[1]',
    at: '3001?x=1',
    message: /must not have a query or fragment/,
  },
  {
    name: 'route to an unknown upstream',
    text: BASE + '\n[[route]]\nprefix = "/a/"\nupstream = "web"\n\n[[route]]\nprefix = "/b/"\nupstream = "wbe"\n',
    key: 'route[2].upstream',
    at: 'upstream = "wbe"',
    message: /no upstream named "wbe" \(defined: "web"\)/,
  },
  {
    name: 'duplicate route',
    text: BASE + '\n[[route]]\nprefix = "/" # again\nupstream = "web"\n',
    key: 'route[1].prefix',
    at: '# again',
    message: /duplicate route: route\[0\] already has prefix "\/" on any host/,
  },
  {
    name: 'duplicate route on the same host, case-insensitive',
    text: BASE + '\n[[route]]\nprefix = "/x/"\nhost = "a.example"\nupstream = "web"\n\n[[route]]\nprefix = "/x/" # dup\nhost = "A.Example"\nupstream = "web"\n',
    key: 'route[2].prefix',
    at: '# dup',
    message: /route\[1\] already has prefix "\/x\/" on host "a.example"/,
  },
  {
    name: 'route prefix not starting with /',
    text: BASE.replace('prefix = "/"', 'prefix = "app/"'),
    key: 'route[0].prefix',
    at: 'prefix = "app/"',
    message: /must start with "\/", got "app\/"/,
  },
  {
    name: 'workers = 0',
    text: BASE + '\n[gateway]\nworkers = 0\n',
    key: 'gateway.workers',
    at: 'workers = 0',
    message: /must be "auto" or an integer >= 1, got integer 0/,
  },
  {
    name: 'workers = "many"',
    text: BASE + '\n[gateway]\nworkers = "many"\n',
    key: 'gateway.workers',
    at: 'workers = "many"',
    message: /must be "auto" or an integer >= 1, got string "many"/,
  },
  {
    name: 'connections = 0',
    text: BASE.replace('type = "http"', 'type = "http"\nconnections = 0'),
    key: 'upstream.web.connections',
    at: 'connections = 0',
    message: /must be an integer >= 1, got 0/,
  },
  {
    name: 'negative retries',
    text: BASE.replace('type = "http"', 'type = "http"\nretries = -1'),
    key: 'upstream.web.retries',
    at: 'retries = -1',
    message: /must be an integer >= 0, got -1/,
  },
  {
    name: 'zero timeout',
    text: BASE.replace('type = "http"', 'type = "http"\nconnect_timeout = "0s"'),
    key: 'upstream.web.connect_timeout',
    at: 'connect_timeout',
    message: /must be longer than zero, got "0s"/,
  },
  {
    name: 'fractional integer',
    text: BASE + FCGI + 'max_connections = 2.5\n',
    key: 'upstream.php.max_connections',
    at: 'max_connections',
    message: /must be an integer >= 1, got number 2.5/,
  },
  {
    name: 'duration with an unknown unit',
    text: BASE + '\n[gateway]\ndrain_timeout = "5sec"\n',
    key: 'gateway.drain_timeout',
    at: 'drain_timeout',
    message: /unknown unit "sec" in "5sec"/,
  },
  {
    name: 'size with an unknown unit',
    text: BASE.replace('upstream = "web"', 'upstream = "web"\nmax_body = "10XB"'),
    key: 'route[0].max_body',
    at: 'max_body',
    message: /unknown unit "XB" in "10XB"/,
  },
  {
    name: 'negative size',
    text: BASE.replace('upstream = "web"', 'upstream = "web"\nmax_body = -5'),
    key: 'route[0].max_body',
    at: 'max_body',
    message: /must not be negative/,
  },
  {
    name: 'log level not in the enum',
    text: BASE + '\n[log]\nlevel = "verbose"\n',
    key: 'log.level',
    at: 'level = "verbose"',
    message: /must be one of "error", "warn", "info", "debug", got string "verbose"/,
  },
  {
    name: 'log format not in the enum',
    text: BASE + '\n[log]\nformat = "xml"\n',
    key: 'log.format',
    at: 'format = "xml"',
    message: /must be one of "json", "text"/,
  },
  {
    name: 'admin without listen',
    text: BASE + '\n[admin]\n',
    key: 'admin.listen',
    at: '[admin]',
    message: /is required/,
  },
  {
    name: 'admin listen without a port',
    text: BASE + '\n[admin]\nlisten = "localhost"\n',
    key: 'admin.listen',
    at: 'listen = ',
    message: /must be host:port/,
  },
  {
    name: 'same send_spec for two handlers',
    text: BASE + '\n[[handler]]\nsend_spec = "tcp://127.0.0.1:9997" # second\nrecv_spec = "tcp://127.0.0.1:9994"\n',
    key: 'handler[1].send_spec',
    at: '# second',
    message: /handler\[0\] already uses "tcp:\/\/127.0.0.1:9997"/,
  },
  {
    name: 'deny path not starting with /',
    text: BASE + FCGI + 'deny = ["conf/"]\n',
    key: 'upstream.php.deny[0]',
    at: 'deny = ',
    message: /must start with "\/"/,
  },
];

for (const c of cases) {
  test(`error: ${c.name}`, () => {
    const { config, problems } = parseConfigText(c.text, '/etc/m2gw/gw.toml');
    assert.equal(config, null, 'an error must withhold the config');
    const want = c.at === null ? undefined : lineOf(c.text, c.at);
    const p = problemAt(problems, c.key);
    assert.equal(p.severity, 'error');
    assert.match(p.message, c.message);
    assert.equal(p.line, want, `line of ${c.key}`);
    const errors = problems.filter((x) => x.severity === 'error');
    assert.equal(errors.length, 1, `only the one mistake is reported: ${JSON.stringify(errors)}`);
  });
}
