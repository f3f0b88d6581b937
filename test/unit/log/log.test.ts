/**
 * The JSON log line must stay byte-identical to winston's timestamp() + json() (log
 * readers parse it), and the batched file transport must lose no line and keep order.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { LineFileTransport, createLogger, jsonLine, logInfoFast, reopenLogFiles } from '../../../src/log.js';

const MESSAGE = Symbol.for('message');
const reference = winston.format.combine(winston.format.timestamp(), winston.format.json());

function referenceLine(info: Record<string, unknown>): string {
  return (reference.transform({ ...info } as winston.Logform.TransformableInfo, {}) as unknown as Record<symbol, string>)[MESSAGE]!;
}

describe('jsonLine', () => {
  const records: Array<Record<string, unknown>> = [
    { level: 'info', message: 'access', type: 'access', request_id: 'a-1', method: 'GET', path: '/gw/hello', status: 200, bytes: 14, duration_ms: 1.25, upstream: 'app', conn: '0:5', pid: 7 },
    { level: 'info', message: 'm', path: '/x?"\\\u0001\u001f\u00ff\ud800é', n: NaN, inf: -Infinity, t: true, f: false, u: undefined, z: null },
    { level: 'warn', message: 'x', e: new Error('boo'), big: 2n },
    { level: 'warn', message: 'x', nested: { b: 1, a: [1, 'x'] } },
    { level: 'info', message: 'm', 'ü key': 'v', '\u0000k': 'v', Zed: 1, apple: 2, '"q"': 3 },
    { level: 'info', message: 'm', d: new Date(0) },
    { level: 'info', message: 'given timestamp', timestamp: 'then' },
  ];
  for (const [i, r] of records.entries()) {
    test(`same line as winston's json() (${i})`, () => {
      const timestamp = (r.timestamp as string | undefined) ?? new Date().toISOString();
      assert.equal(jsonLine({ ...r, timestamp } as never), referenceLine({ ...r, timestamp }));
    });
  }
  test('adds the timestamp when there is none', () => {
    const rec = JSON.parse(jsonLine({ level: 'info', message: 'm' } as never)) as { timestamp: string };
    assert.ok(!Number.isNaN(Date.parse(rec.timestamp)));
  });
});

describe('LineFileTransport', () => {
  test('every line, in order, written within 50 ms; reopen moves later lines to the new file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-log-'));
    try {
      const file = path.join(dir, 'sub', 'm2gw.log');
      const log = createLogger({ level: 'info', format: 'json', file }, { pid: 1 });
      for (let i = 0; i < 100; i++) log.info('line', { i });
      await new Promise((r) => setTimeout(r, 200));
      const first = fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i);
      assert.deepEqual(first, Array.from({ length: 100 }, (_, i) => i));
      fs.renameSync(file, `${file}.1`);
      log.info('before reopen', { i: 100 });
      reopenLogFiles(log);
      log.info('after reopen', { i: 101 });
      const t = log.transports[0];
      assert.ok(t instanceof LineFileTransport);
      t.close();
      assert.match(fs.readFileSync(`${file}.1`, 'utf8'), /before reopen/);
      const second = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(second.length, 1);
      assert.match(second[0]!, /after reopen/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('reopen when the directory is gone keeps the old file and warns there; the next reopen, with the directory back, moves to the new file', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-log-'));
    try {
      const dir = path.join(root, 'logs');
      const file = path.join(dir, 'm2gw.log');
      const log = createLogger({ level: 'info', format: 'json', file }, { pid: 1 });
      log.info('before');
      // logrotate's olddir: the directory moves away with the file in it.
      const moved = path.join(root, 'logs.old', 'm2gw.log');
      fs.renameSync(dir, path.dirname(moved));
      assert.doesNotThrow(() => reopenLogFiles(log));
      log.info('still here');
      fs.mkdirSync(dir);
      reopenLogFiles(log);
      log.info('after');
      const t = log.transports[0];
      assert.ok(t instanceof LineFileTransport);
      t.close();
      const old = fs.readFileSync(moved, 'utf8').trim().split('\n').map((l) => (l.startsWith('{') ? (JSON.parse(l) as { message: string; level: string }) : { message: l, level: '' }));
      assert.deepEqual(old.map((r) => r.message), ['before', 'log file not reopened: still writing to the old one until the next SIGUSR1', 'still here']);
      assert.equal(old[1]!.level, 'warn');
      const fresh = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(fresh.length, 1);
      assert.match(fresh[0]!, /"after"/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
  test('64 KiB waiting are written at once, without waiting for the timer', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-log-'));
    try {
      const file = path.join(dir, 'm2gw.log');
      const log = createLogger({ level: 'info', format: 'json', file });
      const filler = 'x'.repeat(1000);
      for (let i = 0; i < 70; i++) log.info('line', { i, filler });
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.ok(lines.length >= 60 && lines.length < 70, `${lines.length} lines written synchronously`);
      log.transports[0]!.close!();
      assert.equal(fs.readFileSync(file, 'utf8').trim().split('\n').length, 70);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  test('multi-byte lines at the buffer boundary and a line longer than the buffer keep every byte, in order', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-log-'));
    try {
      const file = path.join(dir, 'm2gw.log');
      const t = new LineFileTransport(file);
      const lines: string[] = [];
      // 3-byte characters and surrogate pairs (4 bytes) straddle the 64 KiB boundary many times over.
      for (let i = 0; i < 300; i++) lines.push(`${i} ` + (i % 2 ? '€'.repeat(200 + i) : '😀'.repeat(150 + i)));
      lines.splice(150, 0, 'big ' + 'é'.repeat(80 * 1024));
      for (const l of lines) t.writeLine(l);
      t.close();
      assert.deepEqual(fs.readFileSync(file, 'utf8').split('\n'), [...lines, '']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('logInfoFast', () => {
  test('writes the line logger.info writes (apart from the timestamp), and respects the level', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-log-'));
    try {
      const file = path.join(dir, 'm2gw.log');
      const log = createLogger({ level: 'info', format: 'json', file }, { pid: 7, worker: 1 });
      const fields = { type: 'access', request_id: 'r-1', method: 'GET', path: '/a?"b"', status: 200, bytes: 14, duration_ms: 0.5, upstream: 'app', conn: '0:3' };
      log.info('access', fields);
      logInfoFast(log, 'access', fields);
      logInfoFast(log, 'access', { ...fields, error: 'M2GW_UPSTREAM_CONNECT', phase: 'connect', status: 502 });
      const quiet = createLogger({ level: 'warn', format: 'json', file }, {});
      logInfoFast(quiet, 'access', fields);
      (quiet.transports[0] as LineFileTransport).close();
      (log.transports[0] as LineFileTransport).close();
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(lines.length, 3);
      const strip = (l: string): string => l.replace(/"timestamp":"[^"]+"/, '');
      assert.equal(strip(lines[1]!), strip(lines[0]!));
      assert.equal((JSON.parse(lines[2]!) as { error: string }).error, 'M2GW_UPSTREAM_CONNECT');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('each shape writes what logger.info writes: meta to escape, a first key left out, a key list given, a value that is not flat', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-log-'));
    try {
      const file = path.join(dir, 'm2gw.log');
      const log = createLogger({ level: 'info', format: 'json', file }, { pid: 7, 'a "quoted"\nkey': 'v"\u0001' });
      const KEYS = ['b', 'a', 'z'] as const;
      const cases: Array<Record<string, unknown>> = [
        { b: 'x', a: 1, z: 'é\ud800' },
        // 'a' sorts first: left out, the line must not start with a comma.
        { b: 'x', a: undefined, z: 2 },
        { b: { nested: true }, a: 1, z: 2 },
        { b: Infinity, a: -0, z: true },
      ];
      for (const fields of cases) {
        log.info('access "m"', fields);
        logInfoFast(log, 'access "m"', fields as Record<string, string | number>, KEYS);
      }
      (log.transports[0] as LineFileTransport).close();
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      assert.equal(lines.length, cases.length * 2);
      const strip = (l: string): string => l.replace(/"timestamp":"[^"]+"/, '');
      for (let i = 0; i < lines.length; i += 2) {
        assert.equal(strip(lines[i + 1]!), strip(lines[i]!), `case ${i / 2}`);
        JSON.parse(lines[i + 1]!);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a logger made elsewhere keeps its own format (logger.info)', () => {
    const lines: string[] = [];
    const stream = new (class extends Writable {
      override _write(chunk: Buffer, _enc: string, cb: () => void): void {
        lines.push(chunk.toString());
        cb();
      }
    })();
    const log = winston.createLogger({ format: winston.format.printf((i) => `custom ${String(i.message)}`), transports: [new winston.transports.Stream({ stream })] });
    logInfoFast(log, 'access', { status: 200 });
    assert.deepEqual(lines.map((l) => l.trim()), ['custom access']);
  });
});
