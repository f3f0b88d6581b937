/**
 * The few replies the supervisor sends to Mongrel2 itself, on its own XPUB per
 * handler: 503 + close for a new connection while shutting down, and the close
 * message for every connection a dead worker owned (so clients see the connection
 * end instead of hanging until Mongrel2's timeouts).
 */
import type { HandlerConfig } from '../config/schema.js';
import { bodyFor, statusOf, type ErrorCode } from '../errors.js';
import { simpleResponse } from '../mongrel2/http-head.js';
import { MAX_TARGETS, encodeClose, encodeReply } from '../mongrel2/reply.js';
import type { HandlerSocket } from '../zmq/handler-socket.js';

/** Why the supervisor refuses a new connection itself. */
export type Refusal = Extract<ErrorCode, 'M2GW_SHUTTING_DOWN' | 'M2GW_SATURATED'>;

/** The catalogue's answer for each, built once. */
const REFUSALS: Record<Refusal, Buffer> = {
  M2GW_SHUTTING_DOWN: refusal('M2GW_SHUTTING_DOWN'),
  M2GW_SATURATED: refusal('M2GW_SATURATED'),
};

function refusal(code: Refusal): Buffer {
  return simpleResponse(statusOf(code), bodyFor(code), [
    ['Connection', 'close'],
    ['Retry-After', '1'],
  ]);
}

export class SupervisorReplies {
  constructor(
    /** The live handler with that id (ids survive reloads; see reload-config.ts). */
    private readonly handler: (handlerId: number) => { readonly config: HandlerConfig; readonly socket: HandlerSocket } | undefined,
    private readonly senderOf: (handlerId: number) => string | null,
  ) {}

  /** The catalogue's response for `why` (a 503), then close, on one connection. */
  refuse(handlerIndex: number, sender: string, connId: string, why: Refusal): void {
    const socket = this.handler(handlerIndex)?.socket;
    const who = this.replySender(handlerIndex, sender);
    if (!socket || who === null) return;
    socket.send(encodeReply(who, [connId], REFUSALS[why]));
    socket.send(encodeClose(who, [connId]));
  }

  /** Close connections given as connection keys ("handler:connId"). Returns how many. */
  close(keys: readonly string[]): number {
    const byHandler = new Map<number, string[]>();
    for (const key of keys) {
      const colon = key.indexOf(':');
      const h = Number(key.slice(0, colon));
      let list = byHandler.get(h);
      if (!list) byHandler.set(h, (list = []));
      list.push(key.slice(colon + 1));
    }
    let n = 0;
    for (const [h, ids] of byHandler) {
      const socket = this.handler(h)?.socket;
      const who = this.replySender(h, this.senderOf(h) ?? '');
      if (!socket || who === null) continue;
      for (let i = 0; i < ids.length; i += MAX_TARGETS) {
        const batch = ids.slice(i, i + MAX_TARGETS);
        socket.send(encodeClose(who, batch));
        n += batch.length;
      }
    }
    return n;
  }

  private replySender(handlerIndex: number, sender: string): string | null {
    const cfg = this.handler(handlerIndex)?.config;
    if (!cfg) return null;
    const who = cfg.recvIdent !== '' ? cfg.recvIdent : sender;
    return who === '' ? null : who;
  }
}
