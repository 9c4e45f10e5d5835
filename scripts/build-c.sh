#!/usr/bin/env bash
# Builds the C programs under test/ (the reference ring-buffer consumer for the benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bench
for src in test/bench/*.c; do
  case "$src" in *.bpf.c) continue;; esac
  [ -e "$src" ] || continue
  out="build/bench/$(basename "${src%.c}")"
  if [ ! -f "$out" ] || [ "$src" -nt "$out" ] || [ bpf/vigil.h -nt "$out" ]; then
    echo "build: $src" >&2
    cc -O2 -Wall -Werror -I bpf -o "$out" "$src" -lbpf -lelf -lz
  fi
done
