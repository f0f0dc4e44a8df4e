"""The real API server refuses malformed webhooks and notifications, readably.

Same method as test_crd_cluster.py: each bad manifest is created on the local
cluster and the refusal must name the field and what is wrong; good ones are
accepted and defaulted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from test_crd_cluster import api, create, good, with_change

pytestmark = pytest.mark.cluster
__all__ = ["api"]  # the fixture: our CRD applied


def hook(**kw: Any) -> dict[str, Any]:
    return {"name": "smoke", "type": "pre-rollout", "url": "http://tester.ns/gate", **kw}


BAD = {
    "webhook-unknown-type": (
        with_change("spec.strategy.webhooks", [hook(type="pre-promotion")]),
        ["spec.strategy.webhooks[0].type", "Unsupported value", "confirm-promotion"],
    ),
    "webhook-relative-url": (
        with_change("spec.strategy.webhooks", [hook(url="/gate")]),
        ["spec.strategy.webhooks[0]", "webhook url must be an absolute http:// or https:// URL"],
    ),
    "webhook-ftp-url": (
        with_change("spec.strategy.webhooks", [hook(url="ftp://tester/gate")]),
        ["webhook url must be an absolute http:// or https:// URL"],
    ),
    "webhook-duplicate-name": (
        with_change("spec.strategy.webhooks", [hook(), hook(type="rollout")]),
        ["spec.strategy.webhooks[1]", "Duplicate value"],
    ),
    "webhook-long-timeout": (
        with_change("spec.strategy.webhooks", [hook(timeout="10m")]),
        ["webhook timeout must be at most 5m"],
    ),
    "webhook-bad-timeout": (
        with_change("spec.strategy.webhooks", [hook(timeout="ten seconds")]),
        ["spec.strategy.webhooks[0].timeout", "should match"],
    ),
    "webhook-without-url": (
        with_change("spec.strategy.webhooks", [{"name": "smoke", "type": "rollout"}]),
        ["spec.strategy.webhooks[0].url", "Required value"],
    ),
    "webhook-non-string-metadata": (
        with_change("spec.strategy.webhooks", [hook(metadata={"cmd": {"a": 1}})]),
        ["spec.strategy.webhooks[0].metadata.cmd", "must be of type string"],
    ),
    "notification-unknown-type": (
        with_change("spec.notifications", [{"name": "chat", "type": "teams", "url": "https://x"}]),
        ["spec.notifications[0].type", "Unsupported value", "slack"],
    ),
    "notification-bad-url": (
        with_change("spec.notifications", [{"name": "chat", "url": "hooks.slack.com/x"}]),
        ["notification url must be an absolute http:// or https:// URL"],
    ),
    "validation-without-threshold": (
        with_change("spec.strategy.validation", {"batchSize": 32}),
        ["strategy.validation needs at least one threshold: minAgreement, maxAccuracyDrop"],
    ),
    "validation-agreement-over-1": (
        with_change("spec.strategy.validation", {"minAgreement": 1.5}),
        ["spec.strategy.validation.minAgreement", "less than or equal to 1"],
    ),
    "validation-zero-latency-ratio": (
        with_change("spec.strategy.validation", {"maxLatencyRatio": 0}),
        ["spec.strategy.validation.maxLatencyRatio", "greater than 0"],
    ),
    "validation-long-timeout": (
        with_change("spec.strategy.validation", {"minAgreement": 0.9, "timeout": "1h"}),
        ["strategy.validation.timeout must be at most 30m"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_gate_settings_are_refused_with_a_readable_message(api, namespace, case):
    body, expected = BAD[case]
    with pytest.raises(ApiException) as info:
        create(api, namespace, body)
    refusal = (info.value.status, json.loads(info.value.body)["message"])
    missing = [text for text in expected if text not in refusal[1]]
    assert refusal[0] == 422 and not missing, f"{case}: {missing} not in {refusal}"


def test_good_gate_settings_are_accepted_and_defaulted(api, namespace):
    body = good()
    body["spec"]["strategy"]["webhooks"] = [
        hook(metadata={"cmd": "hey -z 1m http://fraud.ns:8080/predict"}),
        hook(name="gate", type="confirm-promotion", url="https://gate.example/approve"),
    ]
    body["spec"]["strategy"]["analysis"]["metrics"].append(
        {"name": "feature-drift", "max": 0.1, "dryRun": True}
    )
    body["spec"]["notifications"] = [{"name": "chat", "url": "https://hooks.example/T0/B0/x"}]
    body["spec"]["strategy"]["validation"] = {"minAgreement": 0.95}
    spec = create(api, namespace, body)["spec"]
    assert spec["strategy"]["validation"] == {
        "minAgreement": 0.95,
        "batchSize": 64,
        "latencySamples": 50,
        "timeout": "2m",
    }
    assert [w["timeout"] for w in spec["strategy"]["webhooks"]] == ["10s", "10s"]
    assert spec["notifications"] == [
        {
            "name": "chat",
            "type": "webhook",
            "url": "https://hooks.example/T0/B0/x",
            "timeout": "10s",
        }
    ]
    metrics = spec["strategy"]["analysis"]["metrics"]
    assert [m["dryRun"] for m in metrics] == [False, True]
