"""spec.py reads each default from its dataclasses, and the CRD's defaults agree.

The CRD's `default:` values and the dataclass defaults describe the same
setting; a body the API server did not default (a unit test, an old object)
must parse to what the CRD would have filled in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from md_factories import body
from modeldeploy_operator import manifests, spec
from modeldeploy_predictor import config as predictor_config
from modeldeploy_router.settings import DEFAULTS as ROUTER_DEFAULTS

CRD = Path(__file__).resolve().parents[2] / "crds" / "modeldeploy.io_modeldeployments.yaml"

# CRD property path (below spec) -> the parsed value of a body without it.
DEFAULTS: dict[str, Any] = {
    "predictor.replicas": lambda m: m.predictor.replicas,
    "predictor.batching.maxBatchSize": lambda m: m.predictor.max_batch_size,
    "strategy.analysis.interval": lambda m: m.strategy.analysis.interval,
    "strategy.analysis.initialDelay": lambda m: m.strategy.analysis.initial_delay,
    "strategy.analysis.failureLimit": lambda m: m.strategy.analysis.failure_limit,
    "strategy.analysis.inconclusiveLimit": lambda m: m.strategy.analysis.inconclusive_limit,
    "strategy.analysis.minRequests": lambda m: m.strategy.analysis.min_requests,
    "strategy.autoPromote": lambda m: m.strategy.auto_promote,
    "strategy.progressDeadline": lambda m: m.strategy.progress_deadline,
    "strategy.bakeDuration": lambda m: m.strategy.bake_duration,
    "strategy.crashLoopRestarts": lambda m: m.strategy.crash_loop_restarts,
    "revisionHistoryLimit": lambda m: m.revision_history_limit,
}


def _crd_default(path: str) -> Any:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    node = schema["properties"]["spec"]
    for part in path.split("."):
        node = node["properties"][part]
    return node["default"]


def _as_parsed(value: Any) -> Any:
    return spec.parse_duration(value) if isinstance(value, str) else value


@pytest.mark.parametrize("path", sorted(DEFAULTS))
def test_crd_default_matches_the_parsed_default(path: str) -> None:
    bare = body()
    bare["spec"]["predictor"].pop("replicas", None)
    bare["spec"].pop("revisionHistoryLimit", None)
    for key in ("analysis", "autoPromote", "progressDeadline", "bakeDuration"):
        bare["spec"]["strategy"].pop(key, None)
    bare["spec"]["strategy"].pop("crashLoopRestarts", None)
    assert DEFAULTS[path](spec.parse(bare)) == _as_parsed(_crd_default(path))


def _with_batching(batching: dict[str, int]) -> dict[str, Any]:
    b = body()
    b["spec"]["predictor"]["batching"] = batching
    return b


def test_max_wait_ms_reaches_the_predictor_env() -> None:
    parsed = spec.parse(_with_batching({"maxWaitMs": 9}))
    assert parsed.predictor.max_wait_ms == 9 and parsed.deprecations == ()
    pod = manifests.revision_deployment(parsed, 1, "stable")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["MODELDEPLOY_MAX_WAIT_MS"] == "9"


def test_the_deprecated_name_is_read_with_a_note() -> None:
    parsed = spec.parse(_with_batching({"maxLatencyMs": 9}))
    assert parsed.predictor.max_wait_ms == 9
    assert parsed.deprecations == (
        "spec.predictor.batching.maxLatencyMs is deprecated and will be removed in a later "
        "release: use maxWaitMs",
    )
    # Renaming the field does not change the revision: no rollout on upgrade.
    assert parsed.revision == spec.parse(_with_batching({"maxWaitMs": 9})).revision


def test_absent_wait_is_the_dataclass_default() -> None:
    assert spec.parse(_with_batching({})).predictor.max_wait_ms == spec.Predictor.max_wait_ms == 5


def test_batching_and_body_defaults_are_one_across_operator_predictor_and_router() -> None:
    predictor = predictor_config.Settings()
    assert spec.Predictor.max_batch_size == predictor.max_batch_size
    assert spec.Predictor.max_wait_ms == predictor.max_wait_ms
    assert _crd_default("predictor.batching.maxBatchSize") == predictor.max_batch_size
    assert ROUTER_DEFAULTS.max_body_bytes == predictor.max_body_bytes


def test_the_pods_grace_period_covers_the_predictors_own_graceful_stop() -> None:
    # The operator cannot import the predictor; this holds its copy to the source.
    graceful = predictor_config.Settings().graceful_timeout
    assert graceful == manifests.PREDICTOR_GRACEFUL_SECONDS
