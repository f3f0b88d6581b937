/**
 * What a SIGHUP reads: the config file, validated as `m2gw check` would, plus the
 * one thing a reload cannot change — the [[handler]] sockets the supervisor holds.
 */
import fs from 'node:fs';
import { parseConfigText } from '../config/load.js';
import { formatProblems } from '../errors.js';
import type { Config, HandlerConfig } from '../config/schema.js';

export type ReloadInput =
  | { readonly ok: true; readonly config: Config; readonly text: string; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly message: string; readonly problems: readonly string[] };

export function readReloadConfig(file: string, running: readonly HandlerConfig[]): ReloadInput {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, message: `cannot read ${file}: ${String(err)}; keeping the running config`, problems: [] };
  }
  const { config, problems } = parseConfigText(text, file);
  const lines = formatProblems(file, problems).split('\n').filter(Boolean);
  if (!config) {
    const errors = problems.filter((p) => p.severity !== 'warning').length;
    return { ok: false, message: `${errors} problem(s) in ${file} (see the log); keeping the running config`, problems: lines };
  }
  const changed = handlerChange(running, config.handlers);
  if (changed) return { ok: false, message: `${changed}: [[handler]] changes need a restart; keeping the running config`, problems: [] };
  return { ok: true, config, text, warnings: lines };
}

/** Why the new handlers cannot be applied by a reload, or null. */
export function handlerChange(old: readonly HandlerConfig[], next: readonly HandlerConfig[]): string | null {
  if (old.length !== next.length) return `the number of [[handler]] sections changed (${old.length} → ${next.length})`;
  for (let i = 0; i < old.length; i++) {
    const a = old[i]!;
    const b = next[i]!;
    for (const [k, toml] of [['sendSpec', 'send_spec'], ['recvSpec', 'recv_spec'], ['recvIdent', 'recv_ident']] as const) {
      if (a[k] !== b[k]) return `handler ${i + 1}: ${toml} changed (${JSON.stringify(a[k])} → ${JSON.stringify(b[k])})`;
    }
  }
  return null;
}
