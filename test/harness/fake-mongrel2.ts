/**
 * A fake Mongrel2 (the only way to send broken frames or withhold a subscription): a bound PUSH
 * and an XSUB, which subscribes by message as Mongrel2's libzmq does (zeromq.js's own SUB, when
 * it binds, never lets a connecting XPUB see its subscription), plus a one-route gateway config.
 */
import assert from 'node:assert/strict';
import * as zmq from 'zeromq';
import { parseConfigText } from '../../src/config/load.js';
import { parseReply } from '../../src/mongrel2/reply.js';
import type { Config } from '../../src/config/schema.js';
import { freePort } from './ports.js';

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
