"""The Prometheus configuration of the local cluster (pure).

Pods opt in with the usual annotations (``prometheus.io/scrape: "true"``,
``prometheus.io/port``, ``prometheus.io/path``); Kubernetes service discovery
(role ``pod``) against this cluster's API server finds them. Each target gets
``namespace`` and ``pod`` labels and the pod's labels (sanitised names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def render(
    api_server: str,
    ca_file: Path,
    cert_file: Path,
    key_file: Path,
    scrape_interval: str = "2s",
) -> dict:
    """For the local cluster: Prometheus runs beside it and authenticates with a client cert."""
    tls = {"ca_file": str(ca_file), "cert_file": str(cert_file), "key_file": str(key_file)}
    return _config({"role": "pod", "api_server": api_server, "tls_config": tls}, scrape_interval)


def in_cluster(scrape_interval: str = "2s") -> dict:
    """For Prometheus running as a pod (kind e2e, users' clusters): its ServiceAccount's token."""
    return _config({"role": "pod"}, scrape_interval)


def _config(discovery: dict[str, Any], scrape_interval: str) -> dict:
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "kubernetes_sd_configs": [discovery],
                "relabel_configs": [
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                        "regex": "true",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_init"],
                        "regex": "true",
                        "action": "drop",
                    },
                    # Pods without an IP yet are not scrapable.
                    {"source_labels": ["__meta_kubernetes_pod_ip"], "regex": "", "action": "drop"},
                    {
                        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
                        "regex": "(.+)",
                        "target_label": "__metrics_path__",
                    },
                    # One target per pod: its IP plus the annotated port (several
                    # declared container ports collapse into identical targets).
                    {
                        "source_labels": [
                            "__meta_kubernetes_pod_ip",
                            "__meta_kubernetes_pod_annotation_prometheus_io_port",
                        ],
                        "regex": "(.+);(\\d+)",
                        "replacement": "$1:$2",
                        "target_label": "__address__",
                    },
                    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                ],
            }
        ],
    }
