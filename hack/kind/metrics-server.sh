#!/usr/bin/env bash
# metrics-server for the kind e2e (HPAs on CPU), with no registry: the binary
# from its pinned Go module (cached per version, as build-binaries.sh does),
# in a scratch image.
#   hack/kind/metrics-server.sh    build what is missing; print the image name
# CONTAINER_ENGINE: podman (default) or docker.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../versions.env
source "$here/../versions.env"
engine=${CONTAINER_ENGINE:-podman}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../containers.conf}
cache_root=${MODELDEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy}
bin_dir="$cache_root/bin/metrics-server-$METRICS_SERVER_VERSION"
image="localhost/modeldeploy/metrics-server:$METRICS_SERVER_VERSION"

log() { printf '[metrics-server %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

if [[ ! -x $bin_dir/metrics-server ]]; then
  log "building sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION"
  mkdir -p "$bin_dir"
  GOBIN=$ctx CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
    go install -ldflags "-s -w" "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
  mv -f "$ctx/metrics-server" "$bin_dir/metrics-server"
fi
if ! "$engine" image inspect "$image" >/dev/null 2>&1; then
  cp "$bin_dir/metrics-server" "$ctx/metrics-server"
  cat >"$ctx/Containerfile" <<'IMG'
FROM scratch
COPY metrics-server /metrics-server
USER 65534:65534
ENTRYPOINT ["/metrics-server"]
IMG
  log "$image"
  "$engine" build --quiet --tag "$image" "$ctx" >/dev/null
fi
echo "$image"
