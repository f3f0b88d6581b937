#!/usr/bin/env bash
# The test command: installs what it needs, lints, builds and runs every test
# (`npm test`: the one definition of how the suite runs, shared with .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npx eslint src test bench fuzz
npm test
