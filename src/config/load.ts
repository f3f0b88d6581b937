/**
 * gw.toml → validated, deep-frozen Config. Every problem in the file is collected and
 * reported together (with key and line) rather than failing on the first, so one
 * `m2gw check` shows everything to fix.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { ConfigError, type ConfigProblem } from '../errors.js';
import type { Config } from './schema.js';
import { MAX_TRACKED_NESTING, scanKeyLines } from './key-lines.js';
import { Problems } from './problems.js';
import { readAdmin } from './read-admin.js';
import { readGateway, readHandlers, readLog, readRoutes } from './read-sections.js';
import { readUpstreams } from './read-upstreams.js';
import { TableReader } from './table-reader.js';

export interface LoadResult {
  /** null iff any problem is an error (warnings alone still give a config). */
  config: Config | null;
  problems: ConfigProblem[];
}

/** Dotted parts in one key or table name, and nesting of inline tables and arrays: far above any real config. */
export const MAX_KEY_PARTS = 64;

/** `file` is only used to resolve relative paths and is recorded as Config.file; it is not read. */
export function parseConfigText(text: string, file: string): LoadResult {
  const absFile = path.resolve(file);
  // Key lines first: the scan is linear and lenient, and it lets a key path too deep for any real
  // config be refused before the TOML parser builds one nested table per part (GC-heavy and
  // superlinear in practice past ~64 KiB of `a.a.a…`).
  const lines = scanKeyLines(text);
  if (lines.deepest.parts > MAX_KEY_PARTS) {
    const message = `a key or table name with ${lines.deepest.parts} dotted parts: at most ${MAX_KEY_PARTS}`;
    return { config: null, problems: [{ key: '(toml)', line: lines.deepest.line, message, severity: 'error' }] };
  }
  if (lines.nestedTooDeep !== null) {
    const message = `arrays or inline tables nested more than ${MAX_TRACKED_NESTING} deep`;
    return { config: null, problems: [{ key: '(toml)', line: lines.nestedTooDeep, message, severity: 'error' }] };
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(text, { maxDepth: MAX_KEY_PARTS });
  } catch (err) {
    return { config: null, problems: [syntaxProblem(err)] };
  }

  const problems = new Problems(lines);
  const root = new TableReader(doc, '', { problems, baseDir: path.dirname(absFile) });
  const gateway = readGateway(root.table('gateway'));
  const admin = readAdmin(root.table('admin'));
  const log = readLog(root.table('log'));
  const handlers = readHandlers(root);
  const { upstreams, names } = readUpstreams(root);
  const routes = readRoutes(root, names);
  root.reportUnknownKeys();

  const used = new Set(routes.map((r) => r.upstream));
  for (const name of Object.keys(upstreams)) {
    if (!used.has(name)) problems.warn(`upstream.${name}`, 'no [[route]] uses this upstream');
  }

  const config: Config = { file: absFile, handlers, upstreams, routes, gateway, admin, log };
  return { config: problems.hasErrors ? null : deepFreeze(config), problems: problems.sorted() };
}

export function loadConfig(file: string): LoadResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : errorMessage(err);
    return { config: null, problems: [{ key: '(file)', message: `cannot read ${file}: ${reason}`, severity: 'error' }] };
  }
  return parseConfigText(text, file);
}

/** For the daemon: a config or a ConfigError listing every error (warnings are the caller's to log). */
export function loadConfigOrThrow(file: string): Config {
  const { config, problems } = loadConfig(file);
  if (config === null) throw new ConfigError(file, problems.filter((p) => p.severity !== 'warning'));
  return config;
}

function syntaxProblem(err: unknown): ConfigProblem {
  if (err instanceof TomlError) {
    // The message carries a code excerpt after a blank line; the line number says enough.
    const first = err.message.split('\n')[0] ?? err.message;
    const message = `${first.replace(/^Invalid TOML document: /, '')} (column ${err.column})`;
    return { key: '(toml)', line: err.line, message: `TOML syntax error: ${message}`, severity: 'error' };
  }
  return { key: '(toml)', message: `TOML syntax error: ${errorMessage(err)}`, severity: 'error' };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
