/**
 * `m2gw start|check|stop|reload|status --config gw.toml`. Exit codes: 0 ok,
 * 1 invalid config or failure, 2 usage error.
 */
import { Command } from 'commander';
import { formatProblems, loadConfig } from './config/load.js';
import { VERSION } from './version.js';
import { ControlError, reloadCommand, startCommand, statusCommand, stopCommand, type ControlOptions } from './process/control.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program.name('m2gw').description('Mongrel2 handler gateway to HTTP and FastCGI upstreams').version(VERSION, '-v, --version');

  program
    .command('check')
    .description('validate a config file: lists every problem with its key and line; exit 0 if usable')
    .requiredOption('-c, --config <file>', 'path to gw.toml')
    .action((opts: { config: string }) => {
      const { config, problems } = loadConfig(opts.config);
      if (problems.length > 0) console.error(formatProblems(opts.config, problems));
      if (!config) {
        process.exitCode = 1;
        return;
      }
      console.log(`${opts.config}: OK (${config.handlers.length} handler(s), ${Object.keys(config.upstreams).length} upstream(s), ${config.routes.length} route(s))`);
    });

  program
    .command('start')
    .description('run the gateway in the foreground: a supervisor and [gateway] workers processes')
    .requiredOption('-c, --config <file>', 'path to gw.toml')
    .option('--single', 'one process, no supervisor or workers (no reload, no admin listener)')
    .action(async (opts: { config: string; single?: boolean }) => {
      process.exitCode = await startCommand(opts.config, opts.single === true);
    });

  const target = (cmd: Command): Command =>
    cmd
      .option('-c, --config <file>', 'path to gw.toml (for pid_file and [admin] listen)')
      .option('-p, --pid-file <file>', 'pid file of the running m2gw (instead of --config)')
      .option('-a, --admin <host:port>', 'admin listener of the running m2gw (instead of --config)');

  target(program.command('stop').description('SIGTERM the running m2gw and wait until it has drained and exited'))
    .option('--no-wait', 'return once the signal is sent')
    .action(async (opts: ControlOptions & { wait: boolean }) => {
      process.exitCode = await control(() => stopCommand(opts));
    });

  target(program.command('reload').description('SIGHUP the running m2gw; with [admin], wait for and print the result'))
    .action(async (opts: ControlOptions) => {
      process.exitCode = await control(() => reloadCommand(opts));
    });

  target(program.command('status').description('workers, uptime, in-flight requests and upstream health (needs [admin])'))
    .option('--json', 'print the raw /status JSON')
    .action(async (opts: ControlOptions & { json?: boolean }) => {
      process.exitCode = await control(() => statusCommand({ ...opts, json: opts.json === true }));
    });

  await program.parseAsync(argv);
}

/** stop/reload/status: a failure (no pid file, daemon not reachable, ...) is one line on stderr and exit 1. */
async function control(run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    console.error(`m2gw: ${err instanceof ControlError ? err.message : String(err.message)}`);
    return 1;
  }
}
