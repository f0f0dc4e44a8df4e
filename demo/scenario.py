"""The demo's ModelDeployment bodies and stage plan (pure).

Short analysis intervals and pauses keep the whole run within a few minutes;
the thresholds are the ones a real user would pick for this model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from demo import models

IMAGE = "ghcr.io/modeldeploy/predictor:0.1.0"
CANARY_STEPS = (25, 50, 75)
# Requests per second of the demo's users. Enough that the first analysis of a
# 25 % step sees ~100 candidate rows: PSI over 10 bins is noisy below that.
LOAD_RATE = 40.0


def analysis(*metrics: dict[str, Any], interval: str = "4s") -> dict[str, Any]:
    return {
        "interval": interval,
        "initialDelay": "6s",
        "failureLimit": 2,
        "inconclusiveLimit": 10,
        "minRequests": 10,
        "metrics": list(metrics),
    }


CANARY_METRICS = (
    {"name": "error-rate", "max": 0.05},
    {"name": "latency-p99", "max": 0.5},
    # A healthy model measures 0.05-0.5 here (small windows); a shifted feature 4-7.
    {"name": "feature-drift", "max": 1.0},
)


def canary(pause: str = "6s") -> dict[str, Any]:
    return {
        "type": "Canary",
        "canary": {"steps": [{"weight": w, "pause": pause} for w in CANARY_STEPS]},
        "analysis": analysis(*CANARY_METRICS),
    }


def shadow(duration: str = "12s") -> dict[str, Any]:
    return {
        "type": "Shadow",
        "shadow": {"duration": duration, "minRequests": 20},
        "analysis": analysis({"name": "shadow-agreement", "min": 0.9}),
    }


def validated(pause: str = "6s") -> dict[str, Any]:
    """Canary preceded by a differential test on the bundle's held-out rows.

    Applied as a merge patch after the shadow stage: `shadow: None` removes the
    previous stage's shadow settings (the CRD allows them only with Shadow)."""
    validation = {"minAgreement": 0.9, "maxAccuracyDrop": 0.05}
    return {**canary(pause), "shadow": None, "validation": validation}


def manifest(
    version: str, uri: str, strategy: dict[str, Any], store_secret: str | None = None
) -> dict[str, Any]:
    """The ModelDeployment of `version`; `store_secret`: the Secret with the store's keys."""
    model: dict[str, Any] = {"name": models.NAME, "version": version, "uri": uri}
    if store_secret:
        model["credentials"] = {"secretRef": {"name": store_secret}}
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": models.NAME},
        "spec": {
            "model": model,
            "predictor": {
                "image": IMAGE,
                "replicas": 1,
                # Drift gauges refreshed every second, so short intervals see them.
                "env": [{"name": "MODELDEPLOY_DRIFT_INTERVAL", "value": "1"}],
            },
            "strategy": {"progressDeadline": "2m", **strategy},
        },
    }


@dataclass(frozen=True)
class Stage:
    label: str  # shown in the timeline
    version: str
    strategy: dict[str, Any]
    expect: str  # stable | promoted | rolled-back
    metric: str = ""  # the metric that must roll it back
    timeout: float = 150.0


def plan() -> list[Stage]:
    return [
        Stage("v1", "1.0.0", canary(), "stable", timeout=120),
        Stage("v2 canary", "2.0.0", canary(), "promoted"),
        Stage("v3 canary", "3.0.0", canary(), "rolled-back", "feature-drift"),
        Stage("v4 shadow", "4.0.0", shadow(), "rolled-back", "shadow-agreement"),
        Stage("v5 validated", "5.0.0", validated(), "rolled-back", "agreement"),
    ]
