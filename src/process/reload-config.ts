/**
 * What a SIGHUP reads: the config file, validated as `m2gw check` would, and how its
 * [[handler]] sections map onto the running ones.
 *
 * Handlers are identified by their socket spec, not their position: a handler whose
 * send_spec, recv_spec and recv_ident are all unchanged keeps its id (its sockets stay
 * connected, its connections stay with their workers), whatever moved around it. Any
 * other handler in the new file is added (new id, new sockets); a running one the new
 * file no longer has is removed. A changed one (same send_spec, other recv_spec or
 * recv_ident) is both: it is added, and the old one is removed; live-handlers.ts links
 * them as twins (by send_spec, with any handler still draining on it) so the supervisor
 * can route a connection's messages to whichever holds it.
 */
import fs from 'node:fs';
import { parseConfigText } from '../config/load.js';
import { formatProblems } from '../errors.js';
import type { Config, HandlerConfig } from '../config/schema.js';

export type ReloadInput =
  | { readonly ok: true; readonly config: Config; readonly text: string; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly message: string; readonly problems: readonly string[] };

export function readReloadConfig(file: string): ReloadInput {
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
  return { ok: true, config, text, warnings: lines };
}

export interface RunningHandler {
  readonly id: number;
  readonly config: HandlerConfig;
}

export interface HandlerPlan {
  /** The id of each handler of the new config, in its order (what its workers are told). */
  readonly ids: readonly number[];
  readonly added: ReadonlyArray<{ readonly id: number; readonly config: HandlerConfig }>;
  /** Running handlers the new config does not have. */
  readonly removed: ReadonlyArray<{ readonly id: number }>;
}

function sameSockets(a: HandlerConfig, b: HandlerConfig): boolean {
  return a.sendSpec === b.sendSpec && a.recvSpec === b.recvSpec && a.recvIdent === b.recvIdent;
}

export function planHandlers(running: readonly RunningHandler[], next: readonly HandlerConfig[], newId: () => number): HandlerPlan {
  const kept = new Set<number>();
  const ids: number[] = [];
  const added: Array<{ id: number; config: HandlerConfig }> = [];
  for (const config of next) {
    const same = running.find((r) => !kept.has(r.id) && sameSockets(r.config, config));
    if (same) {
      kept.add(same.id);
      ids.push(same.id);
    } else {
      const id = newId();
      ids.push(id);
      added.push({ id, config });
    }
  }
  const removed = running.filter((r) => !kept.has(r.id)).map((r) => ({ id: r.id }));
  return { ids, added, removed };
}
