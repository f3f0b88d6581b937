/**
 * Renders the rows the hostile suites write (M2GW_HOSTILE_TABLE, one JSON object per line)
 * as the markdown table of the closing note: attack, what the attacker got, RSS, innocent p99.
 */
import { readFileSync } from 'node:fs';
import type { HostileRow } from '../test/integration/hostile-support.js';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node dist/bench/hostile-table.js ROWS.jsonl\n');
  process.exit(2);
}
const rows = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '')
  .map((l) => JSON.parse(l) as HostileRow);
const ms = (n: number | null): string => (n === null || Number.isNaN(n) ? '–' : `${n} ms`);
const out = ['| from | attack | attacker got | RSS | innocent p99 (baseline) | innocent requests |', '|---|---|---|---|---|---|'];
for (const r of rows) {
  out.push(`| ${r.suite} | ${r.attack} | ${r.attackerGot} | ${r.rssMiB} MiB | ${ms(r.innocentP99Ms)} (${ms(r.baselineP99Ms)}) | ${r.innocentRequests} |`);
}
process.stdout.write(out.join('\n') + '\n');
