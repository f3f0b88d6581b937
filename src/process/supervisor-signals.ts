/**
 * The supervisor's signals (supervisor.ts lists what each does).
 */
import { reopenLogFiles } from '../log.js';
import type { Supervisor } from './supervisor.js';

export function installSignals(sup: Supervisor): void {
  process.on('SIGHUP', () => void sup.reload());
  process.on('SIGTERM', () => void sup.shutdown('SIGTERM'));
  process.on('SIGINT', () => void sup.shutdown('SIGINT'));
  process.on('SIGUSR1', () => {
    reopenLogFiles(sup.log);
    for (const w of sup.workers.values()) w.reopenLogs();
    sup.log.info('log files reopened', { workers: sup.workers.size });
  });
}
