#!/usr/bin/env bash
# Fetch the Gateway API CRDs (standard channel) of the pinned version from the
# upstream Go module `sigs.k8s.io/gateway-api` (which ships them under
# config/crd/standard) into a versioned cache dir outside the repo. The
# gatewayapi traffic provider's cluster tests apply them to the local cluster.
# A warm cache makes this a no-op; `dir` prints where they are (or would be).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${MODELDEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy}
crd_dir="$cache_root/gateway-api/$GATEWAY_API_VERSION/standard"

log() { printf '[fetch-gateway-api-crds %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

fetch() {
  if [[ -f "$crd_dir/gateway.networking.k8s.io_httproutes.yaml" ]]; then
    log "Gateway API $GATEWAY_API_VERSION CRDs: cached"
    echo "$crd_dir"
    return
  fi
  command -v go >/dev/null || { log "needs Go (the CRDs come from a Go module)"; exit 1; }
  # A module cache of our own, writable so that a cache wipe needs no chmod.
  # A module cache of our own, writable so that wiping the cache needs no chmod.
  mkdir -p "$cache_root"
  local module_dir
  module_dir=$(cd "$cache_root" &&
    GOMODCACHE="$cache_root/gomod" GOFLAGS="-modcacherw" \
      go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  local src="$module_dir/config/crd/standard"
  [[ -f "$src/gateway.networking.k8s.io_httproutes.yaml" ]] ||
    { log "no config/crd/standard/*httproutes.yaml in $module_dir"; exit 1; }
  # Copy to a temp dir and rename, so an interrupted copy never looks complete.
  rm -rf "$crd_dir.partial"
  mkdir -p "$crd_dir.partial"
  cp "$src"/gateway.networking.k8s.io_*.yaml "$crd_dir.partial/"
  rm -rf "$crd_dir"
  mv "$crd_dir.partial" "$crd_dir"
  log "Gateway API $GATEWAY_API_VERSION CRDs in $crd_dir"
  echo "$crd_dir"
}

case "${1:-all}" in
  dir) echo "$crd_dir" ;;
  all) fetch ;;
  *) echo "usage: $0 [all|dir]" >&2; exit 2 ;;
esac
