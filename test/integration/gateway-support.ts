/**
 * Brings up the real chain for an end-to-end test: a real Mongrel2 (from the
 * harness), m2gw's Gateway in this process, and whatever upstreams the test starts.
 * The gateway config goes through the real TOML loader, so tests exercise it too.
 */
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { formatProblems } from '../../src/errors.js';
import type { Gateway, GatewayHooks } from '../../src/gateway/gateway.js';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { Logger } from '../../src/log.js';
import { startGateway } from '../../src/process/single.js';
import { allocHandlerSpecs, startMongrel2, type Mongrel2Instance, type StartMongrel2Options } from '../harness/mongrel2.js';

export interface Chain {
  readonly m2: Mongrel2Instance;
  readonly gateway: Gateway;
  readonly config: Config;
  readonly logs: LogRecord[];
  readonly url: string;
  stop(): Promise<void>;
}

export interface LogRecord {
  level: string;
  message: string;
  [k: string]: unknown;
}

export interface ChainOptions {
  /** TOML for upstream and route sections (handler and log sections are generated). */
  readonly toml: string;
  readonly protocol?: 'json' | 'tnetstring';
  readonly settings?: StartMongrel2Options['settings'];
  readonly hooks?: GatewayHooks;
  /** Mongrel2's send_ident (the sender of every request); default a random UUID. */
  readonly sendIdent?: string;
  /**
   * Where m2gw PULLs from, given Mongrel2's send_spec (default: that spec itself). For a relay
   * that injects a fault Mongrel2 shows only by chance, such as a lost disconnect.
   */
  readonly pullFrom?: (mongrel2SendSpec: string) => Promise<string>;
}

/**
 * `toml` for the usual chain: one HTTP upstream, `app`, at `url`, routed at `/`. `handler`: keys
 * for the generated `[[handler]]` (keepalive, send_timeout); `upstream`: more keys for `app`.
 */
export function oneAppToml(url: string, extra: { handler?: string; upstream?: string } = {}): string {
  return `${extra.handler ?? ''}\n[upstream.app]\ntype = "http"\nurl = "${url}"\n${extra.upstream ?? ''}\n[[route]]\nprefix = "/"\nupstream = "app"\n`;
}

export async function startChain(opts: ChainOptions): Promise<Chain> {
  const [spec] = await allocHandlerSpecs(1);
  const m2 = await startMongrel2({
    handlers: [{ name: 'gw', sendSpec: spec!.sendSpec, recvSpec: spec!.recvSpec, protocol: opts.protocol ?? 'json', ...(opts.sendIdent !== undefined ? { sendIdent: opts.sendIdent } : {}) }],
    routes: [{ path: '/', handler: 'gw' }],
    ...(opts.settings ? { settings: opts.settings } : {}),
  });
  const pullSpec = opts.pullFrom ? await opts.pullFrom(spec!.sendSpec) : spec!.sendSpec;
  const toml = `
[log]
level = "debug"
[[handler]]
send_spec = "${pullSpec}"
recv_spec = "${spec!.recvSpec}"
chroot = "${m2.chroot}"
${opts.toml}
`;
  const { config, problems } = parseConfigText(toml, `${m2.dir}/gw.toml`);
  if (!config) throw new Error('test config invalid:\n' + formatProblems('gw.toml', problems));
  const logs: LogRecord[] = [];
  const logger = recordingLogger(logs);
  const gateway = await startGateway(config, logger, opts.hooks);
  return {
    m2,
    gateway,
    config,
    logs,
    url: m2.url,
    async stop() {
      await gateway.drain(2_000).catch(() => undefined);
      await m2.stop();
    },
  };
}

function recordingLogger(records: LogRecord[]): Logger {
  const sink = new Writable({
    objectMode: true,
    write(info: LogRecord, _enc, cb) {
      records.push(info);
      if (process.env.M2GW_TEST_LOG) process.stderr.write(JSON.stringify(info) + '\n');
      cb();
    },
  });
  return winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream: sink })] });
}
