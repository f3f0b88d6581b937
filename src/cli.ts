/**
 * `m2gw start|check|stop|reload|status --config gw.toml`. Exit codes: 0 ok,
 * 1 invalid config or failure, 2 usage error.
 */
import { Command } from 'commander';
import { formatProblems, loadConfig } from './config/load.js';
import { VERSION } from './version.js';
import { runSingleProcess } from './process/single.js';

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
    .description('run the gateway in the foreground')
    .requiredOption('-c, --config <file>', 'path to gw.toml')
    .action(async (opts: { config: string }) => {
      const { config, problems } = loadConfig(opts.config);
      if (problems.length > 0) console.error(formatProblems(opts.config, problems));
      if (!config) {
        process.exitCode = 1;
        return;
      }
      await runSingleProcess(config);
    });

  await program.parseAsync(argv);
}
