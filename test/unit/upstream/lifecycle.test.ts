/**
 * The retry rule both upstreams consult (src/upstream/lifecycle.ts), case by case. The
 * upstream tests show each upstream acting on it against real and scripted servers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientGoneError, UpstreamError } from '../../../src/errors.js';
import { IDEMPOTENT_METHODS, mayRetry, type FailedAttempt } from '../../../src/upstream/lifecycle.js';

const refused = new UpstreamError('M2GW_UPSTREAM_CONNECT', 'ECONNREFUSED', 'connect');
const connectTimeout = new UpstreamError('M2GW_UPSTREAM_TIMEOUT', 'connect timed out', 'connect');
const reset = new UpstreamError('M2GW_UPSTREAM_RESET', 'closed', 'request-sent');

function attempt(over: Partial<FailedAttempt>): FailedAttempt {
  return { method: 'GET', error: refused, attempts: 1, retries: 1, answered: false, reusedConnection: false, closedUnread: false, ...over };
}

test('idempotent methods are RFC 9110 §9.2.2', () => {
  assert.deepEqual([...IDEMPOTENT_METHODS].sort(), ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PUT', 'TRACE']);
});

test('nothing sent: retried whatever the method, up to `retries` times', () => {
  assert.equal(mayRetry(attempt({ method: 'POST' })), true);
  assert.equal(mayRetry(attempt({ method: 'POST', error: connectTimeout })), true);
  assert.equal(mayRetry(attempt({ attempts: 2 })), false, 'one retry used');
  assert.equal(mayRetry(attempt({ attempts: 2, retries: 2 })), true);
  assert.equal(mayRetry(attempt({ retries: 0 })), false);
  assert.equal(mayRetry(attempt({ error: new UpstreamError('M2GW_SHUTTING_DOWN', 'closing', 'connect') })), false, 'not a failure to reach it');
  assert.equal(mayRetry(attempt({ error: new ClientGoneError('connect') })), false);
});

test('sent, reset before any byte: only on a reused connection, and only if idempotent or closed unread', () => {
  assert.equal(mayRetry(attempt({ error: reset, reusedConnection: true })), true, 'GET on a kept-alive connection');
  assert.equal(mayRetry(attempt({ error: reset, reusedConnection: false })), false, 'a fresh connection: the upstream read it');
  assert.equal(mayRetry(attempt({ error: reset, reusedConnection: true, method: 'POST' })), false);
  assert.equal(mayRetry(attempt({ error: reset, reusedConnection: true, method: 'POST', closedUnread: true })), true, 'PHP-FPM recycled its child');
  assert.equal(mayRetry(attempt({ error: reset, reusedConnection: true, answered: true })), false, 'a byte came back');
  assert.equal(mayRetry(attempt({ error: reset, reusedConnection: true, attempts: 2 })), false);
});

test('never after a timeout, a protocol error, or once the head went out', () => {
  const timeout = new UpstreamError('M2GW_UPSTREAM_TIMEOUT', 'slow', 'request-sent');
  const protocol = new UpstreamError('M2GW_UPSTREAM_PROTOCOL', 'bad', 'request-sent');
  const late = new UpstreamError('M2GW_UPSTREAM_RESET', 'closed', 'headers-sent');
  for (const error of [timeout, protocol, late]) {
    assert.equal(mayRetry(attempt({ error, reusedConnection: true, closedUnread: true })), false, error.message);
  }
});
