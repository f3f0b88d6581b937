/** The config loader: it reports problems, it never throws, whatever the text. */
import { parseConfigText } from '../../src/config/load.js';
import { filesIn } from '../fixtures.js';
import type { FuzzTarget } from '../core.js';
import type { Rng } from '../mutate.js';

const BASE = `[[handler]]
send_spec = "tcp://127.0.0.1:9997"
recv_spec = "tcp://127.0.0.1:9996"

[upstream.web]
type = "http"
url = "http://127.0.0.1:3000"

[upstream.php]
type = "fastcgi"
address = "127.0.0.1:9000"
document_root = "/srv/www"
params = { APP_ENV = "prod" }
deny = ["/private", "/.git"]

[[route]]
prefix = "/"
upstream = "web"

[[route]]
prefix = "/php/"
upstream = "php"
max_body = "1MiB"
`;

const dottedHeader = (input: Buffer, r: Rng): Buffer => {
  const segs = Array.from({ length: r.pick([17, 100, 1000]) }, (_, i) => `s${i}`).join('.');
  return Buffer.concat([input, Buffer.from(`\n[${segs}]\nk = 1\n`)]);
};

export const configTarget: FuzzTarget = {
  name: 'config',
  seeds: () => [...filesIn('config', (n) => n.endsWith('.toml')), Buffer.from(BASE)],
  run(input) {
    parseConfigText(input.toString('utf8'), '/etc/m2gw/gw.toml');
  },
  expected: [],
  // Configs are read once, from the operator: ~1 µs per byte is fine, so inputs stay at most 16 KiB
  // (real files are a few KiB) and the budget is 20 ms. The scaling shapes cover larger texts.
  budgetMs: 20,
  maxInputBytes: 16 * 1024,
  mutators: [dottedHeader],
  runShape: (text) => parseConfigText(text as string, '/etc/m2gw/gw.toml'),
  shapes: [
    { name: 'long dotted table header', make: (n) => BASE + '[' + Array<string>(Math.floor(n / 2)).fill('a').join('.') + ']\n' },
    { name: 'long dotted key', make: (n) => 'a' + '.a'.repeat(Math.floor(n / 2)) + ' = 1\n' + BASE },
    { name: 'long unknown key', make: (n) => BASE + '[gateway]\n' + 'w'.repeat(n) + ' = 1\n' },
    { name: 'many unknown keys', make: (n) => BASE + '[gateway]\n' + Array.from({ length: Math.floor(n / 12) }, (_, i) => `k${i} = 1`).join('\n') + '\n' },
    { name: 'many routes to a missing upstream', make: (n) => BASE + `[[route]]\nprefix = "/x/"\nupstream = "nope"\n`.repeat(Math.floor(n / 40)) },
    { name: 'long string value', make: (n) => BASE + `[gateway]\npid_file = "${'p'.repeat(n)}"\n` },
  ],
};
