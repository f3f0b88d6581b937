/** The loader on hostile shapes: linear time, readable problems, and Mongrel2-compatible idents. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../../src/config/load.js';
import { didYouMean } from '../../../src/config/problems.js';
import { BASE, lineOf } from './helpers.js';

/** CPU time of this process in ms: a loaded machine's waits do not count against the parser. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const t0 = cpuMs();
  const value = fn();
  return { value, ms: cpuMs() - t0 };
}

test('a 64 KiB dotted table header loads in linear time (recording each prefix was quadratic)', () => {
  // 16 KB took 0.7–2 s before; 64 KiB took 9 s in the key-line scanner alone.
  const header = '[' + Array.from({ length: 32 * 1024 }, () => 'a').join('.') + ']\nk = 1\n';
  const { value, ms } = timed(() => parseConfigText(BASE + header, 'gw.toml'));
  assert.ok(ms < 3000, `${ms.toFixed(0)} ms`);
  // Refused before the TOML parser builds 32k nested tables: no real config has 65 parts.
  assert.deepEqual(value.problems, [
    { key: '(toml)', line: lineOf(BASE + header, '[a.a.a'), message: 'a key or table name with 32768 dotted parts: at most 64', severity: 'error' },
  ]);
  // Up to the limit, the problem lands on the key as usual.
  const ok = '[' + Array.from({ length: 64 }, () => 'a').join('.') + ']\nk = 1\n';
  const deep = parseConfigText(BASE + ok, 'gw.toml');
  assert.equal(deep.problems.find((x) => x.key === 'a')?.line, lineOf(BASE + ok, '[a.a.a'));
});

test('a dotted key with 32k parts, and a quoted key full of dots, load in linear time', () => {
  const dotted = 'a' + '.a'.repeat(32 * 1024) + ' = 1\n';
  const quoted = `"${'a.'.repeat(32 * 1024)}" = 1\n`;
  for (const extra of [dotted, quoted]) {
    const { value, ms } = timed(() => parseConfigText(extra + BASE, 'gw.toml'));
    assert.ok(ms < 3000, `${ms.toFixed(0)} ms`);
    assert.equal(value.config, null);
    for (const p of value.problems) assert.ok(p.key.length <= 200 && p.message.length <= 500, `${p.key.length}/${p.message.length}`);
  }
});

test('a 4 MiB unknown key gets its problem at once, with no "did you mean" (it took 53 s)', () => {
  const key = 'w'.repeat(4 << 20);
  const text = BASE + `[gateway]\n${key} = 1\n`;
  const { value, ms } = timed(() => parseConfigText(text, 'gw.toml'));
  assert.ok(ms < 5000, `${ms.toFixed(0)} ms`);
  const p = value.problems.find((x) => x.key.startsWith('gateway.www'));
  assert.ok(p);
  assert.ok(p.key.length <= 200 && p.key.endsWith(`(${'gateway.'.length + key.length} chars)`), p.key.slice(-40));
  // Too long to be recorded by the key-line scanner: placed on its table's header.
  assert.equal(p.line, lineOf(text, '[gateway]'));
  assert.doesNotMatch(p.message, /did you mean/);
});

test('did-you-mean still helps with real typos, and skips long keys', () => {
  assert.equal(didYouMean('max_conections', ['max_connections', 'pipeline']), 'max_connections');
  assert.equal(didYouMean('maxConnections', ['max_connections']), 'max_connections');
  assert.equal(didYouMean('x'.repeat(65), ['x'.repeat(65)]), null);
  const t0 = cpuMs();
  assert.equal(didYouMean('q'.repeat(1 << 20), ['max_connections', 'pipeline', 'queue_size']), null);
  assert.ok(cpuMs() - t0 < 200);
});

test('10,000 routes naming a missing upstream among 10,000 upstreams: linear, few names listed', () => {
  let text = '[[handler]]\nsend_spec = "tcp://127.0.0.1:9997"\nrecv_spec = "tcp://127.0.0.1:9996"\n';
  for (let i = 0; i < 10_000; i++) text += `[upstream.u${i}]\ntype = "http"\nurl = "http://127.0.0.1:3000"\n`;
  for (let i = 0; i < 10_000; i++) text += `[[route]]\nprefix = "/r${i}/"\nupstream = "missing"\n`;
  const { value, ms } = timed(() => parseConfigText(text, 'gw.toml'));
  assert.ok(ms < 10_000, `${ms.toFixed(0)} ms`);
  const p = value.problems.find((x) => x.key === 'route[0].upstream');
  assert.ok(p);
  assert.match(p.message, /"u0", .* and 9990 more\)$/);
});

test('recv_ident must be a token Mongrel2 parses at the start of a reply', () => {
  for (const ok of ['', 'web-1', 'ABC123']) {
    const r = parseConfigText(BASE.replace('recv_spec = "tcp://127.0.0.1:9996"', `recv_spec = "tcp://127.0.0.1:9996"\nrecv_ident = "${ok}"`), 'gw.toml');
    assert.ok(r.config, `${ok}: ${JSON.stringify(r.problems)}`);
  }
  for (const bad of ['web_1', 'a b', 'é']) {
    const text = BASE.replace('recv_spec = "tcp://127.0.0.1:9996"', `recv_spec = "tcp://127.0.0.1:9996"\nrecv_ident = "${bad}"`);
    const r = parseConfigText(text, 'gw.toml');
    assert.equal(r.config, null, bad);
    const p = r.problems.find((x) => x.key === 'handler[0].recv_ident');
    assert.ok(p, bad);
    assert.equal(p.line, lineOf(text, 'recv_ident'));
  }
});

test('arrays and inline tables nested 20,000 deep are a problem, not a stack overflow (found by the fuzzer)', () => {
  for (const value of ['['.repeat(20_000) + ']'.repeat(20_000), '{b='.repeat(20_000) + '1' + '}'.repeat(20_000), '['.repeat(20_000)]) {
    const text = BASE + `[gateway]\ndeep_x = ${value}\n`;
    const r = parseConfigText(text, 'gw.toml');
    assert.equal(r.config, null);
    assert.deepEqual(r.problems, [{ key: '(toml)', line: lineOf(text, 'deep_x = '), message: 'arrays or inline tables nested more than 64 deep', severity: 'error' }]);
  }
  // 64 deep is still read (and then refused by the schema as usual).
  const ok = parseConfigText(BASE + `[gateway]\nx = ${'['.repeat(64)}${']'.repeat(64)}\n`, 'gw.toml');
  assert.ok(ok.problems.some((p) => p.key === 'gateway.x'), JSON.stringify(ok.problems));
});
