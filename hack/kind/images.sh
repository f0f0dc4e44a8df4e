#!/usr/bin/env bash
# The two helper images of the kind e2e, built locally (no registry):
#   localhost/modeldeploy/prometheus:e2e   the Prometheus we build from its Go module (static)
#   localhost/modeldeploy/moto:e2e         an S3-compatible store: the moto server, pinned
#   hack/kind/images.sh PROMETHEUS_BINARY
# CONTAINER_ENGINE: podman (default) or docker. The moto image starts from the
# local Debian base (hack/base-image.sh) under podman, from python:3.11-slim under Docker.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
engine=${CONTAINER_ENGINE:-podman}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/../containers.conf}
# moto's server (Apache-2.0) and what it needs to serve S3; pinned.
MOTO_VERSION=5.2.5
prometheus=${1:?usage: $0 PROMETHEUS_BINARY}

log() { printf '[kind-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

mkdir -p "$ctx/prometheus"
cp "$prometheus" "$ctx/prometheus/prometheus"
cat >"$ctx/prometheus/Containerfile" <<'IMG'
FROM scratch
COPY prometheus /bin/prometheus
USER 65534:65534
ENTRYPOINT ["/bin/prometheus"]
IMG
log "localhost/modeldeploy/prometheus:e2e"
"$engine" build --quiet --tag localhost/modeldeploy/prometheus:e2e "$ctx/prometheus" >/dev/null

if [[ $engine == podman ]]; then
  base=localhost/modeldeploy-base:bookworm
  bash "$here/../base-image.sh" "$base"
else
  base=docker.io/library/python:3.11-slim-bookworm
fi
mkdir -p "$ctx/moto"
cat >"$ctx/moto/Containerfile" <<IMG
FROM $base
# A CA bundle for pip behind a TLS-intercepting proxy (as hack/images.sh mounts it).
ARG PIP_CERT=""
RUN python3 -m venv /opt/moto \\
 && /opt/moto/bin/pip install \${PIP_CERT:+--cert "\$PIP_CERT"} --no-cache-dir \\
      --disable-pip-version-check "moto[server]==$MOTO_VERSION"
USER 65532:65532
EXPOSE 5000
ENTRYPOINT ["/opt/moto/bin/moto_server", "--host", "0.0.0.0", "--port", "5000"]
IMG
log "localhost/modeldeploy/moto:e2e (moto $MOTO_VERSION)"
args=(--tag localhost/modeldeploy/moto:e2e)
[[ $engine == podman ]] && args+=(--layers --network host)
host_ca=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
if [[ -f $host_ca ]]; then
  args+=(--volume "$host_ca:/etc/host-ca.crt:ro" --build-arg PIP_CERT=/etc/host-ca.crt)
fi
"$engine" build --quiet "${args[@]}" "$ctx/moto" >/dev/null
