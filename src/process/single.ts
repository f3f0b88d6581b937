/**
 * One process that is both receiver and worker (`m2gw start --single`): the simplest
 * way to run m2gw, and the baseline the worker mode is measured against. Signals:
 * SIGTERM/SIGINT drain then exit 0 (a second signal forces exit), SIGUSR1 reopens
 * log files. No reload (SIGHUP is logged and ignored), no admin listener: those
 * need the supervisor.
 */
import type { Config } from '../config/schema.js';
import { Gateway, type GatewayHooks } from '../gateway/gateway.js';
import { createLogger, reopenLogFiles, type Logger } from '../log.js';
import { createUpstreams } from '../upstream/registry.js';
import { removePidFile, writePidFile } from './pid-file.js';

export async function startGateway(config: Config, logger: Logger, hooks?: GatewayHooks, publishOnly = false): Promise<Gateway> {
  const upstreams = createUpstreams(config, logger);
  const gateway = new Gateway({ config, logger, upstreams, ...(hooks ? { hooks } : {}), publishOnly });
  await gateway.start();
  return gateway;
}

export async function runSingleProcess(config: Config): Promise<void> {
  const logger = createLogger(config.log, { pid: process.pid });
  const pidFile = config.gateway.pidFile;
  if (pidFile) writePidFile(pidFile);
  const gateway = await startGateway(config, logger);
  logger.info('m2gw ready (single process)', { handlers: config.handlers.length, upstreams: Object.keys(config.upstreams), routes: config.routes.length });
  let stopping = false;
  const exit = (code: number): void => {
    if (pidFile) removePidFile(pidFile);
    logger.on('finish', () => process.exit(code));
    logger.end();
    setTimeout(() => process.exit(code), 500).unref();
  };
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      if (pidFile) removePidFile(pidFile);
      process.exit(1);
    }
    stopping = true;
    logger.info('draining', { signal, in_flight: gateway.inFlight, timeout_ms: config.gateway.drainTimeoutMs });
    gateway.drain(config.gateway.drainTimeoutMs).then(
      (left) => {
        logger.info('stopped', { unfinished: left });
        exit(0);
      },
      (err: unknown) => {
        logger.error('drain failed', { error: String(err) });
        exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGUSR1', () => reopenLogFiles(logger));
  process.on('SIGHUP', () => logger.warn('SIGHUP ignored: reload needs the supervisor (start without --single)'));
}
