/**
 * `m2gw check --config gw.toml [--mongrel2 config.sqlite]`: every problem of the file,
 * then (with --mongrel2) every disagreement with Mongrel2's compiled config, each as
 * `gw.toml:LINE: KEY: message`. Exit 0 when the gateway would work (warnings allowed),
 * 1 otherwise.
 */
import fs from 'node:fs';
import { loadConfig } from '../config/load.js';
import { formatProblems } from '../errors.js';
import { scanKeyLines } from '../config/key-lines.js';
import { crossCheckMongrel2 } from '../config/mongrel2-crosscheck.js';
import { Mongrel2DbError, readMongrel2Db } from '../config/mongrel2-db.js';

export interface CheckOptions {
  config: string;
  mongrel2?: string;
}

export async function checkCommand(opts: CheckOptions): Promise<number> {
  const { config, problems } = loadConfig(opts.config);
  if (problems.length > 0) console.error(formatProblems(opts.config, problems));
  if (!config) return 1;
  const summary = `${config.handlers.length} handler(s), ${Object.keys(config.upstreams).length} upstream(s), ${config.routes.length} route(s)`;
  if (opts.mongrel2 === undefined) {
    console.log(`${opts.config}: OK (${summary})`);
    return 0;
  }
  let m2;
  try {
    m2 = await readMongrel2Db(opts.mongrel2);
  } catch (err) {
    if (!(err instanceof Mongrel2DbError)) throw err;
    console.error(`m2gw: ${err.message}`);
    return 1;
  }
  // loadConfig read the file a moment ago; its lines place the cross-check's problems.
  const lines = scanKeyLines(fs.readFileSync(opts.config, 'utf8'));
  const disagreements = crossCheckMongrel2(config, m2, lines);
  if (disagreements.length > 0) console.error(formatProblems(opts.config, disagreements));
  const errors = disagreements.filter((p) => p.severity !== 'warning').length;
  const warnings = disagreements.length - errors;
  const against = `against ${opts.mongrel2} (${m2.handlers.length} Mongrel2 handler(s), ${m2.routes.length} route(s))`;
  if (errors > 0) {
    console.error(`${opts.config}: ${errors} disagreement(s) with Mongrel2${warnings > 0 ? `, ${warnings} warning(s)` : ''} ${against}`);
    return 1;
  }
  console.log(`${opts.config}: OK (${summary}) ${against}${warnings > 0 ? `, ${warnings} warning(s)` : ''}`);
  return 0;
}
