#!/usr/bin/env bash
# Builds everything, each part only when its inputs changed:
# BPF objects (build/bpf, build/bench), the N-API addon (native/build), TypeScript (dist).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-bpf.sh
if [ ! -f native/build/Release/vigil_bpf.node ] || [ -n "$(find native bpf/vigil.h -newer native/build/Release/vigil_bpf.node \( -name '*.cc' -o -name '*.h' -o -name binding.gyp \) 2>/dev/null)" ]; then
  echo "build: native addon" >&2
  (cd native && ../node_modules/.bin/node-gyp rebuild --silent --nodedir=/usr >/dev/null)
fi
bash scripts/build-c.sh
node scripts/gen-kernel-abi.mjs
node scripts/gen-kernel-enums.mjs
echo "build: typescript" >&2
node_modules/.bin/tsc -p tsconfig.json
