#!/usr/bin/env bash
# Lint, then every test (unit, kernel, end-to-end) with Node's own test runner.
# Kernel tests load real BPF: they fail, never skip, when the kernel refuses.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "lint: tsc, eslint, buf" >&2
node_modules/.bin/eslint .
node_modules/.bin/buf lint
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
exec node --test --test-reporter=spec "${files[@]}"
