"""readiness/liveness/startup probes: spec parsing and bookkeeping (pure) plus the checks.

Thresholds and periods follow the Kubernetes defaults (period 10 s, timeout
1 s, failureThreshold 3, successThreshold 1); tests set short periods.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class ProbeSpec:
    kind: str  # http | tcp | exec
    host: str = ""
    port: int = 0
    path: str = "/"
    scheme: str = "http"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3


class ProbeSpecError(ValueError):
    pass


def _port(value: object, ports: dict[str, int]) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, str) and value in ports:
        return ports[value]
    raise ProbeSpecError(f"probe port {value!r} is neither a number nor a named container port")


def parse(probe: dict | None, pod_ip: str, ports: dict[str, int]) -> ProbeSpec | None:
    """A Kubernetes probe object (camelCase dict) -> ProbeSpec; None when absent."""
    if not probe:
        return None
    common: dict[str, Any] = {
        "initial_delay": float(probe.get("initialDelaySeconds") or 0),
        "period": float(probe.get("periodSeconds") or 10),
        "timeout": float(probe.get("timeoutSeconds") or 1),
        "success_threshold": int(probe.get("successThreshold") or 1),
        "failure_threshold": int(probe.get("failureThreshold") or 3),
    }
    if http := probe.get("httpGet"):
        return ProbeSpec(
            kind="http",
            host=http.get("host") or pod_ip,
            port=_port(http.get("port"), ports),
            path=http.get("path") or "/",
            scheme=(http.get("scheme") or "HTTP").lower(),
            headers=tuple((h["name"], h["value"]) for h in http.get("httpHeaders") or []),
            **common,
        )
    if tcp := probe.get("tcpSocket"):
        return ProbeSpec(
            kind="tcp", host=tcp.get("host") or pod_ip, port=_port(tcp.get("port"), ports), **common
        )
    if exe := probe.get("exec"):
        return ProbeSpec(kind="exec", command=tuple(exe.get("command") or ()), **common)
    raise ProbeSpecError("probe has none of httpGet, tcpSocket, exec (grpc is not supported)")


def check(spec: ProbeSpec, env: dict[str, str] | None = None) -> bool:
    """Run one probe; Kubernetes counts HTTP 200-399 as success."""
    try:
        if spec.kind == "http":
            url = f"{spec.scheme}://{spec.host}:{spec.port}{spec.path}"
            r = httpx.get(url, headers=dict(spec.headers), timeout=spec.timeout, verify=False)
            return 200 <= r.status_code < 400
        if spec.kind == "tcp":
            with socket.create_connection((spec.host, spec.port), timeout=spec.timeout):
                return True
        if spec.kind == "exec":
            done = subprocess.run(
                list(spec.command), env=env, capture_output=True, timeout=spec.timeout, check=False
            )
            return done.returncode == 0
    except (OSError, httpx.HTTPError, subprocess.TimeoutExpired):
        return False
    return False


@dataclass
class ProbeState:
    """Consecutive results of one probe for one container run."""

    spec: ProbeSpec
    started_at: float
    result: bool | None = None  # None until the threshold is first reached
    successes: int = 0
    failures: int = 0
    next_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.next_at = self.started_at + self.spec.initial_delay

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, ok: bool, now: float) -> bool | None:
        """Account one result; return the (possibly new) overall result."""
        self.next_at = now + self.spec.period
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.spec.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.spec.failure_threshold:
                self.result = False
        return self.result
