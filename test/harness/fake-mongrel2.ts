/**
 * A fake Mongrel2 (the only way to send broken frames or withhold a subscription): a bound PUSH
 * and an XSUB, which subscribes by message as Mongrel2's libzmq does (zeromq.js's own SUB, when
 * it binds, never lets a connecting XPUB see its subscription), plus a one-route gateway config.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import winston from 'winston';
import * as zmq from 'zeromq';
import { parseConfigText } from '../../src/config/load.js';
import { parseReply } from '../../src/mongrel2/reply.js';
import type { Config } from '../../src/config/schema.js';
import type { Gateway } from '../../src/gateway/gateway.js';
import { startGateway } from '../../src/process/single.js';
import { freePort } from './ports.js';
import { sleep } from './wait.js';

export interface FakeMongrel2 {
  readonly push: zmq.Push;
  readonly sub: zmq.XSubscriber;
  readonly config: Config;
  close(): void;
}

/** `extraToml` is appended to the gateway config (e.g. a [gateway] section). */
export async function fakeMongrel2(upstreamUrl: string, extraToml = ''): Promise<FakeMongrel2> {
  const [sendPort, recvPort] = [await freePort(), await freePort()];
  const push = new zmq.Push();
  const sub = new zmq.XSubscriber();
  await push.bind(`tcp://127.0.0.1:${sendPort}`);
  await sub.bind(`tcp://127.0.0.1:${recvPort}`);
  const { config } = parseConfigText(
    `[log]\naccess_log = false\n[[handler]]\nsend_spec = "tcp://127.0.0.1:${sendPort}"\nrecv_spec = "tcp://127.0.0.1:${recvPort}"\n` +
      `[upstream.app]\ntype = "http"\nurl = "${upstreamUrl}"\n[[route]]\nprefix = "/"\nupstream = "app"\n` +
      extraToml,
    '/tmp/gw.toml',
  );
  assert.ok(config);
  return {
    push,
    sub,
    config,
    close() {
      push.close();
      sub.close();
    },
  };
}

/**
 * Subscribes the fake Mongrel2's XSUB (resent every 50 ms until the gateway's XPUB has seen it)
 * and hands each reply's payload to `waiting`'s callback for its connection id. Replies of one
 * turn leave together, as the parts of one message; a part that is no reply is skipped (a
 * mutated frame may still carry a sender it was sent with). `stop()` ends both.
 */
export function routeReplies(m2: FakeMongrel2, waiting: ReadonlyMap<string, (payload: string) => void>): { stop(): void } {
  let receiving = true;
  const subscribe = setInterval(() => void m2.sub.send(Buffer.from([1])).catch(() => undefined), 50);
  void (async () => {
    while (receiving) {
      const msg = await m2.sub.receive().catch(() => null);
      if (!msg) break;
      for (const part of msg) {
        try {
          const r = parseReply(part);
          const payload = r.payload.toString('latin1');
          for (const id of r.connIds) waiting.get(id)?.(payload);
        } catch {
          // not a reply
        }
      }
    }
  })();
  return {
    stop() {
      receiving = false;
      clearInterval(subscribe);
    },
  };
}

/** The sender of the frames m2frame builds. */
export const FAKE_SENDER = '0b9a6b7e-6c35-4b6c-9a3c-0000000000d1';

/** Mongrel2's JSON: only `"` and `\` are escaped, control bytes go raw (lenient-json.ts). */
function m2json(headers: Record<string, string | string[]>): string {
  const str = (s: string): string => '"' + s.replace(/[\\"]/g, (c) => '\\' + c) + '"';
  return '{' + Object.entries(headers).map(([k, v]) => `${str(k)}:${Array.isArray(v) ? '[' + v.map(str).join(',') + ']' : str(v)}`).join(',') + '}';
}

/** The same headers as a tnetstring dict (raw bytes, as Mongrel2 writes them). */
function m2tnet(headers: Record<string, string>): string {
  const ns = (s: string): string => `${Buffer.byteLength(s, 'latin1')}:${s},`;
  const body = Object.entries(headers).map(([k, v]) => ns(k) + ns(v)).join('');
  return `${Buffer.byteLength(body, 'latin1')}:${body}}`;
}

/**
 * A request message as Mongrel2 frames it, with any bytes in it (a real Mongrel2 sends no
 * control byte in a header; a hostile one may). `escaped`: standard JSON, control characters
 * as escapes (\r\n), which the parser decodes too; `tnet`: tnetstring headers.
 */
export function m2frame(connId: number, path: string, headers: Record<string, string | string[]>, opts: { tnet?: boolean; escaped?: boolean; body?: string } = {}): Buffer {
  const h = opts.tnet ? m2tnet(headers as Record<string, string>) : opts.escaped ? JSON.stringify(headers) : m2json(headers);
  const body = opts.body ?? '';
  const hpart = opts.tnet ? h : `${Buffer.byteLength(h, 'latin1')}:${h},`;
  return Buffer.from(`${FAKE_SENDER} ${connId} ${path} ${hpart}${Buffer.byteLength(body, 'latin1')}:${body},`, 'latin1');
}

/** Mongrel2's keys for a request on a fresh connection (closed after its answer), plus `extra`. */
export function m2requestHeaders(path: string, extra: Record<string, string | string[]> = {}, uri = path): Record<string, string | string[]> {
  return { PATH: path, METHOD: 'GET', VERSION: 'HTTP/1.1', URI: uri, PATTERN: '/', REMOTE_ADDR: '127.0.0.1', DOWNLOAD_CREDITS: '1048576', host: 'x', connection: 'close', ...extra };
}

/** A fake Mongrel2 with a gateway (in this process) behind it, and a way to exchange one frame. */
export interface FakeChain {
  readonly m2: FakeMongrel2;
  readonly gateway: Gateway;
  /** Pushes the frame built for a fresh connection id; resolves with the first reply payload for it (a "no answer" text after 5 s). */
  send(build: (connId: number) => Buffer): Promise<string>;
  close(): Promise<void>;
}

export async function fakeChain(upstreamUrl: string, extraToml = '', firstConnId = 7000): Promise<FakeChain> {
  const m2 = await fakeMongrel2(upstreamUrl, extraToml);
  const sink = new Writable({ objectMode: true, write: (_info, _e, cb) => cb() });
  const gateway = await startGateway(m2.config, winston.createLogger({ level: 'info', transports: [new winston.transports.Stream({ stream: sink })] }));
  const waiting = new Map<string, (payload: string) => void>();
  const replies = routeReplies(m2, waiting);
  let nextConn = firstConnId;
  return {
    m2,
    gateway,
    async send(build) {
      const connId = nextConn++;
      const answered = new Promise<string>((resolve) => waiting.set(String(connId), resolve));
      await m2.push.send(build(connId));
      const payload = await Promise.race([answered, sleep(5000).then(() => `no answer for conn ${connId}`)]);
      waiting.delete(String(connId));
      return payload;
    },
    async close() {
      replies.stop();
      await gateway.drain(500);
      m2.close();
    },
  };
}
