"""Model store faults when a candidate starts, under steady load through the router.

The candidate's bundle comes from an HTTP store (a file server on 127.0.0.1
behind a netfaults.TcpProxy, so the store can go away and come back at the
same address). Two faults:

- the store is down (its server stopped: every connection the proxy accepts
  is reset at once), so the candidate's predictor cannot fetch `model.json`;
- the store is blackholed (connections accepted, no byte ever answered); the
  predictor's `MODELDEPLOY_FETCH_TIMEOUT` (3 s here, 30 s by default) bounds
  each attempt;
- the store serves a corrupted bundle (the estimator file's sha256 differs
  from the one `model.json` records).

And later than a candidate's start: the store goes away and a serving
predictor's container is killed; with `model.digest` set it restarts from its
pod's cache.

What must hold: the candidate is never Ready and never gets a request; no
user request fails, all are answered by stable; the rollout says why (the
progressDeadline or crash-loop rollback message names the store's error);
once the store is healed (`retry`) or a fixed bundle is applied, the rollout
proceeds to promotion. tests/predictor/test_sources.py covers the fetch's own
checks; tests/operator/test_stores_cluster.py a refused S3 key without load.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import Env, wait_for
from dataplane import X, Y, fitted, load_rows, make_bundle, operator_env, router
from dataplane import manifest as dataplane_manifest
from faults import kill_pod_processes, running_pods
from kubernetes import client
from netfaults import TcpProxy
from users import RATE, failed, served

from demo.load import Load

pytestmark = [pytest.mark.cluster, pytest.mark.chaos, pytest.mark.chaos_long]

DEADLINE_S = 40


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class BundleStore:
    """Bundle directories served over HTTP on 127.0.0.1, behind a TcpProxy.

    `down()` stops the file server (the proxy resets every connection it
    accepts, as a load balancer with no healthy backend does); `up()` starts a
    new one behind the same proxy address. `corrupt()` changes one byte of a
    file after its sha256 was recorded in model.json."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._server: http.server.ThreadingHTTPServer | None = None
        self.proxy = TcpProxy("127.0.0.1", 1)  # upstream set by up()

    def __enter__(self) -> BundleStore:
        self.up()
        self.proxy.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
        self.proxy.close()

    def up(self) -> None:
        handler = functools.partial(_Quiet, directory=str(self.root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.proxy.upstream = ("127.0.0.1", self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def serving(self) -> bool:
        return self._server is not None

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def add(self, version: str, bundle: str) -> str:
        shutil.copytree(bundle, self.root / "fraud" / version)
        return f"http://{self.proxy.url_host}/fraud/{version}/"

    def corrupt(self, version: str) -> str:
        """Flip a byte of the estimator file; returns the file's name."""
        folder = self.root / "fraud" / version
        meta = json.loads((folder / "model.json").read_text())
        name = meta["estimator"]["file"]
        data = bytearray((folder / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / name).write_bytes(bytes(data))
        return name


@pytest.fixture
def env(cluster, namespace) -> Iterator[Env]:
    yield from operator_env(cluster, namespace)


@pytest.fixture
def store(tmp_path) -> Iterator[BundleStore]:
    with BundleStore(tmp_path / "store") as s:
        yield s


def plan(**extra: Any) -> dict[str, Any]:
    return {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50, "pause": "6s"}]},
        "analysis": {"interval": "2s", "metrics": []},
        **extra,
    }


def manifest(
    version: str, uri: str, strategy: dict[str, Any], *env: dict[str, str]
) -> dict[str, Any]:
    # Each bundle's model.json is new (its creation time), so the predictors'
    # download cache (MODELDEPLOY_CACHE_DIR, the operator's) never holds it yet.
    body = dataplane_manifest(version, uri, strategy)
    body["spec"]["predictor"]["env"].extend(env)
    body["spec"]["strategy"]["progressDeadline"] = strategy.get("progressDeadline", "2m")
    return body


class Phases:
    """Every phase the status showed, in order (a candidate Ready would show Canary)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def until(self, *phases: str):
        def check(st: dict[str, Any]) -> bool:
            phase = st.get("phase", "")
            if not self.seen or self.seen[-1] != phase:
                self.seen.append(phase)
            return phase in phases

        return check


def serve_v1(env: Env, store: BundleStore, tmp_path: Path) -> None:
    uri = store.add("1.0.0", make_bundle(tmp_path, "1.0.0", fitted(X, Y), X))
    env.apply(manifest("1.0.0", uri, plan()))
    env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 from the store", 150)


def degraded(st: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in st.get("conditions") or [] if c["type"] == "Degraded")


@pytest.mark.parametrize("fault", ["down", "blackholed", "corrupt"])
def test_store_fault_when_the_candidate_starts(env, store, tmp_path, fault, figures):
    serve_v1(env, store, tmp_path)
    uri = store.add("2.0.0", make_bundle(tmp_path, "2.0.0", fitted(X, Y, C=0.5), X))
    extra_env: list[dict[str, str]] = []
    if fault in ("down", "blackholed"):
        # Crash loops do not end it first: the deadline reports what the pods said.
        strategy = plan(progressDeadline=f"{DEADLINE_S}s", crashLoopRestarts=20)
        expected = ("ProgressDeadlineExceeded", "fetching model.json failed after 4 attempts")
        if fault == "down":
            store.down()
        else:
            # Connections accepted, nothing answered; each attempt waits 3 s, not 30 s.
            store.proxy.blackhole()
            extra_env.append({"name": "MODELDEPLOY_FETCH_TIMEOUT", "value": "3"})
            expected = (expected[0], f"{expected[1]}: ReadTimeout")
    else:
        strategy = plan()
        corrupted = store.corrupt("2.0.0")
        expected = ("CandidateFailing", f"{corrupted}: sha256 mismatch")
    phases = Phases()
    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        started = time.monotonic()
        env.apply(manifest("2.0.0", uri, strategy, *extra_env))
        st = env.wait_status(phases.until("RolledBack"), "v2 rolled back", DEADLINE_S + 120)
        reported_s = round(time.monotonic() - started, 1)
        before_fix = load.snapshot()
        # Posted right after the status write (the outbox in status.pendingEvents).
        wait_for(lambda: "RolledBack" in env.events(), 30, message="the RolledBack Event")
        # The fault is healed: the store is back (and `retry`), or a fixed bundle applied.
        fixed = time.monotonic()
        if fault in ("down", "blackholed"):
            if fault == "down":
                store.up()
            else:
                store.proxy.heal()
            result = env.plugin("retry", "fraud")
            assert result.returncode == 0, result.stderr
            version = "2.0.0"
        else:
            version = "2.0.1"
            good = store.add(version, make_bundle(tmp_path, version, fitted(X, Y, C=0.5), X))
            env.apply(manifest(version, good, plan()))
        done = env.wait_status(
            lambda s: s.get("phase") == "Succeeded" and s["stable"]["version"] == version,
            f"{version} promoted after the fix",
            180,
        )
        promoted_s = round(time.monotonic() - fixed, 1)
        seen = len(load.snapshot())
        wait_for(lambda: len(load.snapshot()) > seen + 50, 30, message="answers after it")
    answers = load.snapshot()
    message = degraded(st)["message"]
    figures.update(
        fault=fault,
        rate=RATE,
        requests=len(answers),
        failed=failed(answers),
        to_rolled_back_s=reported_s,
        fix_to_promoted_s=promoted_s,
        message=message[:300],
    )
    reason, text = expected
    assert degraded(st)["reason"] == reason, st
    assert text in message, message
    assert "Canary" not in phases.seen, phases.seen  # never Ready, never any traffic
    assert served(before_fix, "2.0.0") == 0 and served(before_fix, "1.0.0") > 0
    assert failed(answers) == 0, figures
    assert done["traffic"]["tracks"].keys() == {"stable"}
    assert served(answers, version, after=answers[-1][0] - 1) > 0  # users on the fixed one


def test_a_container_restarted_while_the_store_is_away_starts_from_its_cache(
    env, store, tmp_path, figures
):
    """v1 pins its bundle (`model.digest`); the store goes away; one of v1's two
    predictor containers is SIGKILLed (the OOM killer's way). Its pod keeps
    the bundle cache (an emptyDir), so the restarted container starts from it
    and is Ready again while the store is still away; users stay on v1."""
    bundle = make_bundle(tmp_path, "1.0.0", fitted(X, Y), X)
    uri = store.add("1.0.0", bundle)
    body = manifest("1.0.0", uri, plan())
    raw = (Path(bundle) / "model.json").read_bytes()
    body["spec"]["model"]["digest"] = "sha256:" + hashlib.sha256(raw).hexdigest()
    body["spec"]["predictor"]["replicas"] = 2
    env.apply(body)
    st = env.wait_status(lambda s: s.get("phase") == "Succeeded", "v1 from the store", 150)
    core = client.CoreV1Api(env.api)
    selector = f"modeldeploy.io/revision={st['stable']['revision']}"
    pod = running_pods(env.api, env.namespace, selector)[0]

    def container() -> Any:
        return core.read_namespaced_pod(pod, env.namespace).status.container_statuses[0]

    with router(env) as url, Load(url, load_rows(), rate=RATE) as load:
        wait_for(lambda: served(load.snapshot(), "1.0.0") > 20, 30, message="v1 answers")
        store.down()
        killed_at = time.monotonic()
        assert kill_pod_processes(env.cluster, env.namespace, pod) > 0
        wait_for(lambda: container().restart_count >= 1, 60, message="the container restarted")
        wait_for(lambda: container().ready, 60, message="the restarted container Ready")
        ready_s = round(time.monotonic() - killed_at, 1)
        seen = len(load.snapshot())
        wait_for(lambda: len(load.snapshot()) > seen + 50, 30, message="answers after it")
    answers = load.snapshot()
    figures.update(
        rate=RATE, requests=len(answers), failed=failed(answers), kill_to_ready_s=ready_s
    )
    assert not store.serving(), "the store stayed away throughout"
    # Requests in flight on the killed container can fail; the router retries
    # a refused connect on the other pod (counted, not asserted zero).
    assert failed(answers) <= 16, figures
    assert served(answers, "1.0.0", after=answers[-1][0] - 1) > 0
