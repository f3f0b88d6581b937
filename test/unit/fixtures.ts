/**
 * Locates the Mongrel2 fixtures: raw messages captured from a real Mongrel2 1.12.2, copied from
 * shared/mongrel2/fixtures into test/fixtures/mongrel2 so a clone needs nothing beside it. The
 * repo root is found from this file (src or dist alike) rather than hard-coded.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../fuzz/fixtures.js';

export { repoRoot };
export const mongrel2FixturesDir: string = path.join(repoRoot, 'test/fixtures/mongrel2');

/** Raw bytes of one Mongrel2 fixture, e.g. fixture('get-query.json-protocol.bin'). */
export function fixture(name: string): Buffer {
  return readFileSync(path.join(mongrel2FixturesDir, name));
}

/** A fixture message with its connection id (second token) replaced. */
export function onConnection(msg: Buffer, connId: number): Buffer {
  const sp1 = msg.indexOf(0x20);
  const sp2 = msg.indexOf(0x20, sp1 + 1);
  return Buffer.concat([msg.subarray(0, sp1 + 1), Buffer.from(String(connId)), msg.subarray(sp2)]);
}

/** Sorted fixture file names, optionally filtered. */
export function fixtureNames(filter: (name: string) => boolean = () => true): string[] {
  return readdirSync(mongrel2FixturesDir)
    .filter((n) => n.endsWith('.bin') && filter(n))
    .sort();
}

/** Request-side fixtures (Mongrel2 → handler), both protocols. */
export function requestFixtureNames(): string[] {
  return fixtureNames((n) => n.endsWith('.json-protocol.bin') || n.endsWith('.tnet-protocol.bin'));
}
