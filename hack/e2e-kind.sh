#!/usr/bin/env bash
# kind e2e, for machines with Docker and network access: build both images
# from the Dockerfiles (their default pinned base), create a throwaway kind
# cluster, load the images, install the chart and run the cluster scenarios
# of tests/shipping against it: the very tests that run on the local
# cluster, pointed at kind through MODELDEPLOY_E2E_KUBECONFIG.
# Where Docker or kind is missing it says so and exits 0 (a skip, not a pass).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

skip() {
  echo "SKIP make e2e-kind: $*" >&2
  echo "     (needs a running Docker daemon, the kind binary and network access)" >&2
  exit 0
}
log() { printf '[e2e-kind %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v docker >/dev/null || skip "the docker CLI is not installed"
docker info >/dev/null 2>&1 || skip "no Docker daemon answers (docker info failed)"
command -v kind >/dev/null || skip "kind is not installed (go install sigs.k8s.io/kind@latest)"
helm=${HELM:-$(bash hack/build-binaries.sh dir)/helm}
[[ -x $helm ]] || helm=$(command -v helm) || skip "helm not found: make binaries"

tag=$(awk -F'"' '/^appVersion:/ {print $2}' helm/modeldeploy/Chart.yaml)
for component in operator predictor; do
  log "docker build $component"
  docker build -f "Dockerfile.$component" -t "ghcr.io/modeldeploy/$component:$tag" \
    --build-arg "REVISION=$(git rev-parse --short HEAD)" .
done

name=modeldeploy-e2e-$$
work=$(mktemp -d)
cleanup() {
  kind delete cluster --name "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
kubeconfig="$work/kubeconfig"
log "kind create cluster $name"
kind create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 180s
for component in operator predictor; do
  kind load docker-image --name "$name" "ghcr.io/modeldeploy/$component:$tag"
done

log "helm install the chart"
KUBECONFIG=$kubeconfig "$helm" install modeldeploy helm/modeldeploy \
  --namespace modeldeploy-system --create-namespace \
  --set image.pullPolicy=Never --wait --timeout 5m

log "running the cluster scenarios (tests/shipping -m cluster)"
MODELDEPLOY_E2E_KUBECONFIG=$kubeconfig HELM=$helm \
  "$root/.venv/bin/python" -m pytest -m cluster tests/shipping -p no:cacheprovider "$@"
