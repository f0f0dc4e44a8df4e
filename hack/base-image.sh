#!/usr/bin/env bash
# Make a local Debian bookworm base image with python3 + venv, without any
# container registry: debootstrap a minimal root filesystem and import it.
#   hack/base-image.sh [IMAGE]   (default localhost/modeldeploy-base:bookworm)
# A second run is a no-op while the image exists (remove it to rebuild).
# Needs root (debootstrap), podman and network access to deb.debian.org.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=${1:-localhost/modeldeploy-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

log() { printf '[base-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

for tool in debootstrap podman; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: make system-deps" >&2; exit 2; }
done
if podman image exists "$image"; then
  log "$image exists"
  exit 0
fi

root=$(mktemp -d /var/tmp/modeldeploy-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
log "debootstrap bookworm into $root"
# python3-venv brings ensurepip (pip + setuptools wheels) for the build stage;
# ca-certificates lets pip and the predictor's S3 client verify TLS.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Keep the image small and free of package caches.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/*
log "importing as $image"
tar -C "$root" -c . | podman import \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  - "$image" >/dev/null
log "done: $(podman image inspect --format '{{.Id}} {{.Size}}' "$image")"
