/**
 * The error catalogue, code by code (fastify's test/internals/errors.test.js style): every
 * code with the status and body a client gets and the phases it can be created in, and the
 * bytes the gateway's ResponseWriter really writes for it. A code added to src/errors.ts
 * without a row here fails the completeness test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ClientGoneError,
  ConfigError,
  ERROR_CODES,
  FrameError,
  M2gwError,
  UpstreamError,
  asM2gwError,
  bodyFor,
  describeCode,
  formatProblems,
  inPhase,
  statusFor,
  statusOf,
  type ErrorCode,
  type Phase,
} from '../../src/errors.js';
import { ClientConnection } from '../../src/gateway/client-connection.js';
import { ResponseWriter } from '../../src/gateway/response-writer.js';
import { parseReply } from '../../src/mongrel2/reply.js';

interface Row {
  readonly status: number;
  readonly body: string;
  readonly phases: readonly Phase[];
}

const ANY_UPSTREAM: Phase[] = ['connect', 'request-sent', 'headers-sent'];

const EXPECTED: Record<ErrorCode, Row> = {
  M2GW_BAD_FRAME: { status: 400, body: 'Bad Request\n', phases: ['route'] },
  M2GW_BAD_REQUEST: { status: 400, body: 'Bad Request\n', phases: ['route'] },
  M2GW_NO_ROUTE: { status: 404, body: 'Not Found\n', phases: ['route'] },
  M2GW_NOT_FOUND: { status: 404, body: 'Not Found\n', phases: ['route'] },
  M2GW_FORBIDDEN: { status: 403, body: 'Forbidden\n', phases: ['route'] },
  M2GW_BODY_TOO_LARGE: { status: 413, body: 'Payload Too Large\n', phases: ['route'] },
  M2GW_LENGTH_REQUIRED: { status: 411, body: 'Length Required\n', phases: ['route'] },
  M2GW_SATURATED: { status: 503, body: 'Service Unavailable\n', phases: ['route', 'connect'] },
  M2GW_UPSTREAM_CONNECT: { status: 502, body: 'Bad Gateway\n', phases: ['connect'] },
  M2GW_UPSTREAM_RESET: { status: 502, body: 'Bad Gateway\n', phases: ['request-sent', 'headers-sent'] },
  M2GW_UPSTREAM_TIMEOUT: { status: 504, body: 'Gateway Timeout\n', phases: ANY_UPSTREAM },
  M2GW_UPSTREAM_PROTOCOL: { status: 502, body: 'Bad Gateway\n', phases: ['request-sent', 'headers-sent'] },
  M2GW_UPSTREAM_OVERLOADED: { status: 503, body: 'Service Unavailable\n', phases: ['request-sent', 'headers-sent'] },
  M2GW_CLIENT_GONE: { status: 499, body: '', phases: ANY_UPSTREAM },
  M2GW_WEBSOCKET_PROTOCOL: { status: 400, body: 'Bad Request\n', phases: ['headers-sent'] },
  M2GW_SHUTTING_DOWN: { status: 503, body: 'Service Unavailable\n', phases: ['route', ...ANY_UPSTREAM] },
  M2GW_CONFIG: { status: 500, body: 'Internal Server Error\n', phases: ['route'] },
  M2GW_INTERNAL: { status: 500, body: 'Internal Server Error\n', phases: ['route', ...ANY_UPSTREAM] },
};

/** What a client reads for `err` answered before any response byte: [status line, body] or null. */
function page(err: M2gwError): { statusLine: string; body: string } | null {
  const frames: Buffer[] = [];
  const conn = new ClientConnection('0:1', '1', { send: (f) => frames.push(f) }, 'u', { schedule: () => undefined });
  const writer = new ResponseWriter(conn, { method: 'GET', keepAlive: true, http10: false, requestId: 'rid' }, () => undefined);
  writer.onResponseError(err);
  conn.flushSoon();
  conn.flush();
  const text = frames.map((f) => parseReply(f).payload.toString('latin1')).join('');
  if (text === '') return null;
  const sep = text.indexOf('\r\n\r\n');
  return { statusLine: text.slice(0, text.indexOf('\r\n')), body: text.slice(sep + 4) };
}

test('every code in the catalogue has a row here, and every row a code', () => {
  assert.deepEqual([...ERROR_CODES].sort(), Object.keys(EXPECTED).sort());
});

for (const code of Object.keys(EXPECTED) as ErrorCode[]) {
  const want = EXPECTED[code];
  test(`${code}: ${want.status}, ${JSON.stringify(want.body)}, in ${want.phases.join(' / ')}`, () => {
    assert.deepEqual(describeCode(code), want);
    assert.equal(statusOf(code), want.status);
    assert.equal(bodyFor(code), want.body);
    for (const phase of want.phases) {
      const err = new M2gwError<ErrorCode>(code, 'x', phase);
      assert.equal(err.code, code);
      assert.equal(err.phase, phase, 'the phase is the one it was created with');
      assert.equal(statusFor(err), want.status);
      assert.ok(err instanceof Error);
    }
    const first = new M2gwError<ErrorCode>(code, 'x', want.phases[0]!);
    const got = page(first);
    if (code === 'M2GW_CLIENT_GONE') {
      assert.equal(got, null, 'nobody is left to read an answer');
    } else {
      assert.ok(got !== null);
      assert.match(got.statusLine, new RegExp(`^HTTP/1\\.1 ${want.status} `));
      assert.equal(got.body, want.body);
    }
  });
}

test('the subclasses: FrameError, UpstreamError, ClientGoneError, ConfigError', () => {
  const frame = new FrameError('bad');
  assert.deepEqual([frame.name, frame.code, frame.phase], ['FrameError', 'M2GW_BAD_FRAME', 'route']);
  const up = new UpstreamError('M2GW_UPSTREAM_RESET', 'reset', 'request-sent');
  assert.deepEqual([up.name, up.code, up.phase], ['UpstreamError', 'M2GW_UPSTREAM_RESET', 'request-sent']);
  const gone = new ClientGoneError('headers-sent');
  assert.deepEqual([gone.name, gone.code, gone.phase, gone.message], ['ClientGoneError', 'M2GW_CLIENT_GONE', 'headers-sent', 'client went away']);
  const problems = [{ key: 'route[0].upstream', line: 7, message: 'no upstream named "x"' }];
  const config = new ConfigError('gw.toml', problems);
  assert.deepEqual([config.name, config.code, config.phase], ['ConfigError', 'M2GW_CONFIG', 'route']);
  assert.equal(config.message, `1 problem(s) in gw.toml:\n${formatProblems('gw.toml', problems)}`);
  assert.equal(formatProblems('gw.toml', problems), 'gw.toml:7: route[0].upstream: no upstream named "x"');
});

test('inPhase: a later phase is a new error with the original as cause; the original keeps its phase', () => {
  const shared = new UpstreamError('M2GW_UPSTREAM_RESET', 'PHP-FPM closed the connection', 'request-sent');
  const late = inPhase(shared, 'headers-sent');
  assert.notEqual(late, shared);
  assert.deepEqual([late.code, late.phase, late.message, late.name], ['M2GW_UPSTREAM_RESET', 'headers-sent', shared.message, 'UpstreamError']);
  assert.equal(late.cause, shared);
  assert.equal(shared.phase, 'request-sent');
  assert.equal(inPhase(late, 'headers-sent'), late, 'already in that phase: the same error');
});

test('asM2gwError keeps M2gwErrors and wraps anything else as M2GW_INTERNAL in the phase given', () => {
  const known = new ClientGoneError('connect');
  assert.equal(asM2gwError(known, 'headers-sent'), known);
  const cause = new TypeError('boom');
  const wrapped = asM2gwError(cause, 'request-sent');
  assert.deepEqual([wrapped.code, wrapped.phase, wrapped.message], ['M2GW_INTERNAL', 'request-sent', 'boom']);
  assert.equal(wrapped.cause, cause);
  assert.equal(statusFor(cause), 500, 'anything not in the catalogue is a 500');
});
