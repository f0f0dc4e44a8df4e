"""Whether a candidate's pods fail for good: the crash-loop rule, pure.

A container that exits once is not necessarily broken: a liveness probe that
times out on a loaded node, or an OOM kill under a burst, restarts it, and the
kubelet shows `CrashLoopBackOff` during the back-off before even the first
restart. Rolling back on that first back-off once rolled a good candidate back
for the wrong reason. So the rule is explicit: a candidate is crash-looping
when one of its containers is in `CrashLoopBackOff` **and** has restarted at
least `strategy.crashLoopRestarts` times. Pods that never start (image pulls,
missing config) are left to `progressDeadline`, whose message then names the
reason they were waiting for.

The functions take pods as the API server returns them (camelCase dicts), so
they are tested without a cluster; `kube.py` lists the pods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CRASH_LOOP = "CrashLoopBackOff"


def crash_loop(pods: list[dict[str, Any]], restarts: int) -> str | None:
    """A message naming the first container crash-looping past `restarts`, else None."""
    for pod, status in _containers(pods):
        waiting = (status.get("state") or {}).get("waiting") or {}
        count = int(status.get("restartCount") or 0)
        if waiting.get("reason") == CRASH_LOOP and count >= restarts:
            last = ((status.get("lastState") or {}).get("terminated") or {}).get("exitCode")
            exit_text = f", last exit code {last}" if last is not None else ""
            return (
                f"pod {pod} container {status.get('name')}: {CRASH_LOOP} after "
                f"{count} restarts{exit_text} (crashLoopRestarts {restarts})"
                f"{_said(status)}"
            )
    return None


def waiting_reason(pods: list[dict[str, Any]]) -> str | None:
    """Why a container is not running yet (e.g. ImagePullBackOff), for the deadline message."""
    for pod, status in _containers(pods):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] != "ContainerCreating":
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            said = _said(status)
            return f"pod {pod} container {status.get('name')} {waiting['reason']}{detail}{said}"
    # Started but never ready: e.g. still fetching from a slow store, or stuck.
    for pod, status in _containers(pods):
        if "running" in (status.get("state") or {}) and status.get("ready") is False:
            return f"pod {pod} container {status.get('name')} running but not ready{_said(status)}"
    return None


# Longest part of a container's last words quoted in a status message.
MAX_SAID = 400


def _said(status: dict[str, Any]) -> str:
    """The last line the container wrote before it exited (its termination message).

    The predictor container has terminationMessagePolicy FallbackToLogsOnError,
    so the kubelet puts the tail of its log there on a failed exit: for a bundle
    that cannot be fetched, the store's error (e.g. `s3://b/m/model.json:
    AccessDenied: ...`), which the rollback message then names.
    """
    message = ((status.get("lastState") or {}).get("terminated") or {}).get("message") or ""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return f"; it said: {last[:MAX_SAID]}{'...' if len(last) > MAX_SAID else ''}"


def _containers(pods: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for key in ("initContainerStatuses", "containerStatuses"):
            for container in status.get(key) or []:
                yield name, container
