#!/usr/bin/env bash
# Builds the C programs under test/: the benchmark's reference consumer and
# load generators (build/bench/, linked with libbpf), and the static test
# fixtures (build/fixtures/).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bench build/fixtures

stale() { # output inputs...
  local out=$1; shift
  [ ! -f "$out" ] && return 0
  for input; do [ "$input" -nt "$out" ] && return 0; done
  return 1
}

for src in test/bench/*.c; do
  case "$src" in *.bpf.c) continue;; esac
  out="build/bench/$(basename "${src%.c}")"
  if stale "$out" "$src" bpf/vigil.h test/bench/bench-common.h; then
    echo "build: $src" >&2
    cc -O2 -Wall -Werror -I bpf -o "$out" "$src" -lbpf -lelf -lz
  fi
done

# The exec-prevention test's fork-then-exec variant keeps its target path in .rodata.
exec_target=/run/vigil-test/exec-target
if stale build/fixtures/probe test/fixtures/probe.c; then
  echo "build: test/fixtures/probe.c" >&2
  cc -static -O2 -Wall -Werror -o build/fixtures/probe test/fixtures/probe.c
  cc -static -O2 -Wall -Werror -DEXEC_TARGET="\"$exec_target\"" -o build/fixtures/probe-rodata test/fixtures/probe.c
fi
