/**
 * winston factory. Structured JSON (or a readable text line) to stdout or a file;
 * SIGUSR1 reopens the file (logrotate's copytruncate-free rotation).
 */
import winston from 'winston';
import type { LogConfig } from './config/schema.js';

export type Logger = winston.Logger;

export function createLogger(cfg: Pick<LogConfig, 'level' | 'format' | 'file'>, meta: Record<string, unknown> = {}): Logger {
  const format =
    cfg.format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, ...rest }) => {
            const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
            return `${String(timestamp)} ${level} ${String(message)}${extra}`;
          }),
        );
  const transport = cfg.file
    ? new winston.transports.File({ filename: cfg.file })
    : new winston.transports.Console();
  return winston.createLogger({ level: cfg.level, format, transports: [transport], defaultMeta: meta });
}

/** Reopen file transports: remove and re-add them so the file is opened anew. */
export function reopenLogFiles(logger: Logger): void {
  for (const t of [...logger.transports]) {
    if (t instanceof winston.transports.File) {
      const filename = t.filename;
      const dirname = t.dirname;
      logger.remove(t);
      t.close?.();
      logger.add(new winston.transports.File({ filename: `${dirname}/${filename}` }));
    }
  }
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
