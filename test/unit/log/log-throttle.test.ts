import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import winston from 'winston';
import { WarningThrottle } from '../../../src/log-throttle.js';
import { warningCounts } from '../../../src/metrics/limit-hits.js';
import { waitFor } from '../../harness/wait.js';

function recording(): { logger: winston.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ objectMode: true, write(info: Record<string, unknown>, _e, cb) { lines.push(info); cb(); } });
  return { logger: winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream })] }), lines };
}

test('a flood of one warning is one line per interval plus a summary with the exact count', async () => {
  const { logger, lines } = recording();
  const t = new WarningThrottle(logger, 50);
  const before = warningCounts().get('flood kind') ?? 0;
  for (let i = 0; i < 10_000; i++) t.warn('flood kind', { i });
  t.warn('other kind', { x: 1 });
  await waitFor(() => lines.length === 3, 2000);
  assert.equal(lines[0]!.message, 'flood kind');
  assert.equal(lines[0]!.i, 0);
  assert.equal(lines[1]!.message, 'other kind');
  assert.equal(lines[2]!.message, 'flood kind');
  assert.equal(lines[2]!.suppressed, 9_999);
  assert.equal(lines[2]!.i, 9_999);
  assert.equal((warningCounts().get('flood kind') ?? 0) - before, 10_000, 'counted exactly');
  // The next interval starts afresh: the first one is written at once.
  t.warn('flood kind', { i: 'again' });
  assert.equal(lines.length, 4);
  assert.equal(lines[3]!.suppressed, undefined);
});

test('a lone warning writes no summary', async () => {
  const { logger, lines } = recording();
  const t = new WarningThrottle(logger, 20);
  t.warn('lone');
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(lines.length, 1);
});
