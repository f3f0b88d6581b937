/**
 * Reads the one PHP-FPM pool setting m2gw sizes itself against. A kept-alive FastCGI
 * connection pins an FPM child for as long as it is open, so more connections than
 * pm.max_children leaves requests stuck in FPM's backlog behind idle connections.
 */
import fs from 'node:fs';

export type FpmPoolRead =
  | { kind: 'missing' }
  | { kind: 'unreadable'; message: string }
  /** maxChildren null: the file has no usable pm.max_children. */
  | { kind: 'ok'; maxChildren: number | null; raw: string | null };

export function readFpmPool(file: string): FpmPoolRead {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'unreadable', message: err instanceof Error ? err.message : String(err) };
  }
  const raw = findIniValue(text, 'pm.max_children');
  if (raw === null) return { kind: 'ok', maxChildren: null, raw };
  const n = /^\d+$/.test(raw) ? Number(raw) : null;
  return { kind: 'ok', maxChildren: n, raw };
}

/** First `name = value` outside comments; quotes around the value are dropped. */
export function findIniValue(text: string, name: string): string | null {
  for (const line of text.split(/\r?\n/)) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith(';') || trimmed.startsWith('#')) continue;
    const eq = trimmed.indexOf('=');
    if (eq === -1 || trimmed.slice(0, eq).trim() !== name) continue;
    let value = trimmed.slice(eq + 1).trim();
    const comment = value.search(/\s;/);
    if (comment !== -1) value = value.slice(0, comment).trim();
    return value.replace(/^"(.*)"$/, '$1');
  }
  return null;
}
