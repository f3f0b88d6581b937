/** Entry point of a worker process (forked by the supervisor with an IPC channel and fd 4). */
import { runWorker } from './worker.js';

runWorker().catch((err: unknown) => {
  console.error(err instanceof Error && err.stack ? err.stack : String(err));
  process.exit(1);
});
