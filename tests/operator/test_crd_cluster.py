"""(g) The real API server refuses malformed ModelDeployments with readable messages.

The CRD from crds/ is applied to the local cluster, then each bad manifest is
created; the refusal must name the field and say what is wrong. A good
manifest is accepted and defaulted, so the schema is not simply refusing all.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from cluster_helpers import GROUP, PLURAL, ROOT, VERSION, apply_crd
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.cluster


def good(name: str = "fraud") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "fraud", "version": "1.0.0", "uri": "/models/fraud/1"},
            "predictor": {"image": "ghcr.io/modeldeploy/predictor:0.1.0"},
            "strategy": {
                "type": "Canary",
                "canary": {"steps": [{"weight": 10, "pause": "1m"}, {"weight": 50}]},
                "analysis": {"metrics": [{"name": "error-rate", "max": 0.01}]},
            },
        },
    }


def with_change(path: str, value: Any, name: str = "fraud") -> dict[str, Any]:
    """The good manifest with `value` set at a dotted path (None deletes)."""
    body = copy.deepcopy(good(name))
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


BAD = {
    "hpa-behavior-unknown-policy": (
        with_change(
            "spec.predictor.autoscaling",
            {"maxReplicas": 3, "behavior": {"scaleDown": {"selectPolicy": "Sometimes"}}},
        ),
        ["spec.predictor.autoscaling.behavior.scaleDown.selectPolicy", "Unsupported value"],
    ),
    "decreasing-weights": (
        with_change("spec.strategy.canary.steps", [{"weight": 50}, {"weight": 10}]),
        ["weights must be strictly increasing"],
    ),
    "weight-over-100": (
        with_change("spec.strategy.canary.steps", [{"weight": 150}]),
        ["spec.strategy.canary.steps[0].weight", "less than or equal to 100"],
    ),
    "shadow-with-canary-type": (
        with_change("spec.strategy.shadow", {"duration": "5m"}),
        ["strategy.shadow is only allowed with strategy.type Shadow"],
    ),
    "canary-without-steps": (
        with_change("spec.strategy.canary", None),
        ["strategy.type Canary needs strategy.canary.steps"],
    ),
    "metric-without-threshold": (
        with_change("spec.strategy.analysis.metrics", [{"name": "error-rate"}]),
        ["every analysis metric needs a threshold: min or max"],
    ),
    "custom-metric-without-query": (
        with_change("spec.strategy.analysis.metrics", [{"name": "my-metric", "max": 1}]),
        ["a custom analysis metric needs a query"],
    ),
    "accuracy-without-min": (
        with_change("spec.strategy.analysis.metrics", [{"name": "accuracy", "max": 1}]),
        ["analysis metric accuracy needs min"],
    ),
    "mean-absolute-error-without-max": (
        with_change("spec.strategy.analysis.metrics", [{"name": "mean-absolute-error", "min": 0}]),
        ["analysis metric mean-absolute-error needs max"],
    ),
    "min-samples-on-error-rate": (
        with_change(
            "spec.strategy.analysis.metrics", [{"name": "error-rate", "max": 1, "minSamples": 5}]
        ),
        ["minSamples applies only to the builtin accuracy and mean-absolute-error"],
    ),
    "min-samples-zero": (
        with_change(
            "spec.strategy.analysis.metrics", [{"name": "accuracy", "min": 0.9, "minSamples": 0}]
        ),
        ["minSamples", "greater than or equal to 1"],
    ),
    "bad-duration": (
        with_change("spec.strategy.analysis.interval", "30 seconds"),
        ["spec.strategy.analysis.interval", "should match"],
    ),
    "unknown-strategy": (
        with_change("spec.strategy.type", "BlueGreen"),
        ["spec.strategy.type", "Unsupported value", "Canary"],
    ),
    "missing-model-version": (
        with_change("spec.model.version", None),
        ["spec.model.version", "Required value"],
    ),
    "bad-digest": (
        with_change("spec.model.digest", "md5:abc"),
        ["spec.model.digest", "should match"],
    ),
    "gatewayapi-without-route": (
        with_change("spec.traffic", {"provider": "gatewayapi"}),
        ["traffic.provider gatewayapi needs traffic.httpRoute"],
    ),
    "gatewayapi-with-shadow-agreement": (
        with_change(
            "spec",
            {
                **good()["spec"],
                "strategy": {
                    "type": "Shadow",
                    "analysis": {"metrics": [{"name": "shadow-agreement", "min": 0.9}]},
                },
                "traffic": {"provider": "gatewayapi", "httpRoute": {"name": "web"}},
            },
        ),
        ["shadow-agreement needs traffic.provider builtin"],
    ),
    "route-rule-index-too-high": (
        with_change(
            "spec.traffic",
            {"provider": "gatewayapi", "httpRoute": {"name": "web", "ruleIndex": 16}},
        ),
        ["spec.traffic.httpRoute.ruleIndex", "less than or equal to 15"],
    ),
    "zero-crash-loop-restarts": (
        with_change("spec.strategy.crashLoopRestarts", 0),
        ["spec.strategy.crashLoopRestarts", "greater than or equal to 1"],
    ),
    "negative-replicas": (
        with_change("spec.predictor.replicas", -1),
        ["spec.predictor.replicas", "greater than or equal to 0"],
    ),
    "batching-wait-under-both-names": (
        with_change("spec.predictor.batching", {"maxWaitMs": 5, "maxLatencyMs": 5}),
        ["set maxWaitMs only (maxLatencyMs is its deprecated name)"],
    ),
    "name-too-long": (
        good("m" * 53),
        ["metadata.name must be at most 52 characters"],
    ),
}


@pytest.fixture
def api(cluster) -> client.ApiClient:
    api = cluster.api_client()
    apply_crd(api)
    return api


def create(api: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    return client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_manifest_is_refused_with_a_readable_message(api, namespace, case):
    body, expected = BAD[case]
    with pytest.raises(ApiException) as info:
        create(api, namespace, body)
    assert info.value.status == 422, info.value.body
    message = json.loads(info.value.body)["message"]
    for text in expected:
        assert text in message, f"{case}: {text!r} not in {message!r}"


def test_good_manifest_is_accepted_and_defaulted(api, namespace):
    obj = create(api, namespace, good())
    spec = obj["spec"]
    assert spec["predictor"]["replicas"] == 1
    assert spec["strategy"]["analysis"]["interval"] == "30s"
    assert spec["strategy"]["canary"]["steps"][1]["pause"] == "1m"
    assert spec["traffic"] == {"provider": "builtin"}
    assert spec["revisionHistoryLimit"] == 3


@pytest.mark.parametrize("key", ["maxWaitMs", "maxLatencyMs"])
def test_batching_wait_is_accepted_under_either_name_alone(api, namespace, key):
    obj = create(api, namespace, with_change("spec.predictor.batching", {key: 7}))
    assert obj["spec"]["predictor"]["batching"] == {key: 7, "maxBatchSize": 32}


def test_the_old_wait_name_moves_to_the_new_one_in_one_patch(api, namespace):
    """The documented migration (docs/contracts.md): a JSON-patch move passes the CEL rule."""
    created = create(api, namespace, with_change("spec.predictor.batching", {"maxLatencyMs": 5}))
    move = {
        "op": "move",
        "from": "/spec/predictor/batching/maxLatencyMs",
        "path": "/spec/predictor/batching/maxWaitMs",
    }
    moved = client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, created["metadata"]["name"], [move],
        _content_type="application/json-patch+json",
    )  # fmt: skip
    assert moved["spec"]["predictor"]["batching"] == {"maxWaitMs": 5, "maxBatchSize": 32}


def test_minimal_manifest_gets_a_default_canary_strategy(api, namespace):
    body = good()
    del body["spec"]["strategy"]
    obj = create(api, namespace, body)
    strategy = obj["spec"]["strategy"]
    assert strategy["type"] == "Canary"
    assert [s["weight"] for s in strategy["canary"]["steps"]] == [10, 50]
    assert [m["name"] for m in strategy["analysis"]["metrics"]] == ["error-rate", "latency-p99"]


EXAMPLES = sorted((ROOT / "examples").glob("*/*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_are_accepted(api, namespace, path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "ModelDeployment"]
    assert docs, f"{path} holds no ModelDeployment"
    custom = client.CustomObjectsApi(api)
    for doc in docs:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, doc, dry_run="All"
        )
