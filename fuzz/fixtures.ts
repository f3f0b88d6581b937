/** Captured fixtures the fuzzers start from (test/fixtures/mongrel2, test/fixtures/fastcgi, config/). */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

export const repoRoot: string = findRepoRoot();

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
