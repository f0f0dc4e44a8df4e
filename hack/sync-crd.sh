#!/usr/bin/env bash
# Copy the single-source files into the Helm chart, which can only package
# files below its own directory: the ModelDeployment CRD (crds/), the Grafana
# dashboard, the alert rules and the Argo CD health check (docs/).
# tests/shipping/test_chart_sync.py fails when a copy is stale.
#   hack/sync-crd.sh          copy
#   hack/sync-crd.sh --check  only report stale copies (exit 1 if any)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart="$root/helm/modeldeploy"
check=0
[[ ${1:-} == --check ]] && check=1

# source -> copy, relative to the repository root
pairs=(
  "crds/modeldeploy.io_modeldeployments.yaml helm/modeldeploy/crds/modeldeploy.io_modeldeployments.yaml"
  "docs/grafana/modeldeploy.json helm/modeldeploy/files/dashboards/modeldeploy.json"
  "docs/prometheus/alerts.yaml helm/modeldeploy/files/alerts.yaml"
)
stale=0
for pair in "${pairs[@]}"; do
  read -r src dst <<<"$pair"
  if [[ ! -f "$root/$src" ]]; then
    echo "skip: $src does not exist yet" >&2
    continue
  fi
  if cmp -s "$root/$src" "$root/$dst"; then
    continue
  fi
  if [[ $check == 1 ]]; then
    echo "stale: $dst differs from $src" >&2
    stale=1
  else
    mkdir -p "$(dirname "$root/$dst")"
    cp "$root/$src" "$root/$dst"
    echo "synced $src -> $dst"
  fi
done
[[ -d $chart ]] || { echo "no chart at $chart" >&2; exit 1; }
exit $stale
