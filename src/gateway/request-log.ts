/**
 * What the gateway reports about each finished request: the access line (when
 * `log.access_log` is on), a warning for server-side failures, and the metrics hook.
 *
 * Promises: exactly one report per request that reached the gateway's finish, however it
 * ended (answered, refused, failed, client gone); field names are the log schema
 * (`request_id`, `duration_ms`, …) that operators search by, so they change only on purpose.
 */
import { logInfoFast, type AccessFields, type Logger } from '../log.js';
import type { Active } from './connections.js';
import type { ResponseOutcome } from './response-writer.js';
import type { WebSocketReport } from './websocket-session.js';

/** What the gateway reports about finished requests (metrics plug in here). */
export interface GatewayHooks {
  onRequestDone?(info: RequestDoneInfo): void;
  onDisconnectAbort?(): void;
  onBadFrame?(): void;
  /** We sent the close message for this connection (the supervisor may forget its owner: Mongrel2 reuses ids). */
  onConnectionClosed?(handlerIndex: number, connId: string): void;
  /** A WebSocket opened (the 101 went to the client). */
  onWebSocketOpened?(): void;
  /** One client message relayed up ('to-upstream', its size), or payload bytes relayed down ('to-client'). */
  onWebSocketMessage?(direction: 'to-upstream' | 'to-client', bytes: number): void;
  /** A WebSocket (or a refused handshake: status ≠ 101) ended. */
  onWebSocketEnded?(report: WebSocketReport): void;
}

export interface RequestDoneInfo {
  readonly route: string;
  readonly upstream: string;
  readonly method: string;
  readonly status: number;
  readonly durationMs: number;
  readonly bytes: number;
  readonly errorCode: string | null;
}

/** The access line's fields, in the order they are set below (log.ts recognises the shape by these arrays). */
const ACCESS_KEYS = ['type', 'request_id', 'method', 'path', 'status', 'bytes', 'duration_ms', 'upstream', 'conn'] as const;
const ACCESS_ERROR_KEYS = [...ACCESS_KEYS, 'error', 'phase'] as const;

export class RequestLog {
  private readonly log: Logger;
  private readonly accessLog: boolean;
  private readonly hooks: GatewayHooks;

  constructor(log: Logger, accessLog: boolean, hooks: GatewayHooks) {
    this.log = log;
    this.accessLog = accessLog;
    this.hooks = hooks;
  }

  finished(active: Active, connKey: string, outcome: ResponseOutcome, durationMs: number): void {
    const upstream = active.route?.upstream.name ?? '-';
    if (this.accessLog) {
      // logInfoFast: the same line as log.info, without winston's stream per line (log.ts).
      const fields: AccessFields = {
        type: 'access',
        request_id: active.id,
        method: active.method,
        path: active.uri,
        status: outcome.status,
        bytes: outcome.bytes,
        duration_ms: Math.round(durationMs * 100) / 100,
        upstream,
        conn: connKey,
      };
      if (outcome.error) {
        fields['error'] = outcome.error.code;
        fields['phase'] = outcome.error.phase;
      }
      logInfoFast(this.log, 'access', fields, outcome.error ? ACCESS_ERROR_KEYS : ACCESS_KEYS);
    }
    if (outcome.error && outcome.error.code !== 'M2GW_CLIENT_GONE' && outcome.status >= 500) {
      this.log.warn('request failed', { request_id: active.id, upstream, error: outcome.error.message, code: outcome.error.code, phase: outcome.error.phase });
    }
    this.hooks.onRequestDone?.({
      route: active.route?.prefix ?? '-',
      upstream,
      method: active.method,
      status: outcome.status,
      durationMs,
      bytes: outcome.bytes,
      errorCode: outcome.error?.code ?? null,
    });
  }
}
