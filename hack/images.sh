#!/usr/bin/env bash
# Build the operator and predictor images with podman, here, without Docker
# or a registry: on a local debootstrap base (hack/base-image.sh) unless
# BASE_IMAGE names another one. Layers are cached, so a rebuild after a code
# change only redoes the last steps.
#   hack/images.sh [operator|predictor|all]   build (default: all)
#   hack/images.sh --lock                     regenerate requirements/constraints-*.txt
# Environment: BASE_IMAGE, IMAGE_TAG (default: the chart's appVersion),
# IMAGE_REGISTRY (default ghcr.io/modeldeploy), HOST_CA (CA bundle for pip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
registry=${IMAGE_REGISTRY:-ghcr.io/modeldeploy}
tag=${IMAGE_TAG:-$(awk -F'"' '/^appVersion:/ {print $2}' "$root/helm/modeldeploy/Chart.yaml")}
host_ca=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}

log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

lock() {
  # Hash-pinned, for CPython 3.11 on manylinux x86_64 (both bases); setuptools
  # is locked too because the project is installed without build isolation.
  local uv="$root/.venv/bin/uv"
  [[ -x $uv ]] || uv=uv
  local build_in=requirements/image-build.in
  local common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28
    --generate-hashes --no-header --quiet)
  for spec in "operator:operator/pyproject.toml" "predictor:predictor/pyproject.toml --extra router --extra s3 --extra xgboost --extra lightgbm"; do
    local name=${spec%%:*} args=${spec#*:}
    local out="requirements/constraints-$name.txt"
    # shellcheck disable=SC2086  # args holds several words on purpose
    (cd "$root" && "$uv" pip compile $args "$build_in" "${common[@]}" -o "$out.tmp")
    { printf '# Locked dependencies of the %s image. Regenerate: hack/images.sh --lock\n' "$name"
      cat "$root/$out.tmp"; } >"$root/$out"
    rm -f "$root/$out.tmp"
    log "wrote $out ($(grep -c '==' "$root/$out") packages)"
  done
}

build() {
  local component=$1 base=$2
  local image="$registry/$component:$tag"
  local revision created
  revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  created=$(git -C "$root" log -1 --format=%cI 2>/dev/null || echo unknown)
  local args=(--layers --network host --file "$root/Dockerfile.$component" --tag "$image"
    --build-arg "BASE_IMAGE=$base" --build-arg "VERSION=$tag"
    --build-arg "REVISION=$revision" --build-arg "CREATED=$created")
  # podman's layer cache does not see build-arg values in LABEL steps (an unchanged
  # tree reuses an image labelled with an older tag and commit): set them here too.
  local oci=org.opencontainers.image
  args+=(--label "$oci.version=$tag" --label "$oci.revision=$revision"
    --label "$oci.created=$created")
  if [[ -f $host_ca ]]; then
    args+=(--volume "$host_ca:/etc/host-ca.crt:ro" --build-arg PIP_CERT=/etc/host-ca.crt)
  fi
  log "building $image on $base"
  local start=$SECONDS
  podman build "${args[@]}" "$root"
  log "$image built in $((SECONDS - start))s"
}

case "${1:-all}" in
  --lock) lock; exit 0 ;;
  operator | predictor | all) ;;
  *) echo "usage: $0 [operator|predictor|all] | --lock" >&2; exit 2 ;;
esac
command -v podman >/dev/null || { echo "podman is missing: make system-deps" >&2; exit 2; }
base=${BASE_IMAGE:-localhost/modeldeploy-base:bookworm}
if [[ -z ${BASE_IMAGE:-} ]]; then
  bash "$here/base-image.sh" "$base"
fi
for component in operator predictor; do
  if [[ ${1:-all} == all || ${1:-all} == "$component" ]]; then
    build "$component" "$base"
  fi
done
