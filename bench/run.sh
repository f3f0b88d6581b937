#!/bin/sh
# m2gw benchmark entry point: build (tsc compiles src, test and bench into dist/), then run.
# Flags: see bench/README.md or `bench/run.sh --help`. BENCH_NO_BUILD=1 skips the build.
set -e
cd "$(dirname "$0")/.."
if [ "${BENCH_NO_BUILD:-}" != "1" ]; then
  tsc_log="${TMPDIR:-/tmp}/m2gw-bench-tsc.log"
  # Other files may not type-check at a given moment; tsc still emits, so only report.
  npx tsc -p . >"$tsc_log" 2>&1 || echo "bench: tsc reported errors (see $tsc_log); running the emitted JavaScript anyway" >&2
fi
# The websocket scenario has its own driver (bench/websocket.ts): bench/run.sh websocket [--duration S]
if [ "${1:-}" = "websocket" ]; then shift; exec node dist/bench/websocket.js "$@"; fi
exec node dist/bench/run.js "$@"
