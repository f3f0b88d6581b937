/**
 * `m2gw start|check|stop|reload|status --config gw.toml`, `m2gw init`. Exit codes: 0 ok,
 * 1 invalid config or failure, 2 usage error.
 */
import { Command } from 'commander';
import type { CheckOptions } from './commands/check.js';
import { describeInit, INIT_DEFAULTS, InitError, runInit, type InitOptions } from './commands/init.js';
import { VERSION } from './version.js';
import { ControlError, reloadCommand, startCommand, statusCommand, stopCommand, type ControlOptions } from './process/control.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program.name('m2gw').description('Mongrel2 handler gateway to HTTP and FastCGI upstreams').version(VERSION, '-v, --version');

  program
    .command('check')
    .description('validate a config file: lists every problem with its key and line; exit 0 if usable')
    .requiredOption('-c, --config <file>', 'path to gw.toml')
    .option('-m, --mongrel2 <config.sqlite>', "also compare with Mongrel2's compiled config (m2sh load output)")
    .action(async (opts: CheckOptions) => {
      // Loaded on use: a running daemon should not hold check's Mongrel2-database reader.
      const { checkCommand } = await import('./commands/check.js');
      process.exitCode = await checkCommand(opts);
    });

  program
    .command('init')
    .description('write a matching mongrel2.conf and gw.toml (never replaces a file without --force)')
    .option('--http <url>', 'HTTP application to forward to, e.g. http://127.0.0.1:3000')
    .option('--php <document_root>', 'PHP application (PHP-FPM) document root, e.g. /srv/app/public')
    .option('--fpm <address>', 'PHP-FPM address: unix:/path.sock or host:port', INIT_DEFAULTS.fpm)
    .option('-d, --dir <dir>', 'where to write the two files', INIT_DEFAULTS.dir)
    .option('--chroot <dir>', "Mongrel2's chroot (default: --dir)")
    .option('--port <port>', "Mongrel2's HTTP port", INIT_DEFAULTS.port)
    .option('--send-spec <spec>', 'handler send_spec (Mongrel2 binds, m2gw connects)', INIT_DEFAULTS.sendSpec)
    .option('--recv-spec <spec>', 'handler recv_spec', INIT_DEFAULTS.recvSpec)
    .option('-f, --force', 'replace existing files')
    .action((opts: InitOptions) => {
      try {
        console.log(describeInit(runInit(opts), opts));
      } catch (err) {
        if (!(err instanceof InitError)) throw err;
        console.error(`m2gw init: ${err.message}`);
        process.exitCode = 1;
      }
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
