#!/usr/bin/env bash
# Builds a real kube-apiserver (and provides the matching kubectl) for the tests,
# from Debian's `kubernetes` source package (1.20.x, which carries vendor/), with
# Debian's golang-1.19-go, offline, in GOPATH mode. Run as root.
#
# The result is cached outside the work tree, keyed by the Debian source version:
#   /var/cache/vigil/kube-apiserver-<version>/kube-apiserver
#   /var/cache/vigil/kube-apiserver-<version>/kubectl   (Debian's kubernetes-client)
# When the binary is cached this only checks the Debian packages and exits.
# The last line printed on stdout is the path of kube-apiserver.
#
# The source is read through apt with deb-src entries derived from this machine's
# own sources (/etc/apt/sources.list, sources.list.d/*.list and *.sources), in a
# private apt configuration that is removed afterwards: /etc/apt is not modified.
#
# Env: VIGIL_CACHE_DIR (default /var/cache/vigil).
set -euo pipefail

cache_root=${VIGIL_CACHE_DIR:-/var/cache/vigil}
go=/usr/lib/go-1.19/bin/go
export DEBIAN_FRONTEND=noninteractive

log() { echo "kube-apiserver-build: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, $cache_root)"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

apt_updated=false
apt_update() {
  $apt_updated && return 0
  log "apt-get update"
  apt-get update -qq
  apt_updated=true
}

# --- Debian packages -------------------------------------------------------
# kubernetes-client is handled separately below (its /usr/bin/kubectl may clash
# with another package's, e.g. google-cloud-sdk's `kubectl`).
packages=(golang-1.19-go etcd-server dpkg-dev openssl curl)
missing=()
for pkg in "${packages[@]}"; do installed "$pkg" || missing+=("$pkg"); done

# kubectl owner: install Debian's kubernetes-client unless another package owns /usr/bin/kubectl.
kubectl_owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
if [ -z "$kubectl_owner" ] && [ -e /usr/bin/kubectl ]; then kubectl_owner="(unpackaged file)"; fi
if ! installed kubernetes-client && [ -z "$kubectl_owner" ]; then
  missing+=(kubernetes-client)
fi

etcd_was_installed=true
installed etcd-server || etcd_was_installed=false

if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    apt_update
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# Installing etcd-server may have started (and enabled) the system etcd on :2379
# where systemd is running; the tests run their own etcd, so switch it off.
if ! $etcd_was_installed && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  if systemctl is-enabled --quiet etcd 2>/dev/null || systemctl is-active --quiet etcd 2>/dev/null; then
    log "disabling the etcd.service that etcd-server just installed"
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

# --- Version key -------------------------------------------------------------
# Debian source version of the kubernetes-client that apt would install (or has).
client_version() {
  local v
  if installed kubernetes-client; then
    dpkg-query -W -f='${source:Version}' kubernetes-client
    return
  fi
  v=$(apt-cache policy kubernetes-client 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
  if [ -z "$v" ] || [ "$v" = "(none)" ]; then
    apt_update
    v=$(apt-cache policy kubernetes-client | awk '$1 == "Candidate:" { print $2 }')
  fi
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "no kubernetes-client package is known to apt"
  # binNMUs: the Source field carries the source version in parentheses.
  local src
  src=$(apt-cache show "kubernetes-client=$v" | awk '/^Source:/ { print $3; exit }' | tr -d '()')
  echo "${src:-$v}"
}
version=$(client_version)
upstream=${version#*:}            # drop epoch
upstream=${upstream%-*}           # drop Debian revision
case $upstream in
  *+really*) upstream=${upstream##*+really} ;;  # 1.20.5+really1.20.2 -> 1.20.2
  *) upstream=${upstream%%[+~]*} ;;
esac
case $upstream in
  1.20.*) ;;
  *) die "Debian's kubernetes is $version (upstream $upstream); this script expects 1.20.x" ;;
esac
git_version=v$upstream

cache_dir=$cache_root/kube-apiserver-$version
apiserver=$cache_dir/kube-apiserver
mkdir -p "$cache_root"

# One build at a time.
exec 9>"$cache_root/.kube-apiserver-build.lock"
flock 9

work=""
cleanup() { [ -z "$work" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# Private apt configuration with the machine's deb lines turned into deb-src.
apt_opts=()
setup_private_apt() {
  local codename f
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial"
  : >"$work/apt/sources.list"
  # One-line style: `deb [opts] uri suite components...` -> deb-src, only for
  # this release's suites (codename, codename-updates, codename-security, ...).
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v cn="$codename" '
      /^[ \t]*deb[ \t]/ {
        line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
        opts = ""
        if (substr(line, 1, 1) == "[") {
          i = index(line, "]"); opts = substr(line, 1, i) " "
          line = substr(line, i + 1); sub(/^[ \t]+/, "", line)
        }
        n = split(line, a, /[ \t]+/)
        if (n < 3) next
        if (cn != "" && a[2] != cn && index(a[2], cn "-") != 1) next
        printf "deb-src %s%s", opts, a[1]
        for (j = 2; j <= n; j++) printf " %s", a[j]
        printf "\n"
      }' "$f" >>"$work/apt/sources.list"
  done
  # deb822 style: a copy of each stanza whose Types has `deb`, with Types: deb-src.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v cn="$codename" '
      function flush(   j, n, s, keep) {
        if (nf == 0) return
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no") {
          n = split(suites, s, /[ \t]+/); keep = ""
          for (j = 1; j <= n; j++)
            if (s[j] != "" && (cn == "" || s[j] == cn || index(s[j], cn "-") == 1))
              keep = keep (keep == "" ? "" : " ") s[j]
          if (keep != "") {
            print "Types: deb-src"
            for (j = 1; j <= nf; j++) {
              if (tolower(fld[j]) ~ /^types:/) continue
              if (tolower(fld[j]) ~ /^suites:/) { print "Suites: " keep; continue }
              print fld[j]
            }
            print ""
          }
        }
        nf = 0; types = ""; suites = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { if (nf) fld[nf] = fld[nf] "\n" $0; next }
      {
        fld[++nf] = $0
        k = tolower($0); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
        if (k ~ /^types:/) types = v
        else if (k ~ /^suites:/) suites = v
        else if (k ~ /^enabled:/) enabled = v
      }
      END { flush() }' "$f" >"$work/apt/sources.list.d/$(basename "$f")"
  done
  grep -qs '^deb-src\|^Types: deb-src' "$work/apt/sources.list" "$work/apt/sources.list.d/"* ||
    die "found no deb entries for '$codename' in /etc/apt to derive deb-src entries from"
  apt_opts=(
    -o "Dir::Etc::SourceList=$work/apt/sources.list"
    -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
  )
  # Let apt's sandbox user (_apt) write the downloads.
  if id _apt >/dev/null 2>&1; then
    chmod 755 "$work"
    chown _apt "$work/apt/lists/partial"
  else
    apt_opts+=(-o APT::Sandbox::User=root)
  fi
  log "apt-get update (deb-src, private lists)"
  apt-get "${apt_opts[@]}" update -qq ||
    log "warning: apt-get update reported errors; trying apt-get source anyway"
}

# --- kubectl (Debian's kubernetes-client) ------------------------------------
provide_kubectl() {
  if installed kubernetes-client && [ "$(dpkg-query -W -f='${source:Version}' kubernetes-client)" = "$version" ]; then
    ln -sfn /usr/bin/kubectl "$cache_dir/kubectl"
    return
  fi
  [ -x "$cache_dir/kubectl" ] && [ ! -L "$cache_dir/kubectl" ] && return
  log "/usr/bin/kubectl belongs to ${kubectl_owner:-?}: extracting Debian's kubectl into $cache_dir instead"
  local d
  d=$(mktemp -d /var/tmp/vigil-kubectl.XXXXXX)
  chmod 755 "$d"
  id _apt >/dev/null 2>&1 && chown _apt "$d"
  (cd "$d" && apt-get download -qq "kubernetes-client=$(apt-cache policy kubernetes-client | awk '$1 == "Candidate:" { print $2 }')") ||
    { rm -rf "$d"; die "apt-get download kubernetes-client failed"; }
  dpkg-deb -x "$d"/kubernetes-client_*.deb "$d/x"
  install -m 755 "$d/x/usr/bin/kubectl" "$cache_dir/kubectl.tmp"
  mv -f "$cache_dir/kubectl.tmp" "$cache_dir/kubectl"
  rm -rf "$d"
}

if [ -x "$apiserver" ]; then
  provide_kubectl
  log "cached: $apiserver"
  echo "$apiserver"
  exit 0
fi

# --- Build -------------------------------------------------------------------
t0=$(date +%s)
work=$(mktemp -d /var/tmp/vigil-kube-apiserver-build.XXXXXX)
setup_private_apt

mkdir "$work/src"
id _apt >/dev/null 2>&1 && chown _apt "$work/src"
log "apt-get source kubernetes=$version"
(cd "$work/src" && apt-get "${apt_opts[@]}" source -qq "kubernetes=$version" >/dev/null)
srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
[ -n "$srcdir" ] && [ -d "$srcdir/vendor" ] || die "apt-get source did not give a tree with vendor/"
src_version=$(dpkg-parsechangelog -l "$srcdir/debian/changelog" -SVersion)
[ "$src_version" = "$version" ] || die "apt-get source gave kubernetes $src_version, expected $version"
log "source $(basename "$srcdir"), Debian $src_version, building $git_version"

# Go >= 1.18 changed reflect.mapiterinit: with the vendored reflect2 v1.0.1 the
# server panics (nil pointer in reflect.mapiterinit, then exits) as soon as
# json-iterator encodes a map, e.g. on the first custom resource created.
# reflect2 v1.0.2 fixes it with the same API: take Debian's.
r2=$srcdir/vendor/github.com/modern-go/reflect2
if [ ! -e "$r2/go_above_118.go" ]; then
  log "replacing vendored reflect2 v1.0.1 (broken with Go >= 1.18) with Debian's golang-github-modern-go-reflect2"
  (cd "$work/src" && apt-get "${apt_opts[@]}" source -qq golang-github-modern-go-reflect2 >/dev/null)
  r2src=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'golang-github-modern-go-reflect2-*' | head -n1)
  [ -n "$r2src" ] && [ -e "$r2src/go_above_118.go" ] || die "Debian's reflect2 source lacks go_above_118.go (need >= 1.0.2)"
  rm -rf "$r2"
  mkdir "$r2"
  find "$r2src" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name LICENSE \) ! -name '*_test.go' \
    -exec cp -t "$r2" {} +
fi
t1=$(date +%s)

# GOPATH layout: $GOPATH/src/k8s.io/kubernetes -> source tree. Vendored k8s.io/*
# staging repos are symlinks into staging/, which GOPATH mode follows.
export GOPATH=$work/gopath GOCACHE=$work/gocache GO111MODULE=off GOFLAGS= GOENV=off \
  GOPROXY=off CGO_ENABLED=0 GOTOOLCHAIN=local
unset GOBIN GOROOT
mkdir -p "$GOPATH/src/k8s.io" "$work/bin"
ln -s "$srcdir" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
"$go" version >&2

# openapi-gen, as in build/root/Makefile.generated_files (target KUBE): every Go
# directory (staging/src/* named as vendor/*, skipping ./_*, ./.*, ./vendor) with a
# file carrying a `^// *+k8s:` tag and a `+k8s:openapi-gen=` tag, minus
# vendor/k8s.io/code-generator and vendor/k8s.io/sample-apiserver.
log "building openapi-gen"
nice -n 10 "$go" build -o "$work/bin/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
cd "$srcdir"
find -H . -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) -type f -name '*.go' |
  sed 's|^./staging/src|vendor|' | sed 's|/[^/]*$||' | sed 's|^./||' | LC_ALL=C sort -u >"$work/go-dirs"
# (grep -l exits 1 for a batch without matches, hence the `|| true`.)
xargs -d '\n' sh -c 'find "$@" -maxdepth 1 -type f -name "*.go"' sh <"$work/go-dirs" |
  { xargs -d '\n' grep --color=never -l '^// *+k8s:' || true; } |
  { grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' || true; } |
  { xargs -d '\n' grep --color=never -l '+k8s:openapi-gen=' || true; } |
  xargs -d '\n' -n1 dirname | LC_ALL=C sort -u >"$work/openapi-dirs"
[ "$(wc -l <"$work/openapi-dirs")" -gt 50 ] || die "found too few +k8s:openapi-gen packages"
cd "$GOPATH/src/k8s.io/kubernetes"
log "generating pkg/generated/openapi from $(wc -l <"$work/openapi-dirs") packages"
nice -n 10 "$work/bin/openapi-gen" \
  --logtostderr \
  -i "$(sed 's|^|k8s.io/kubernetes/|' "$work/openapi-dirs" | paste -sd, -)" \
  -p k8s.io/kubernetes/pkg/generated/openapi \
  -O zz_generated.openapi \
  -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
  -r "$work/api-violations.report" 2>"$work/openapi-gen.log" ||
  { tail -n 30 "$work/openapi-gen.log" >&2; die "openapi-gen failed"; }
[ -s pkg/generated/openapi/zz_generated.openapi.go ] || die "openapi-gen wrote no pkg/generated/openapi/zz_generated.openapi.go"
if ! diff -q "$work/api-violations.report" api/api-rules/violation_exceptions.list >/dev/null; then
  log "note: API rule violations differ from api/api-rules/violation_exceptions.list (harmless here)"
fi
t2=$(date +%s)

# Version variables as hack/lib/version.sh sets them.
build_date=$(date -u -d "@$(dpkg-parsechangelog -l "$srcdir/debian/changelog" -STimestamp)" +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w -buildid="
for pkg in k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version k8s.io/kubernetes/vendor/k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$git_version -X $pkg.gitMajor=${upstream%%.*}"
  ldflags+=" -X $pkg.gitMinor=$(echo "$upstream" | cut -d. -f2) -X $pkg.gitTreeState=archive"
  ldflags+=" -X $pkg.buildDate=$build_date"
done
log "compiling kube-apiserver (GO111MODULE=off, CGO_ENABLED=0, nice 10)"
nice -n 10 "$go" build -trimpath -tags selinux,notest -ldflags "$ldflags" \
  -o "$work/bin/kube-apiserver" ./cmd/kube-apiserver
"$work/bin/kube-apiserver" --version >&2
t3=$(date +%s)

mkdir -p "$cache_dir"
install -m 755 "$work/bin/kube-apiserver" "$apiserver.tmp"
mv -f "$apiserver.tmp" "$apiserver"
cd /
provide_kubectl
log "built in $((t3 - t0)) s (source $((t1 - t0)) s, openapi $((t2 - t1)) s, compile $((t3 - t2)) s)"
echo "$apiserver"
