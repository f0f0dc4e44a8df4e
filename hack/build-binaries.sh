#!/usr/bin/env bash
# Build the pinned control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler), Prometheus and helm from their upstream Go
# modules into a cache outside the repo. A warm cache makes this a no-op.
# Each binary is built to a temp name and renamed only on success, so a failed
# or interrupted build never leaves a half binary that looks valid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${MODELDEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy}
bin_dir="$cache_root/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-prom-$PROMETHEUS_VERSION-helm-$HELM_VERSION-p$APISERVER_PATCH_LEVEL"
work_root="$cache_root/build"
mkdir -p "$bin_dir" "$work_root"
export GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false"
export CGO_ENABLED=0

log() { printf '[build-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# build_into MODULE_DIR OUTPUT PACKAGE [LDFLAGS]   (REBUILD=1: even when cached)
build_into() {
  local dir=$1 out=$2 pkg=$3 ldflags=${4:-}
  if [[ -x "$bin_dir/$out" && -z ${REBUILD:-} ]]; then
    log "$out: cached"
    return
  fi
  log "$out: building $pkg"
  local start=$SECONDS
  (cd "$dir" && go build -ldflags "-s -w $ldflags" -o "$bin_dir/.$out.partial" "$pkg")
  mv -f "$bin_dir/.$out.partial" "$bin_dir/$out"
  log "$out: built in $((SECONDS - start))s"
}

# A throwaway wrapper module whose tools.go imports the wanted commands, so
# that `go mod tidy` records every module (and go.sum line) they need.
# Building a dependency's main package from here ignores that module's own
# replace directives, which `go install @version` would refuse.
# wrapper_module DIR NAME PACKAGE...
wrapper_module() {
  local dir=$1 name=$2
  shift 2
  mkdir -p "$dir"
  if [[ ! -f "$dir/go.mod" ]]; then
    (cd "$dir" && go mod init "$name" >/dev/null 2>&1)
  fi
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for pkg in "$@"; do printf '\t_ "%s"\n' "$pkg"; done
    printf ')\n'
  } >"$dir/tools.go"
}

build_etcd() {
  local dir="$work_root/etcd-$ETCD_VERSION"
  [[ -x "$bin_dir/etcd" ]] && { log "etcd: cached"; return; }
  wrapper_module "$dir" modeldeploy.local/etcd-build go.etcd.io/etcd/server/v3
  (cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy)
  build_into "$dir" etcd go.etcd.io/etcd/server/v3
}

# The control plane the local cluster runs and the kubectl tests and scripts
# use; `node` adds what a kind node image needs (kubelet, kubeadm,
# kube-proxy), built from the same module.
CONTROL_PLANE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
NODE_COMMANDS=(kubelet kubeadm kube-proxy)

# build_kubernetes COMMAND...
build_kubernetes() {
  local dir="$work_root/kubernetes-$KUBERNETES_VERSION"
  local staging="v0.${KUBERNETES_VERSION#v1.}"
  local have_all=1
  for b in "$@"; do
    [[ -x "$bin_dir/$b" ]] || have_all=0
  done
  if [[ $have_all == 1 ]]; then log "kubernetes ($*): cached"; return; fi
  local pkgs=()
  for b in "${CONTROL_PLANE_COMMANDS[@]}" "${NODE_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  wrapper_module "$dir" modeldeploy.local/kubernetes-build "${pkgs[@]}"
  # The marker names the command set: a module tidied for fewer commands
  # lacks go.sum lines for the others.
  if [[ ! -f "$dir/.tidied-node" ]]; then
    rm -f "$dir/go.mod" "$dir/go.sum" "$dir/.tidied"
    wrapper_module "$dir" modeldeploy.local/kubernetes-build "${pkgs[@]}"
    # k8s.io/kubernetes points every staging module at ./staging; point them at
    # the published tags instead.
    local gomod
    gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    local replaces
    replaces=$(grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u)
    (
      cd "$dir"
      for m in $replaces; do
        go mod edit -replace "$m=$m@$staging"
      done
      go mod edit -require "k8s.io/kubernetes@$KUBERNETES_VERSION"
      go mod tidy
    )
    touch "$dir/.tidied-node"
  fi
  local minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  local ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  patch_kubernetes_module "$dir"
  for b in "$@"; do
    build_into "$dir" "$b" "k8s.io/kubernetes/cmd/$b" "$ld"
  done
}

# The one deliberate change to upstream: EndpointSlice and Endpoints
# validation rejects loopback addresses, and on the local cluster every pod
# lives on its own 127.0.0.N. The wrapper builds from a copy of the
# k8s.io/kubernetes module (hard links into the module cache, one file
# replaced) in which ValidateEndpointIP lets loopback through; nothing else
# changes. `go build -overlay` cannot do this (it refuses module-cache files).
# The script fails if the upstream text no longer matches, so a version bump
# is noticed. Bump APISERVER_PATCH_LEVEL in versions.env when this changes.
patch_kubernetes_module() {
  local dir=$1
  local src dst="$dir/kubernetes-patched"
  local rel=pkg/apis/core/validation/validation.go
  if [[ ! -f "$dst/.patch-level-$APISERVER_PATCH_LEVEL" ]]; then
    src=$(cd "$dir" && go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION
    [[ -d "$dst" ]] && { find "$dst" -type d -exec chmod u+w {} +; rm -rf "$dst"; }
    cp -rl "$src" "$dst.tmp" 2>/dev/null || { rm -rf "$dst.tmp"; cp -r "$src" "$dst.tmp"; }
    # Only directories become writable: the files are hard links into the cache.
    find "$dst.tmp" -type d -exec chmod u+w {} +
    rm -f "$dst.tmp/$rel"
    python3 - "$src/$rel" "$dst.tmp/$rel" <<'PY'
import sys

src, out = sys.argv[1], sys.argv[2]
text = open(src, encoding="utf-8").read()
start = text.index("func ValidateEndpointIP(")
end = text.index("\n}\n", start)
body = text[start:end]
check = (
    "\tif ip.IsLoopback() {\n"
    "\t\tallErrs = append(allErrs, field.Invalid(fldPath, ipAddress, "
    '"may not be in the loopback range (127.0.0.0/8, ::1/128)"))\n'
    "\t}\n"
)
if body.count(check) != 1:
    sys.exit(f"patch: upstream ValidateEndpointIP changed in {src}; update build-binaries.sh")
patched = body.replace(check, "\t// modeldeploy devcluster: pods live on 127.0.0.N, loopback is allowed.\n")
open(out, "w", encoding="utf-8").write(text[:start] + patched + text[end:])
PY
    touch "$dst.tmp/.patch-level-$APISERVER_PATCH_LEVEL"
    mv "$dst.tmp" "$dst"
  fi
  (cd "$dir" && go mod edit -replace "k8s.io/kubernetes=./kubernetes-patched")
}

# Prometheus from its Go module: Debian's package is built without the
# Kubernetes service discovery, which the local cluster depends on. Only that
# discovery is compiled in (upstream's remove_all_sd / enable_*_sd tags), which
# keeps the cloud SDKs out of the build. The web UI's assets are not embedded
# (the API, which is all tests and the operator use, works without them).
# promtool (rule and config checks in the tests) comes from the same module.
build_prometheus() {
  local dir="$work_root/prometheus-$PROMETHEUS_VERSION"
  [[ -x "$bin_dir/prometheus" && -x "$bin_dir/promtool" ]] && { log "prometheus, promtool: cached"; return; }
  # Prometheus vX.Y.Z is published as Go module version v0.(X*100+Y).Z.
  local v=${PROMETHEUS_VERSION#v} major minor patch
  IFS=. read -r major minor patch <<<"$v"
  local module_version="v0.$((major * 100 + minor)).$patch"
  local tags=remove_all_sd,enable_kubernetes_sd
  wrapper_module "$dir" modeldeploy.local/prometheus-build
  (cd "$dir" && GOFLAGS="$GOFLAGS -tags=$tags" go get \
    "github.com/prometheus/prometheus/cmd/prometheus@$module_version" \
    "github.com/prometheus/prometheus/cmd/promtool@$module_version")
  local p=github.com/prometheus/common/version
  local ld="-X $p.Version=$v -X $p.Branch=HEAD -X $p.BuildUser=modeldeploy -X $p.Revision=$module_version"
  local cmd
  for cmd in prometheus promtool; do
    GOFLAGS="$GOFLAGS -tags=$tags" build_into "$dir" "$cmd" "github.com/prometheus/prometheus/cmd/$cmd" "$ld"
  done
}

build_helm() {
  local dir="$work_root/helm-$HELM_VERSION"
  # The marker says the binary carries the Kubernetes version below; a helm
  # built before it reported v1.20 to `helm template/lint` and is rebuilt once.
  local marker="$bin_dir/.helm-capabilities"
  [[ -x "$bin_dir/helm" && -f "$marker" ]] && { log "helm: cached"; return; }
  wrapper_module "$dir" modeldeploy.local/helm-build helm.sh/helm/v3/cmd/helm
  (cd "$dir" && go get "helm.sh/helm/v3@$HELM_VERSION" && go mod tidy)
  # As helm's own Makefile does: the default .Capabilities.KubeVersion (and the
  # deprecation lint's) is the minor of the client-go it was built with
  # (v0.N.x -> 1.N); without it a module build claims Kubernetes v1.20.
  local client_go minor
  client_go=$(cd "$dir" && go list -m -f '{{.Version}}' k8s.io/client-go)
  minor=$(cut -d. -f2 <<<"$client_go")
  local x="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in pkg/chartutil pkg/lint/rules; do
    x+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  REBUILD=1 build_into "$dir" helm helm.sh/helm/v3/cmd/helm "$x"
  echo "kubernetes v1.$minor (client-go $client_go)" >"$marker"
}

case "${1:-all}" in
  dir) echo "$bin_dir" ;;
  all)
    start=$SECONDS
    build_etcd
    build_kubernetes "${CONTROL_PLANE_COMMANDS[@]}"
    build_prometheus
    build_helm
    log "all binaries ready in $bin_dir ($((SECONDS - start))s)"
    echo "$bin_dir"
    ;;
  node)
    # What hack/kind-node-image.sh puts into a kind node (after `all`).
    build_etcd
    build_kubernetes "${CONTROL_PLANE_COMMANDS[@]}" "${NODE_COMMANDS[@]}"
    echo "$bin_dir"
    ;;
  *) echo "usage: $0 [all|node|dir]" >&2; exit 2 ;;
esac
