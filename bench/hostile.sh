#!/bin/sh
# The hostile suites of issue 11 (test/integration/hostile-*.test.ts) run alone, one file at a
# time, with the strict bound (an innocent client's p99 within 2× of its baseline, + 2 ms for
# timer noise), and their table: each attack, what the attacker got, RSS, the innocent p99.
# Output: bench/results/hostile-<date>.md (and the raw rows, .jsonl). BENCH_NO_BUILD=1 skips tsc.
set -e
cd "$(dirname "$0")/.."
if [ "${BENCH_NO_BUILD:-}" != "1" ]; then npx tsc -p . >/dev/null 2>&1 || echo "hostile: tsc reported errors; running the emitted JavaScript anyway" >&2; fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
rows="bench/results/hostile-$stamp.jsonl"
mkdir -p bench/results
: >"$rows"
status=0
for f in upstream client mongrel2; do
  M2GW_HOSTILE_STRICT=1 M2GW_HOSTILE_TABLE="$rows" node --test --test-timeout=300000 "dist/test/integration/hostile-$f.test.js" || status=1
done
node dist/bench/hostile-table.js "$rows" | tee "bench/results/hostile-$stamp.md"
exit $status
