#!/usr/bin/env bash
# Install the Debian packages that tests, the demo and benchmarks use, when
# missing. Needs root (or sudo); does nothing when everything is present.
set -euo pipefail
packages=(prometheus wrk nginx-light podman buildah runc debootstrap uidmap containernetworking-plugins)  # wrk, nginx-light: benchmarks; podman..uidmap: images
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian package starts a system Prometheus on :9090; the local cluster
# runs its own on a free port, so keep the system one out of the way.
$sudo systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
pkill -x prometheus-node-exporter >/dev/null 2>&1 || true
