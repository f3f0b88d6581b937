/** Shared by the config tests: repo root, temp dirs, and where a needle sits in a text. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import type { ConfigProblem } from '../../../src/errors.js';

/** The directory holding package.json, found from this file (works from src or dist, any clone). */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

/** A fresh temp directory, removed when the test file ends. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'm2gw-config-test-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * 1-based line of the only line containing `needle`. Tests compute expected lines
 * this way (plain text search) rather than trusting the scanner under test.
 */
export function lineOf(text: string, needle: string): number {
  const lines = text.split('\n');
  const hits = lines.flatMap((l, i) => (l.includes(needle) ? [i + 1] : []));
  assert.equal(hits.length, 1, `needle ${JSON.stringify(needle)} must occur on exactly one line, found ${hits.length}`);
  return hits[0] ?? 0;
}

/** The one problem filed under `key`; fails the test when there is none or several. */
export function problemAt(problems: readonly ConfigProblem[], key: string): ConfigProblem {
  const hits = problems.filter((p) => p.key === key);
  assert.equal(hits.length, 1, `expected one problem at ${key}, got: ${JSON.stringify(problems, null, 1)}`);
  const [hit] = hits;
  assert.ok(hit);
  return hit;
}

/** A minimal valid config (one handler, one http upstream, one route) to add mistakes to. */
export const BASE = `[[handler]]
send_spec = "tcp://127.0.0.1:9997"
recv_spec = "tcp://127.0.0.1:9996"

[upstream.web]
type = "http"
url = "http://127.0.0.1:3000"

[[route]]
prefix = "/"
upstream = "web"
`;
