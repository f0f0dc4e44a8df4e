#!/usr/bin/env bash
# The kind e2e: our images under a real kubelet. Builds (cached) kind, a kind
# node image and every image the story needs, creates a throwaway cluster,
# loads the images, runs Prometheus, metrics-server and an S3 model store in
# it, installs the chart, then the demo's rollout story (first revision, canary
# promoted, drifted canary rolled back, disagreeing shadow rejected) under load
# through the router, the kind tests (tests/kind: restricted pods, bundles from
# a PVC, CPU autoscaling through a canary) and the chart's RBAC checked by the
# API server of kind.
#   hack/e2e-kind.sh          the e2e (make e2e-kind)
#   hack/e2e-kind.sh demo     the demo only, for a person to watch (DEMO_CLUSTER=kind make demo);
#                             DEMO_KEEP=1 leaves the cluster up and prints how to reach it
# Container engine: podman (KIND_EXPERIMENTAL_PROVIDER=podman, every image
# built here: no registry is needed), or Docker where a daemon answers and
# podman is missing (then kind's published node image is pulled). Neither:
# SKIP, which fails under CI=true. Tear-down (also on failure and Ctrl-C)
# removes the cluster, its network when we made it, port-forwards and temp files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=versions.env
source hack/versions.env
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/hack/containers.conf}
mode=${1:-test}
[[ $mode == test || $mode == demo ]] || { echo "usage: $0 [test|demo]" >&2; exit 2; }

log() { printf '[e2e-kind %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
skip() {
  echo "SKIP make e2e-kind: $*" >&2
  if [[ ${CI:-} == true ]]; then
    echo "FAIL: under CI=true a skipped kind e2e is a failure" >&2
    exit 1
  fi
  exit 0
}

if command -v podman >/dev/null && podman info >/dev/null 2>&1; then
  engine=podman
  export KIND_EXPERIMENTAL_PROVIDER=podman
elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
else
  skip "no container engine runs here (podman info and docker info both failed; make system-deps installs podman)"
fi
command -v go >/dev/null || skip "no Go toolchain to build kind and the node image"

start=$SECONDS
bin_dir=$(bash hack/build-binaries.sh dir)
helm=${HELM:-$bin_dir/helm}
[[ -x $helm ]] || bash hack/build-binaries.sh >/dev/null
kind=$(bash hack/kind-node-image.sh kind)
bash hack/build-binaries.sh node >/dev/null
kubectl_bin="$bin_dir/kubectl"
python="$root/.venv/bin/python"

work=$(mktemp -d /tmp/modeldeploy-e2e-kind.XXXXXX)
name=modeldeploy-e2e-$$
kubeconfig="$work/kubeconfig"
made_network=""
forward_pids=()
cluster_kept=""
cleanup() {
  local rc=$?
  # A second Ctrl-C must not cut the tear-down short.
  trap '' INT TERM
  trap - EXIT
  for pid in "${forward_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -z $cluster_kept ]]; then
    log "tear-down: cluster $name"
    "$kind" delete cluster --name "$name" >/dev/null 2>&1 || true
    [[ -n $made_network ]] && "$engine" network rm -f kind >/dev/null 2>&1
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tag=$(awk -F'"' '/^appVersion:/ {print $2}' helm/modeldeploy/Chart.yaml)
images=("ghcr.io/modeldeploy/operator:$tag" "ghcr.io/modeldeploy/predictor:$tag"
  localhost/modeldeploy/prometheus:e2e localhost/modeldeploy/moto:e2e)
if [[ $engine == podman ]]; then
  mkdir -p /lib/modules  # kind's podman provider always mounts it (absent on some kernels)
  node_image=$(bash hack/kind-node-image.sh | tail -1)
  bash hack/images.sh all
  bash hack/kind/images.sh "$bin_dir/prometheus"
  metrics_server_image=$(bash hack/kind/metrics-server.sh)
  images+=("$metrics_server_image")
  podman save --multi-image-archive --format docker-archive -o "$work/images.tar" "${images[@]}"
else
  node_image=""  # kind's default, pulled
  for component in operator predictor; do
    docker build -f "Dockerfile.$component" -t "ghcr.io/modeldeploy/$component:$tag" .
  done
  CONTAINER_ENGINE=docker bash hack/kind/images.sh "$bin_dir/prometheus"
  metrics_server_image=$(CONTAINER_ENGINE=docker bash hack/kind/metrics-server.sh)
  images+=("$metrics_server_image")
  docker save -o "$work/images.tar" "${images[@]}"
fi
log "images ready ($((SECONDS - start))s since start)"

# Clusters of earlier runs that were killed outright (SIGKILL runs no trap):
# their name carries the pid of a process that is gone.
for stale in $("$kind" get clusters 2>/dev/null | grep -E '^modeldeploy-e2e-[0-9]+$' || true); do
  if ! kill -0 "${stale##*-}" 2>/dev/null; then
    log "deleting $stale, left by a run that was killed"
    "$kind" delete cluster --name "$stale" >/dev/null 2>&1 || true
  fi
done
"$engine" network exists kind >/dev/null 2>&1 || made_network=1
log "kind create cluster $name (${node_image:-the default node image of kind})"
"$kind" create cluster --name "$name" --config hack/kind/cluster.yaml --kubeconfig "$kubeconfig" \
  ${node_image:+--image "$node_image"} --wait 5m
"$kind" load image-archive --name "$name" "$work/images.tar"
kc() { "$kubectl_bin" --kubeconfig "$kubeconfig" "$@"; }

log "Prometheus, metrics-server and the S3 model store"
kc create namespace monitoring >/dev/null
"$python" -c 'import sys, yaml
from modeldeploy_devcluster import prometheus_config
yaml.safe_dump(prometheus_config.in_cluster("2s"), sys.stdout)' >"$work/prometheus.yml"
kc -n monitoring create configmap prometheus-config --from-file=prometheus.yml="$work/prometheus.yml" >/dev/null
kc apply -f hack/kind/prometheus.yaml >/dev/null
kc create namespace modelstore >/dev/null
kc apply -f hack/kind/modelstore.yaml >/dev/null
sed "s|METRICS_SERVER_IMAGE|$metrics_server_image|" hack/kind/metrics-server.yaml | kc apply -f - >/dev/null
kc -n monitoring rollout status deployment/prometheus --timeout=3m
kc -n modelstore rollout status deployment/s3 --timeout=3m
kc -n kube-system rollout status deployment/metrics-server --timeout=3m
kc apply -f hack/kind/metrics-server-apiservice.yaml >/dev/null

# forward NAMESPACE SERVICE PORT: a kubectl port-forward in the background; prints its local URL.
forward() {
  local out="$work/forward-$2.log"
  kc -n "$1" port-forward "service/$2" ":$3" >"$out" 2>&1 &
  forward_pids+=($!)
  local i
  for i in $(seq 100); do
    if grep -q 'Forwarding from 127.0.0.1:' "$out"; then
      sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\).*/http:\/\/127.0.0.1:\1/p' "$out" | head -1
      return
    fi
    sleep 0.1
  done
  cat "$out" >&2
  return 1
}
s3_url=$(forward modelstore s3 80)

# The demo's story; the operator from the chart (installed by the demo), bundles in S3.
export KUBECONFIG=$kubeconfig KUBECTL=$kubectl_bin HELM=$helm
export MODELDEPLOY_PROMETHEUS_URL=http://prometheus.monitoring.svc:9090
export DEMO_S3_UPLOAD_URL=$s3_url DEMO_S3_CLUSTER_URL=http://s3.modelstore.svc.cluster.local
log "the rollout story on kind (python -m demo --cluster current)"
demo_args=(--cluster current --out "$root/out/demo-kind")
if [[ $mode == demo && -n ${DEMO_KEEP:-} ]]; then
  demo_args+=(--keep)
fi
"$python" -m demo "${demo_args[@]}"
if [[ $mode == demo ]]; then
  if [[ -n ${DEMO_KEEP:-} ]]; then
    cluster_kept=1
    for pid in "${forward_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    echo "kind cluster kept: export KUBECONFIG=$kubeconfig"
    echo "  delete it: KIND_EXPERIMENTAL_PROVIDER=${KIND_EXPERIMENTAL_PROVIDER:-} $kind delete cluster --name $name"
  fi
  exit 0
fi

log "kind-ready tests (pytest -m kind)"
MODELDEPLOY_E2E_KUBECONFIG=$kubeconfig "$python" -m pytest -m kind tests -p no:cacheprovider -q
log "the chart's RBAC on the API server of kind (kubectl auth can-i)"
MODELDEPLOY_E2E_KUBECONFIG=$kubeconfig "$python" -m pytest -p no:cacheprovider -q \
  tests/shipping/test_chart_cluster.py -k "rbac_namespaced"
log "e2e-kind OK in $((SECONDS - start))s"
