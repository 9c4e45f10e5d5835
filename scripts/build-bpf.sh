#!/usr/bin/env bash
# Compiles bpf/*.bpf.c to build/bpf/*.bpf.o and test/bench/*.bpf.c to build/bench/*.bpf.o.
# vmlinux.h is generated from this kernel's BTF at build time, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bpf build/bench
if [ ! -s build/vmlinux.h ]; then
  bpftool btf dump file /sys/kernel/btf/vmlinux format c > build/vmlinux.h.tmp
  mv build/vmlinux.h.tmp build/vmlinux.h
fi
compile() { # source output
  if [ ! -f "$2" ] || [ "$1" -nt "$2" ] || [ bpf/vigil.h -nt "$2" ] || [ -n "$(find bpf -name '*.h' -newer "$2")" ]; then
    echo "build: $1" >&2
    clang -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
      -I build -I bpf -I /usr/include/x86_64-linux-gnu -c "$1" -o "$2"
  fi
}
for src in bpf/*.bpf.c; do [ -e "$src" ] && compile "$src" "build/bpf/$(basename "${src%.c}").o"; done
for src in test/bench/*.bpf.c; do [ -e "$src" ] && compile "$src" "build/bench/$(basename "${src%.c}").o"; done
exit 0
