#!/usr/bin/env bash
# Mounts bpffs and tracefs when they are missing (BPF pinning and tracepoint formats need them).
set -euo pipefail
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs none /sys/kernel/tracing
