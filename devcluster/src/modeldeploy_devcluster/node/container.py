"""One container of a pod, run as a local process group.

The container keeps Kubernetes' bookkeeping: state (waiting / running /
terminated), last state, restart count with exponential back-off, readiness
and liveness from probes. Back-off starts at 1 s and caps at 30 s (the kubelet
uses 10 s .. 5 min) so that tests see restarts quickly.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modeldeploy_devcluster import procs
from modeldeploy_devcluster.node import probes

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
BACKOFF_RESET_AFTER = 60.0  # a run this long forgets earlier crashes


def backoff_delay(consecutive_crashes: int) -> float:
    if consecutive_crashes <= 0:
        return 0.0
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (consecutive_crashes - 1))


def should_restart(policy: str, exit_code: int) -> bool:
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


def exit_code(returncode: int | None) -> int:
    """Popen's -SIG for a signalled process -> the shell-style 128+SIG Kubernetes shows."""
    if returncode is None:
        return 137
    return 128 - returncode if returncode < 0 else returncode


def rfc3339(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Launch:
    """What the pod worker resolved for this container: argv and env, or why not."""

    argv: list[str] | None
    env: dict[str, str]
    error_reason: str = ""
    error_message: str = ""


class Container:
    def __init__(
        self,
        spec: dict,
        pod_dir: Path,
        restart_policy: str,
        resolve: Callable[[], Launch],
        probe_specs: tuple[
            probes.ProbeSpec | None, probes.ProbeSpec | None, probes.ProbeSpec | None
        ],
        grace: float,
    ) -> None:
        self.name: str = spec["name"]
        self.image: str = spec.get("image", "")
        self.spec = spec
        self.pod_dir = pod_dir
        self.policy = restart_policy
        self.resolve = resolve
        self.readiness_spec, self.liveness_spec, self.startup_spec = probe_specs
        self.grace = grace
        self.log_path = pod_dir / f"{self.name}.log"
        self.pgid_path = pod_dir / f"{self.name}.pgid"
        self.proc: subprocess.Popen | None = None
        self.restart_count = 0
        self.crashes = 0
        self.started_at = 0.0
        self.next_start = 0.0
        self.waiting = ("ContainerCreating", "")
        self.last_state: dict = {}
        self.terminated: dict | None = None  # final state when not restarting
        self.ready = False
        self.readiness: probes.ProbeState | None = None
        self.liveness: probes.ProbeState | None = None
        # As the kubelet: while a startup probe has not succeeded, neither
        # liveness nor readiness runs.
        self.startup: probes.ProbeState | None = None
        self.env: dict[str, str] = {}
        self.retry_resolve_at = 0.0

    # -- lifecycle ---------------------------------------------------------

    def _start(self, now: float) -> None:
        launch = self.resolve()
        if launch.argv is None:
            self.waiting = (launch.error_reason, launch.error_message)
            self.retry_resolve_at = now + 5.0  # the map or a ConfigMap may appear later
            return
        exe = shutil.which(launch.argv[0], path=launch.env.get("PATH"))
        if exe is None:
            self.waiting = (
                "CreateContainerError",
                f"executable {launch.argv[0]!r} not found on the container's PATH",
            )
            self.retry_resolve_at = now + 5.0
            return
        workdir = Path(self.spec.get("workingDir") or self.pod_dir)
        if not workdir.is_dir():
            workdir = self.pod_dir
        with open(self.log_path, "ab") as log:
            log.write(f"--- devcluster: starting {launch.argv!r} at {rfc3339(now)}\n".encode())
        self.env = launch.env
        self.proc = procs.spawn([exe, *launch.argv[1:]], self.log_path, env=launch.env, cwd=workdir)
        self.pgid_path.write_text(str(self.proc.pid))
        self.started_at = now
        self.waiting = ("", "")
        self.ready = False
        self.readiness = (
            probes.ProbeState(self.readiness_spec, now) if self.readiness_spec else None
        )
        self.liveness = probes.ProbeState(self.liveness_spec, now) if self.liveness_spec else None
        self.startup = probes.ProbeState(self.startup_spec, now) if self.startup_spec else None

    def _exited(self, code: int, now: float) -> None:
        ran = now - self.started_at
        finished = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": rfc3339(self.started_at),
            "finishedAt": rfc3339(now),
            "containerID": f"devcluster://{self.proc.pid if self.proc else 0}",
        }
        self.proc = None
        self.pgid_path.unlink(missing_ok=True)
        self.ready = False
        if not should_restart(self.policy, code):
            self.terminated = finished
            return
        self.last_state = {"terminated": finished}
        self.crashes = 1 if ran >= BACKOFF_RESET_AFTER else self.crashes + 1
        self.restart_count += 1
        self.next_start = now + backoff_delay(self.crashes)
        self.waiting = ("CrashLoopBackOff", f"back-off restarting failed container {self.name}")

    def tick(self, now: float) -> None:
        """Advance: start, notice exits, restart after back-off, run due probes."""
        if self.terminated is not None:
            return
        if self.proc is None:
            if now >= self.next_start and now >= self.retry_resolve_at:
                self._start(now)
            return
        code = self.proc.poll()
        if code is not None:
            self._exited(exit_code(code), now)
            return
        if not self.started:
            if self.startup is not None and self.startup.due(now):
                result = self.startup.record(probes.check(self.startup.spec, self.env), now)
                if result is False:
                    self._restart_after_failed("startup")
            return
        if self.liveness and self.liveness.due(now):
            alive = self.liveness.record(probes.check(self.liveness.spec, self.env), now)
            if alive is False:
                self._restart_after_failed("liveness")
                return
        if self.readiness is None:
            self.ready = True
        elif self.readiness.due(now):
            self.ready = bool(
                self.readiness.record(probes.check(self.readiness.spec, self.env), now)
            )

    def _restart_after_failed(self, probe: str) -> None:
        assert self.proc is not None
        with open(self.log_path, "ab") as log:
            log.write(f"--- devcluster: {probe} probe failed, restarting\n".encode())
        code = procs.stop(self.proc, grace=self.grace)
        self._exited(exit_code(code), time.time())

    def stop(self, grace: float) -> None:
        if self.proc is not None:
            procs.stop(self.proc, grace=grace)
            self.proc = None
        self.pgid_path.unlink(missing_ok=True)
        self.ready = False

    # -- reporting ---------------------------------------------------------

    @property
    def started(self) -> bool:
        """Running, and past its startup probe if it has one."""
        return self.proc is not None and (self.startup is None or self.startup.result is True)

    @property
    def running(self) -> bool:
        return self.proc is not None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def status(self) -> dict:
        if self.proc is not None:
            state = {"running": {"startedAt": rfc3339(self.started_at)}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason or "ContainerCreating", "message": message}}
        status = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last_state,
        }
        if self.proc is not None:
            status["containerID"] = f"devcluster://{self.proc.pid}"
        return status
