"""spec.predictor.autoscaling on the local cluster: HPA objects, field ownership of
replicas and the hand-over of capacity from stable to candidate.

The local cluster runs the real HPA controller (kube-controller-manager) but no
metrics server, so the HPAs cannot scale on CPU here: the test scales the
stable the way an HPA would (the scale subresource) and checks what the
operator does with that capacity. Scaling under load is shown on kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from cluster_helpers import GROUP, VERSION, Env, apply_crd, wait_for
from kubernetes import client
from sklearn import linear_model

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FEATURES = ["f0", "f1"]


def make_bundle(tmp: Path, version: str) -> str:
    from modeldeploy_predictor.bundle import bundle_from_files

    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    model = tmp / f"model-{version}.joblib"
    joblib.dump(linear_model.LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), model)
    reference = tmp / f"reference-{version}.csv"
    np.savetxt(reference, x, delimiter=",", header=",".join(FEATURES), comments="")
    return str(bundle_from_files(model, reference, "fraud", version, tmp / f"bundle-{version}"))


def manifest(version: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud"},
        "spec": {
            "model": {"name": "fraud", "version": version, "uri": uri},
            "predictor": {
                "image": "ghcr.io/modeldeploy/predictor:test",
                "resources": {"requests": {"cpu": "50m"}},
                "autoscaling": {"minReplicas": 1, "maxReplicas": 4},
            },
            "strategy": {
                "type": "Canary",
                "canary": {"steps": [{"weight": 50, "pause": "3s"}]},
                "analysis": {"interval": "1s", "metrics": []},
                "progressDeadline": "3m",
            },
        },
    }


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    apply_crd(cluster.api_client())
    e = Env(cluster, namespace, cluster.prometheus_url)
    e.start_operator()
    yield e
    e.operator.close()


def hpas(env: Env) -> dict[str, Any]:
    api = client.AutoscalingV2Api(env.api)
    items = api.list_namespaced_horizontal_pod_autoscaler(env.namespace).items
    return {h.metadata.name: h for h in items}


def deployment(env: Env, name: str) -> Any:
    return client.AppsV1Api(env.api).read_namespaced_deployment(name, env.namespace)


def test_hpa_per_revision_and_capacity_handed_over(env, tmp_path):
    env.apply(manifest("1.0.0", make_bundle(tmp_path, "1.0.0")))
    st = env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 serving", timeout=180)
    v1 = st["stable"]["revision"]
    (h,) = wait_for(lambda: list(hpas(env).values()) or None, 30, message="v1 HPA")
    assert h.metadata.name == v1 and h.spec.min_replicas == 1 and h.spec.max_replicas == 4
    assert h.spec.scale_target_ref.name == v1
    assert h.spec.metrics[0].resource.target.average_utilization == 80
    # The operator's applied manifest leaves spec.replicas to the HPA.
    dep = deployment(env, v1)
    applied = [
        m
        for m in dep.metadata.managed_fields
        if m.manager == "modeldeploy-operator" and m.operation == "Apply"
    ]
    assert applied and all("f:replicas" not in json.dumps(m.fields_v1) for m in applied)

    # As the HPA would under load: stable runs 3.
    client.AppsV1Api(env.api).patch_namespaced_deployment_scale(
        v1, env.namespace, {"spec": {"replicas": 3}}
    )
    wait_for(lambda: (deployment(env, v1).status.ready_replicas or 0) >= 3, 120, message="3 v1")

    env.apply(manifest("2.0.0", make_bundle(tmp_path, "2.0.0")))
    seen: dict[str, set[tuple[int, int]]] = {"floors": set()}

    def promoted(st: dict[str, Any]) -> bool:
        cand = (st.get("candidate") or {}).get("revision")
        now = hpas(env)
        if cand in now and v1 in now and st.get("phase") == "Canary":
            seen["floors"].add((now[v1].spec.min_replicas, now[cand].spec.min_replicas))
        return st.get("phase") == "Succeeded" and st["stable"]["version"] == "2.0.0"

    st = env.wait_status(promoted, "v2 promoted", timeout=240)
    v2 = st["stable"]["revision"]
    # During the last (50%) step: stable held at 3, candidate already at 100% of it.
    assert (3, 3) in seen["floors"], seen
    # The new stable took traffic with the old stable's capacity ...
    assert deployment(env, v2).spec.replicas >= 3
    history = [h["result"] for h in st["history"]]
    assert history[-1] == "Promoted", history
    # ... and its HPA is back to minReplicas; the old revision lost its HPA and pods.
    wait_for(lambda: set(hpas(env)) == {v2}, 30, message="only v2's HPA")
    assert hpas(env)[v2].spec.min_replicas == 1
    wait_for(lambda: deployment(env, v1).spec.replicas == 0, 30, message="v1 at 0")
