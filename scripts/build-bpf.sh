#!/usr/bin/env bash
# Compiles bpf/*.bpf.c to build/bpf/obj/*.o and links them (BPF static linking)
# into the one object the sensor loads, build/bpf/vigil.bpf.o; compiles each
# test/bench/*.bpf.c to its own build/bench/*.bpf.o.
# vmlinux.h is generated from this kernel's BTF at build time, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/bpf/obj build/bench
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
# maps.bpf.c first: the linker of libbpf 1.1 misplaces a map whose extern
# declaration it meets before the definition (offset 0 in .maps).
parts=()
for src in bpf/maps.bpf.c $(ls bpf/*.bpf.c | grep -v '^bpf/maps.bpf.c$'); do
  part="build/bpf/obj/$(basename "${src%.bpf.c}").o"
  compile "$src" "$part"
  parts+=("$part")
done
linked=build/bpf/vigil.bpf.o
if [ ! -f "$linked" ] || [ -n "$(find "${parts[@]}" -newer "$linked")" ]; then
  echo "link: $linked" >&2
  bpftool gen object "$linked.tmp" "${parts[@]}"
  mv "$linked.tmp" "$linked"
fi
for src in test/bench/*.bpf.c; do [ -e "$src" ] && compile "$src" "build/bench/$(basename "${src%.c}").o"; done
exit 0
