/** Where things are, resolved from this file so the bench runs from any clone location. */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const REPO_ROOT = findRepoRoot();
/** The m2gw executable stub (needs a build: it loads dist/src/cli.js). */
/**
 * M2GW_BENCH_BIN measures another build with this same harness (e.g. a checkout of an earlier
 * commit, for before/after figures whose anchors are measured by the same code).
 */
export const M2GW_BIN = process.env['M2GW_BENCH_BIN'] ?? path.join(REPO_ROOT, 'bin', 'm2gw');
/** Compiled bench scripts live beside this file's compiled form (dist/bench/). */
export const BENCH_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** PHP scripts for the FastCGI scenario (source tree: PHP is not compiled). */
export const PHP_ROOT = path.join(REPO_ROOT, 'bench', 'php');
export const RESULTS_DIR = path.join(REPO_ROOT, 'bench', 'results');
