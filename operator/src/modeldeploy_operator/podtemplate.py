"""Merge a user's partial pod template (`spec.predictor.template`) into ours.

Pure: `merge_pod(generated, template)` takes the pod template the operator
generates for a revision and the user's partial template and returns the pod
template to apply. The rules (also in the CRD's descriptions):

- metadata labels / annotations: the user's are added; ours win on the same
  key (selector labels, revision, Prometheus scrape annotations).
- pod spec: serviceAccountName, nodeSelector, tolerations, affinity,
  topologySpreadConstraints, priorityClassName and imagePullSecrets are the
  user's; volumes are ours plus the user's (ours win on the same name);
  securityContext is ours with the user's fields laid over it.
- the predictor container: env is ours plus the user's (ours win on the same
  name, so the model identity and batching cannot be changed behind the
  operator's back), envFrom is ours then the user's, volumeMounts are ours
  plus the user's (ours win on the same mountPath), resources and
  securityContext are ours with the user's fields laid over them. Image, args,
  command, ports and probes are the operator's only: the schema has no field
  for them.

Lists are merged by the key server-side apply uses for them (env and volumes
by name, volumeMounts by mountPath) so the applied manifest never holds two
entries with one key, which the API server would refuse.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

PREDICTOR_CONTAINER = "predictor"
# Pod spec fields taken from the user as they are (we never set them ourselves).
POD_FIELDS = (
    "serviceAccountName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
    "imagePullSecrets",
)
# Fields where the user's keys are laid over ours (one level deep).
OVERLAY_FIELDS = ("securityContext",)


def merge_pod(
    generated: dict[str, Any],
    template: dict[str, Any] | None,
    container: str = PREDICTOR_CONTAINER,
) -> dict[str, Any]:
    """The generated pod template with the user's partial template merged in.

    `container` names the one container the template's container settings
    apply to (predictor pods; the router's subset uses "router").
    """
    pod = copy.deepcopy(generated)
    if not template:
        return pod
    template = copy.deepcopy(template)
    _merge_metadata(pod.setdefault("metadata", {}), template.get("metadata") or {})
    user_spec = template.get("spec") or {}
    spec = pod.setdefault("spec", {})
    for key in POD_FIELDS:
        if user_spec.get(key) not in (None, "", [], {}):
            spec[key] = user_spec[key]
    for key in OVERLAY_FIELDS:
        if user_spec.get(key):
            spec[key] = {**(spec.get(key) or {}), **user_spec[key]}
    volumes = _union(spec.get("volumes") or [], user_spec.get("volumes") or [], "name")
    if volumes:
        spec["volumes"] = volumes
    user_container = _user_container(user_spec, container)
    if user_container:
        _merge_container(_find_container(spec, container), user_container)
    return pod


def _user_container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    """The user's settings for container `name` (empty when none)."""
    for c in pod_spec.get("containers") or []:
        if c.get("name", name) == name:
            return c
    return {}


def _merge_metadata(meta: dict[str, Any], user: dict[str, Any]) -> None:
    for key in ("labels", "annotations"):
        if user.get(key):
            meta[key] = {**user[key], **(meta.get(key) or {})}


def _find_container(spec: dict[str, Any], name: str) -> dict[str, Any]:
    for c in spec.get("containers") or []:
        if c.get("name") == name:
            return c
    raise ValueError(f"generated pod has no {name} container")


def _merge_container(ours: dict[str, Any], user: dict[str, Any]) -> None:
    env = merge_env(ours.get("env") or [], user.get("env") or [])
    if env:
        ours["env"] = env
    if user.get("envFrom"):
        ours["envFrom"] = [*(ours.get("envFrom") or []), *user["envFrom"]]
    mounts = _union(ours.get("volumeMounts") or [], user.get("volumeMounts") or [], "mountPath")
    if mounts:
        ours["volumeMounts"] = mounts
    if user.get("resources"):
        ours["resources"] = _overlay_resources(ours.get("resources") or {}, user["resources"])
    if user.get("securityContext"):
        ours["securityContext"] = {**(ours.get("securityContext") or {}), **user["securityContext"]}


def _overlay_resources(ours: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """requests / limits merged per resource name; the user's quantity wins."""
    out = dict(ours)
    for key, value in user.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def merge_env(
    ours: Iterable[dict[str, Any]], theirs: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A container's env: ours, then the user's names we do not set (first wins).

    `predictor.env` goes through this too: an applied Deployment with two env
    entries of one name is refused by server-side apply (a 500, retried for
    ever with no status)."""
    return _union(ours, theirs, "name")


def _union(
    ours: Iterable[dict[str, Any]], theirs: Iterable[dict[str, Any]], key: str
) -> list[dict[str, Any]]:
    """Ours, then the user's entries whose key we do not already use."""
    merged = list(ours)
    taken = {item.get(key) for item in merged}
    for item in theirs:
        if item.get(key) not in taken:
            merged.append(item)
            taken.add(item.get(key))
    return merged
