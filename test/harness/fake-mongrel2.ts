/**
 * A fake Mongrel2 (the only way to send broken frames or withhold a subscription): a bound PUSH
 * and an XSUB, which subscribes by message as Mongrel2's libzmq does (zeromq.js's own SUB, when
 * it binds, never lets a connecting XPUB see its subscription), plus a one-route gateway config.
 */
import assert from 'node:assert/strict';
import * as zmq from 'zeromq';
import { parseConfigText } from '../../src/config/load.js';
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
