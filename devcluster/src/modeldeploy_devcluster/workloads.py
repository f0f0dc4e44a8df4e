"""Manifests for smoke runs and tests of the local cluster (pure builders)."""

from __future__ import annotations

import sys

SAMPLE_IMAGE = "example.test/devcluster-sample"


def sample_image_map() -> dict[str, list[str]]:
    """Maps SAMPLE_IMAGE to the bundled sample server, run by this interpreter."""
    return {SAMPLE_IMAGE: [sys.executable, "-m", "modeldeploy_devcluster.sample_server"]}


def http_deployment(
    name: str,
    image: str = SAMPLE_IMAGE,
    replicas: int = 2,
    port: int = 8080,
    args: list[str] | None = None,
    scrape: bool = True,
    probe_path: str = "/healthz",
) -> dict:
    """A Deployment whose pods listen on all interfaces (0.0.0.0:port), with a readiness probe."""
    labels = {"app": name}
    annotations = (
        {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        if scrape
        else {}
    )
    container = {
        "name": "server",
        "image": image,
        "args": args if args is not None else ["--host", "0.0.0.0", "--port", str(port)],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {
            "httpGet": {"path": probe_path, "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 2,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]},
            },
        },
    }


def service(name: str, port: int = 8080, target: str | int = "http") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": target}],
        },
    }


def deployment_available(dep) -> bool:
    """True once the Deployment's Available condition is True and all replicas are ready."""
    status = dep.status
    conditions = {c.type: c.status for c in status.conditions or []}
    return (
        conditions.get("Available") == "True" and (status.ready_replicas or 0) == dep.spec.replicas
    )
