#!/usr/bin/env bash
# The test command: installs what it needs, builds, typechecks, lints, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run --silent build
npx eslint src test bench
node --test --test-concurrency=2 --test-timeout=180000 dist/test/
