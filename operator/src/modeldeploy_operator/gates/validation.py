"""Pre-traffic validation, the I/O side: fetch the candidate bundle's validation
set, have the candidate and the stable revision predict it, judge the answers
(`analysis/validation.py`).

Requests go straight to a Ready pod of each revision (the pods behind the
`NAME-canary` / `NAME-stable` Services), never through the router: no user
request and no router metric is involved, and the router sends the candidate
nothing until the state machine enters the first stage. Bounded by
`strategy.validation.timeout`; every failure becomes a failed validation that
names its cause.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from modeldeploy_operator import manifests, spec
from modeldeploy_operator.analysis import validation as judge
from modeldeploy_operator.gates import loadspec
from modeldeploy_operator.kube import Kube
from modeldeploy_operator.rollout import gating
from modeldeploy_operator.status import Status


class ValidationError(Exception):
    """The candidate failed the validation outside the verdict (no validation set,
    non-200 answers, wrong row counts); the message says why."""


class CouldNotRun(ValidationError):
    """The validation could not run (no Ready pod, a connection failed): inconclusive."""


async def validate(
    md: spec.ModelDeployment, status: Status, kube: Kube
) -> gating.ValidationOutcome:
    cfg = md.strategy.validation
    assert cfg is not None
    try:
        return await asyncio.wait_for(_validate(md, status, kube, cfg), cfg.timeout)
    except TimeoutError:
        msg = f"validation did not finish in {cfg.timeout:g}s"
        return gating.ValidationOutcome(False, msg, conclusive=False)
    except CouldNotRun as exc:
        return gating.ValidationOutcome(False, str(exc), conclusive=False)
    except ValidationError as exc:
        return gating.ValidationOutcome(False, str(exc))


async def _validate(
    md: spec.ModelDeployment, status: Status, kube: Kube, cfg: spec.Validation
) -> gating.ValidationOutcome:
    assert status.candidate and status.stable, "validated only while a candidate starts"
    cand_url = await _pod_url(kube, md.namespace, status.candidate.revision, "candidate")
    stable_url = await _pod_url(kube, md.namespace, status.stable.revision, "stable")
    async with httpx.AsyncClient(timeout=30) as http:
        doc = await _validation_set(http, cand_url, md.model.name)
        rows = [dict(zip(doc["features"], row, strict=True)) for row in doc["rows"]]
        candidate = await _answers(http, cand_url, rows, cfg, "candidate")
        stable = await _answers(http, stable_url, rows, cfg, "stable")
    limits = judge.Thresholds(cfg.min_agreement, cfg.max_accuracy_drop, cfg.max_latency_ratio)
    report = judge.judge(candidate, stable, doc.get("labels"), limits)
    return gating.ValidationOutcome(report.passed, report.message, report.metrics)


async def _pod_url(kube: Kube, namespace: str, revision: str, who: str) -> str:
    urls = loadspec.ready_urls(await kube.list_pods(namespace, revision), manifests.PORT)
    if not urls:
        raise CouldNotRun(f"no Ready {who} pod of {revision} to validate with")
    return urls[0]


async def _validation_set(http: httpx.AsyncClient, url: str, model: str) -> dict[str, Any]:
    try:
        r = await http.get(f"{url}/v2/models/{model}/validation")
    except httpx.HTTPError as exc:
        raise CouldNotRun(f"candidate unreachable for its validation set: {exc!r}") from None
    if r.status_code == 404:
        raise ValidationError("the candidate's bundle has no validation set (bundle --validation)")
    if r.status_code != 200:
        raise ValidationError(f"candidate answered {r.status_code} for its validation set")
    return r.json()


async def _answers(
    http: httpx.AsyncClient,
    url: str,
    rows: list[dict[str, Any]],
    cfg: spec.Validation,
    who: str,
) -> judge.Answers:
    predictions: list[Any] = []
    batch_seconds = []
    for start in range(0, len(rows), cfg.batch_size):
        answer, seconds = await _predict(http, url, rows[start : start + cfg.batch_size], who)
        predictions.extend(answer)
        batch_seconds.append(seconds)
    single = [(await _predict(http, url, [row], who))[1] for row in rows[: cfg.latency_samples]]
    return judge.Answers(predictions, single, batch_seconds)


async def _predict(
    http: httpx.AsyncClient, url: str, rows: list[dict[str, Any]], who: str
) -> tuple[list[Any], float]:
    started = time.perf_counter()
    try:
        r = await http.post(f"{url}/predict", json=rows)
    except httpx.HTTPError as exc:
        raise CouldNotRun(f"{who} unreachable on /predict: {exc!r}") from None
    seconds = time.perf_counter() - started
    if r.status_code != 200:
        raise ValidationError(f"{who} answered {r.status_code} on /predict: {r.text[:200]}")
    predictions = r.json().get("predictions")
    if not isinstance(predictions, list) or len(predictions) != len(rows):
        raise ValidationError(f"{who} answered {len(rows)} rows with {predictions!r:.100}")
    return predictions, seconds
