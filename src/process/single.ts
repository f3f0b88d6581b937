/**
 * One process that is both receiver and worker: the simplest way to run m2gw,
 * and what each worker builds on. Signals: SIGTERM/SIGINT drain then exit 0 (a
 * second signal forces exit), SIGUSR1 reopens log files.
 */
import type { Config } from '../config/schema.js';
import { Gateway, type GatewayHooks } from '../gateway/gateway.js';
import { createLogger, reopenLogFiles, type Logger } from '../log.js';
import { createUpstreams } from '../upstream/registry.js';

export interface RunningGateway {
  readonly gateway: Gateway;
  readonly logger: Logger;
  stop(): Promise<number>;
}

export async function startGateway(config: Config, logger: Logger, hooks?: GatewayHooks, publishOnly = false): Promise<Gateway> {
  const upstreams = createUpstreams(config, logger);
  const gateway = new Gateway({ config, logger, upstreams, ...(hooks ? { hooks } : {}), publishOnly });
  await gateway.start();
  return gateway;
}

export async function runSingleProcess(config: Config): Promise<void> {
  const logger = createLogger(config.log, { pid: process.pid });
  const gateway = await startGateway(config, logger);
  logger.info('m2gw ready', { handlers: config.handlers.length, upstreams: Object.keys(config.upstreams), routes: config.routes.length });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('draining', { signal, in_flight: gateway.inFlight, timeout_ms: config.gateway.drainTimeoutMs });
    gateway.drain(config.gateway.drainTimeoutMs).then(
      (left) => {
        logger.info('stopped', { unfinished: left });
        logger.on('finish', () => process.exit(0));
        logger.end();
        setTimeout(() => process.exit(0), 500).unref();
      },
      (err: unknown) => {
        logger.error('drain failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGUSR1', () => reopenLogFiles(logger));
}
