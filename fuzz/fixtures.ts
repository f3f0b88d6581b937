/** Captured fixtures the fuzzers start from (test/fixtures/mongrel2, test/fixtures/fastcgi, config/). */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../test/unit/fixtures.js';

export { repoRoot };

/** Contents of the files in `dir` (repo-relative) whose names pass `filter`, in name order. */
export function filesIn(dir: string, filter: (name: string) => boolean = () => true): Buffer[] {
  const abs = path.join(repoRoot, dir);
  return readdirSync(abs)
    .filter(filter)
    .sort()
    .map((n) => readFileSync(path.join(abs, n)));
}

export const mongrel2Requests = (protocol: 'json' | 'tnet'): Buffer[] =>
  filesIn('test/fixtures/mongrel2', (n) => n.endsWith(`.${protocol}-protocol.bin`));

export const fastcgiStreams = (): Buffer[] => filesIn('test/fixtures/fastcgi', (n) => n.endsWith('.bin'));
