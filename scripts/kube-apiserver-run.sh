#!/usr/bin/env bash
# Runs a real Kubernetes API server for the tests: Debian's etcd (3.4) and the
# kube-apiserver built by scripts/kube-apiserver-build.sh, both on 127.0.0.1,
# with their state, certificates, logs and kubeconfig in DIR.
#
#   kube-apiserver-run.sh [start] DIR   start (wiping old etcd data in DIR), wait
#                                       for /readyz, print DIR/kubeconfig
#   kube-apiserver-run.sh stop DIR      stop both, remove what start wrote in DIR
#
# DIR/kubeconfig: https://127.0.0.1:PORT, the CA that signed the serving cert, and
# an admin bearer token (group system:masters). Authorization is RBAC. There is
# no controller-manager or scheduler: objects are stored and validated, nothing
# reconciles them (pods stay Pending, deleted namespaces stay Terminating).
# DIR/pids holds the PIDs (kube-apiserver, then etcd), one a line.
#
# Env: KUBE_APISERVER (binary; default: newest /var/cache/vigil/kube-apiserver-*/),
#      ETCD (default etcd from PATH, Debian's etcd-server), KUBE_APISERVER_PORT
#      (secure port; default: a free one), KUBE_APISERVER_READY_TIMEOUT (s, 60),
#      KUBE_APISERVER_EXTRA_ARGS (appended to kube-apiserver's flags).
set -euo pipefail

log() { echo "kube-apiserver-run: $*" >&2; }
die() { log "error: $*"; exit 1; }

mode=start
case ${1:-} in
  start | stop) mode=$1; shift ;;
esac
[ $# -eq 1 ] && [ -n "$1" ] || { echo "usage: $0 [start|stop] DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd -P)

# PIDs from DIR/pids that are still ours (their command line names DIR).
our_pids() {
  local pid
  [ -f "$dir/pids" ] || return 0
  while read -r pid; do
    [[ $pid =~ ^[0-9]+$ ]] || continue
    [ -r "/proc/$pid/cmdline" ] && tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/" && echo "$pid"
  done <"$dir/pids"
  return 0
}

stop_all() {
  local pids pid i
  pids=$(our_pids)
  for pid in $pids; do
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in $pids; do
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}

clean_dir() {
  rm -rf "$dir/etcd" "$dir/certs" "$dir/pids" "$dir/kubeconfig" "$dir/tokens.csv" \
    "$dir/etcd.log" "$dir/kube-apiserver.log"
}

if [ "$mode" = stop ]; then
  stop_all
  clean_dir
  rmdir "$dir" 2>/dev/null || true
  log "stopped"
  exit 0
fi

# --- start -------------------------------------------------------------------
t0=$(date +%s.%N)
token_of() { sed -n 's/^    token: //p' "$dir/kubeconfig" 2>/dev/null; }
server_of() { sed -n 's/^    server: //p' "$dir/kubeconfig" 2>/dev/null; }

if [ -n "$(our_pids)" ]; then
  if curl -sf --max-time 2 --cacert "$dir/certs/ca.crt" -H "Authorization: Bearer $(token_of)" \
    "$(server_of)/readyz" >/dev/null 2>&1; then
    log "already running"
    echo "$dir/kubeconfig"
    exit 0
  fi
  log "stale processes in $dir/pids: stopping them"
  stop_all
fi

apiserver=${KUBE_APISERVER:-}
if [ -z "$apiserver" ]; then
  apiserver=$(ls -d /var/cache/vigil/kube-apiserver-*/kube-apiserver 2>/dev/null | sort -V | tail -n1 || true)
fi
[ -n "$apiserver" ] && [ -x "$apiserver" ] ||
  die "no kube-apiserver binary: run scripts/kube-apiserver-build.sh (as root) or set KUBE_APISERVER"
etcd=${ETCD:-$(command -v etcd || true)}
[ -n "$etcd" ] || die "no etcd: apt-get install etcd-server"
for tool in openssl curl; do command -v $tool >/dev/null || die "$tool is missing"; done
timeout=${KUBE_APISERVER_READY_TIMEOUT:-60}

clean_dir
mkdir -p "$dir/certs"
: >"$dir/pids"

# --- ports: free ones on 127.0.0.1, below the ephemeral range ----------------
taken=" $(ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); printf "%s ", a[n] }') "
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
    case $taken in *" $p "*) continue ;; esac
    # Nothing answers there?
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      taken+="$p "
      echo "$p"
      return
    fi
  done
  die "found no free port"
}

# --- certificates and credentials ---------------------------------------------
c=$dir/certs
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj "/CN=vigil-test-kube-ca" -keyout "$c/ca.key" -out "$c/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$c/apiserver.key" -out "$c/apiserver.csr" 2>/dev/null
printf '%s\n' \
  "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" \
  "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
  >"$c/apiserver.ext"
openssl x509 -req -in "$c/apiserver.csr" -CA "$c/ca.crt" -CAkey "$c/ca.key" -CAcreateserial \
  -days 3650 -extfile "$c/apiserver.ext" -out "$c/apiserver.crt" 2>/dev/null
openssl genrsa -out "$c/sa.key" 2048 2>/dev/null
openssl rsa -in "$c/sa.key" -pubout -out "$c/sa.pub" 2>/dev/null
token=$(openssl rand -hex 24)
echo "$token,vigil-admin,vigil-admin,\"system:masters\"" >"$dir/tokens.csv"
chmod 600 "$dir/tokens.csv" "$c"/*.key

# --- etcd ----------------------------------------------------------------------
etcd_pid=""
for attempt in 1 2 3; do
  ep=$(free_port); pp=$(free_port)
  rm -rf "$dir/etcd"
  setsid "$etcd" --name vigil --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "vigil=http://127.0.0.1:$pp" --initial-cluster-state new \
    --logger zap --log-outputs stderr --log-level warn \
    </dev/null >"$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  echo "$etcd_pid" >"$dir/pids"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$etcd_pid" 2>/dev/null || break
    curl -sf --max-time 1 "http://127.0.0.1:$ep/health" 2>/dev/null | grep -q '"health":"true"' && break 2
    sleep 0.1
  done
  kill -0 "$etcd_pid" 2>/dev/null && { stop_all; die "etcd did not become healthy: $(tail -n 20 "$dir/etcd.log")"; }
  grep -q 'address already in use' "$dir/etcd.log" || break
  log "etcd: port clash, retrying"
done
kill -0 "$etcd_pid" 2>/dev/null || { tail -n 30 "$dir/etcd.log" >&2; stop_all; die "etcd exited"; }

# --- kube-apiserver --------------------------------------------------------------
# ServiceAccount admission is off: there is no token controller to create the
# namespaces' `default` ServiceAccount, and pods could not be created without it.
# --insecure-port=0: 1.20 would otherwise also listen on 127.0.0.1:8080.
# --endpoint-reconciler-type=none: the default one tries every 10 s to publish
# 127.0.0.1 as the `kubernetes` Service's endpoint, which validation refuses.
ready=false
for attempt in 1 2 3; do
  port=${KUBE_APISERVER_PORT:-$(free_port)}
  # shellcheck disable=SC2086
  setsid "$apiserver" \
    --etcd-servers "http://127.0.0.1:$ep" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" --insecure-port 0 \
    --cert-dir "$c" --tls-cert-file "$c/apiserver.crt" --tls-private-key-file "$c/apiserver.key" \
    --client-ca-file "$c/ca.crt" \
    --token-auth-file "$dir/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$c/sa.pub" --service-account-signing-key-file "$c/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    --endpoint-reconciler-type none \
    --disable-admission-plugins ServiceAccount \
    --allow-privileged=true \
    --profiling=false \
    ${KUBE_APISERVER_EXTRA_ARGS:-} \
    </dev/null >"$dir/kube-apiserver.log" 2>&1 &
  api_pid=$!
  printf '%s\n%s\n' "$api_pid" "$etcd_pid" >"$dir/pids"
  deadline=$(($(date +%s) + timeout))
  while kill -0 "$api_pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
    if [ "$(curl -s --max-time 2 --cacert "$c/ca.crt" -H "Authorization: Bearer $token" \
      "https://127.0.0.1:$port/readyz" 2>/dev/null)" = ok ]; then
      ready=true
      break 2
    fi
    sleep 0.2
  done
  if ! kill -0 "$api_pid" 2>/dev/null && [ -z "${KUBE_APISERVER_PORT:-}" ] &&
    grep -q 'address already in use' "$dir/kube-apiserver.log"; then
    log "kube-apiserver: port clash, retrying"
    continue
  fi
  break
done
if ! $ready; then
  if kill -0 "$api_pid" 2>/dev/null; then
    log "kube-apiserver not ready after ${timeout} s; kube-apiserver.log:"
  else
    log "kube-apiserver exited; kube-apiserver.log:"
  fi
  tail -n 40 "$dir/kube-apiserver.log" >&2
  log "etcd.log:"
  tail -n 10 "$dir/etcd.log" >&2
  stop_all
  exit 1
fi

cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vigil-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 <"$c/ca.crt")
users:
- name: vigil-admin
  user:
    token: $token
contexts:
- name: vigil-test
  context:
    cluster: vigil-test
    user: vigil-admin
    namespace: default
current-context: vigil-test
EOF
chmod 600 "$dir/kubeconfig"
log "ready in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s: https://127.0.0.1:$port (pids $(paste -sd' ' "$dir/pids"))"
echo "$dir/kubeconfig"
