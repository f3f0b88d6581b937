/**
 * Shared by the FastCGI upstream tests (fake server and real PHP-FPM): a config builder, a
 * request builder and a sink that records what it is told. No side effects on import.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { FastcgiUpstreamConfig } from '../../src/config/schema.js';
import type { M2gwError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import type { ResolverFs } from '../../src/upstream/fastcgi/script-resolver.js';
import type { HeaderList, ResponseController, ResponseSink, Upstream, UpstreamRequest } from '../../src/upstream/upstream.js';

export function fastcgiConfig(address: string, documentRoot: string, over: Partial<FastcgiUpstreamConfig> = {}): FastcgiUpstreamConfig {
  return {
    type: 'fastcgi',
    name: 'php',
    address,
    documentRoot,
    index: 'index.php',
    frontController: null,
    serveStatic: false,
    deny: [],
    maxConnections: 2,
    pipeline: 1,
    queueTimeoutMs: 5000,
    queueSize: 100,
    retries: 1,
    connectTimeoutMs: 2000,
    responseTimeoutMs: 5000,
    idleTimeoutMs: 5000,
    params: {},
    scriptExtension: '.php',
    ...over,
  };
}

export { upstreamRequest as request, type RequestOptions } from '../harness/upstream-request.js';

export interface Result {
  status: number;
  reason: string | undefined;
  headers: HeaderList;
  body: Buffer;
  /** Arrival time (ms since forward) of every data chunk. */
  chunkTimes: number[];
  error: M2gwError | null;
  /** Whether onResponseStart came before the error. */
  started: boolean;
  ms: number;
}

export interface SinkHooks {
  onStart?(ctl: ResponseController): void;
  onData?(ctl: ResponseController, chunk: Buffer, index: number): void;
}

/** Dispatches and resolves when the sink got its end or error; checks the call order. */
export function run(up: Upstream, req: UpstreamRequest, hooks: SinkHooks = {}): Promise<Result> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const r: Result = { status: 0, reason: undefined, headers: [], body: Buffer.alloc(0), chunkTimes: [], error: null, started: false, ms: 0 };
    const chunks: Buffer[] = [];
    let finished = false;
    const done = (): void => {
      if (finished) {
        reject(new Error('the sink was told twice that the response finished'));
        return;
      }
      finished = true;
      r.body = Buffer.concat(chunks);
      r.ms = Date.now() - t0;
      // Later calls would be contract violations: catch them for a moment. The immediates
      // let the pool's deferred release of the connection (two turns) happen first.
      setTimeout(() => setImmediate(() => setImmediate(() => resolve(r))), 5);
    };
    const sink: ResponseSink = {
      onResponseStart(ctl, status, headers, reason) {
        if (r.started || finished) reject(new Error('onResponseStart out of order'));
        r.started = true;
        r.status = status;
        r.headers = headers;
        r.reason = reason;
        hooks.onStart?.(ctl);
      },
      onResponseData(ctl, chunk) {
        if (!r.started || finished) reject(new Error('onResponseData out of order'));
        chunks.push(Buffer.from(chunk));
        r.chunkTimes.push(Date.now() - t0);
        hooks.onData?.(ctl, chunk, chunks.length - 1);
      },
      onResponseEnd() {
        done();
      },
      onResponseError(err) {
        r.error = err;
        done();
      },
    };
    up.forward(req, sink);
  });
}

export function header(r: Result, name: string): string | undefined {
  return r.headers.find(([n]) => n === name)?.[1];
}

export function assertOk(r: Result, status = 200): void {
  assert.equal(r.error, null, r.error ? `${r.error.code} ${r.error.phase} ${r.error.message}` : '');
  assert.equal(r.status, status);
}

export function assertError(r: Result, code: string, phase?: string): void {
  assert.ok(r.error !== null, `expected ${code}, got status ${r.status} ${r.body.toString().slice(0, 200)}`);
  assert.equal(r.error.code, code, r.error.message);
  if (phase !== undefined) assert.equal(r.error.phase, phase, r.error.message);
}

/** A winston logger whose records can be inspected. */
export function capturingLogger(): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    objectMode: true,
    write(info: Record<string, unknown>, _enc, cb) {
      records.push(info);
      cb();
    },
  });
  const logger = winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream })] });
  return { logger, records };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Resolver file access done synchronously: requests forwarded together then reach the pool
 * in the order forwarded (with real async fs they race), which order-sensitive tests need.
 */
export const syncResolverFs: ResolverFs = {
  stat: (p) => Promise.resolve(fs.statSync(Buffer.from(p, 'latin1'), { throwIfNoEntry: false }) ?? null),
  realpath: (p) => {
    try {
      return Promise.resolve(fs.realpathSync.native(Buffer.from(p, 'latin1'), { encoding: 'buffer' }).toString('latin1'));
    } catch {
      return Promise.resolve(null);
    }
  },
};
