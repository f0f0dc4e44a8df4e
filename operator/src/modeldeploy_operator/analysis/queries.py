"""PromQL for the builtin analysis metrics, as pure string builders.

Only the metric names of docs/contracts.md appear here. A revision is chosen
by `namespace` (a Prometheus target label) and `revision` (a predictor label);
router series name the shadow by `shadow_revision`. Health and metrics
endpoints are left out of request counts: probes are not traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

# Requests to these endpoints are probes or scrapes, never user traffic.
_NOT_TRAFFIC = 'endpoint!~".*(health|metrics|ready|live).*"'


@dataclass(frozen=True)
class Target:
    """What one analysis run looks at."""

    namespace: str
    name: str  # the ModelDeployment
    revision: str  # candidate revision
    stable_revision: str
    track: str  # canary | shadow
    interval: str  # PromQL range, e.g. 30s


def _sel(t: Target, revision: str | None = None, *extra: str) -> str:
    parts = [f'namespace="{t.namespace}"', f'revision="{revision or t.revision}"', *extra]
    return "{" + ",".join(parts) + "}"


def requests(t: Target) -> str:
    """Candidate requests in the interval (user traffic only)."""
    return f"sum(increase(modeldeploy_requests_total{_sel(t, None, _NOT_TRAFFIC)}[{t.interval}]))"


def error_rate(t: Target) -> str:
    """Share of 5xx among the candidate's requests; 0 when no 5xx series exists."""
    errors = _sel(t, None, _NOT_TRAFFIC, 'code=~"5.."')
    return (
        f"(sum(increase(modeldeploy_requests_total{errors}[{t.interval}])) or vector(0))"
        f" / {requests(t)}"
    )


def latency_quantile(t: Target, quantile: float = 0.99) -> str:
    sel = _sel(t, None, _NOT_TRAFFIC)
    return (
        f"histogram_quantile({quantile:g}, sum by (le) "
        f"(rate(modeldeploy_request_duration_seconds_bucket{sel}[{t.interval}])))"
    )


def feature_drift(t: Target) -> str:
    """Largest per-feature PSI the candidate reports against its training reference."""
    return f"max(modeldeploy_feature_drift_psi_max{_sel(t)})"


def predicted_classes(t: Target, revision: str) -> str:
    """Predicted-class counts in the interval, one series per class."""
    return (
        f"sum by (class) (increase(modeldeploy_predicted_class_total{_sel(t, revision)}"
        f"[{t.interval}]))"
    )


def prediction_buckets(t: Target, revision: str) -> str:
    """Regressors: cumulative prediction-value buckets in the interval, by `le`."""
    return (
        f"sum by (le) (increase(modeldeploy_prediction_value_bucket{_sel(t, revision)}"
        f"[{t.interval}]))"
    )


def _shadow_sel(t: Target) -> str:
    return f'{{namespace="{t.namespace}",shadow_revision="{t.revision}"}}'


def shadow_comparisons(t: Target) -> str:
    """Mirrored requests the router compared with the primary answer."""
    return (
        f"sum(increase(modeldeploy_router_shadow_comparisons_total{_shadow_sel(t)}[{t.interval}]))"
    )


def shadow_agreement(t: Target) -> str:
    agreements = (
        f"sum(increase(modeldeploy_router_shadow_agreements_total{_shadow_sel(t)}[{t.interval}]))"
    )
    return f"({agreements} or vector(0)) / {shadow_comparisons(t)}"


def custom(template: str, t: Target) -> str:
    """Fill a user template; plain replacement because PromQL itself uses braces."""
    out = template
    for key, value in {
        "namespace": t.namespace,
        "name": t.name,
        "revision": t.revision,
        "track": t.track,
        "interval": t.interval,
    }.items():
        out = out.replace("{" + key + "}", value)
    return out


def _feedback(t: Target, counter: str) -> str:
    return f"sum(increase(modeldeploy_feedback_{counter}_total{_sel(t)}[{t.interval}]))"


def labelled_outcomes(t: Target) -> str:
    """Rows of the candidate whose true label or value arrived in the interval."""
    return _feedback(t, "outcomes")


def accuracy(t: Target) -> str:
    """Share of labelled rows the candidate predicted right (classifiers)."""
    return f"({_feedback(t, 'correct')} or vector(0)) / {labelled_outcomes(t)}"


def mean_absolute_error(t: Target) -> str:
    """Mean |prediction - true value| over labelled rows (regressors)."""
    return f"({_feedback(t, 'absolute_error')} or vector(0)) / {labelled_outcomes(t)}"
