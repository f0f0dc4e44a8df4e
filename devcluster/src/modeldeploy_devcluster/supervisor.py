"""The long-lived process behind ``modeldeploy-devcluster up``.

It starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
Prometheus and the node agent in that order, waits for each to be healthy,
records everything in ``state.json`` and then stays around until SIGTERM, when
it stops every process group in reverse order. ``up`` runs it detached;
``up --foreground`` and the pytest plugin's in-process use run it directly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from modeldeploy_devcluster import binaries, components, kubeconfig, pki, procs, prometheus_config
from modeldeploy_devcluster.node import images
from modeldeploy_devcluster.state import DEFAULT_NODE, Layout, State, pid_alive

log = logging.getLogger("modeldeploy_devcluster.supervisor")

CLIENTS = {
    "admin": ("modeldeploy-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "prometheus": ("modeldeploy-prometheus", "system:masters"),
}
STOP_ORDER = (
    "node",
    "prometheus",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
)


NOT_READY_TAINT = "node.kubernetes.io/not-ready"
# Components a chaos test may stop and start again (Cluster.stop_component).
# The node agent is not among them: its pods' processes would outlive it.
RESTARTABLE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "prometheus")


class StartupError(RuntimeError):
    pass


class Supervisor:
    def __init__(
        self, layout: Layout, scrape_interval: str, node_name: str, owner_pid: int = 0
    ) -> None:
        self.layout = layout
        self.owner_pid = owner_pid  # stop when this process is gone (a killed test run)
        self.scrape_interval = scrape_interval
        self.node_name = node_name
        self.procs: dict[str, subprocess.Popen] = {}
        # How each component was started and how its health is checked, to start it again.
        self.argvs: dict[str, tuple[list[str], dict[str, str] | None]] = {}
        self.checks: dict[str, Callable[[], bool]] = {}
        self.held: set[str] = set()
        self.state = State(supervisor_pid=os.getpid(), node=node_name)
        self.stopping = threading.Event()

    # -- start -----------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        proc = procs.spawn(argv, self.layout.log(name), env=env)
        self.argvs[name] = (list(argv), env)
        self.procs[name] = proc
        self.state.components[name] = proc.pid
        self.state.save(self.layout)

    def _wait(self, name: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` until true; fail fast with the log tail if ``name`` dies."""
        self.checks.setdefault(name, check)  # the first check is its health
        start = time.monotonic()
        proc = self.procs[name]
        last = ""
        while time.monotonic() - start < timeout:
            if self.stopping.is_set():
                raise StartupError("interrupted")
            if proc.poll() is not None:
                path = self.layout.log(name)
                raise StartupError(
                    f"{name} exited with code {proc.returncode} while starting; "
                    f"last lines of {path}:\n{procs.log_tail(path)}"
                )
            try:
                if check():
                    if self.state.phase != "ready":  # not for a start on request
                        self.state.timings[name] = round(time.monotonic() - self.t0, 2)
                    return
            except Exception as exc:  # not up yet
                last = repr(exc)
            time.sleep(0.1)
        raise StartupError(
            f"{name} not ready after {timeout:.0f}s ({last}); last lines of "
            f"{self.layout.log(name)}:\n{procs.log_tail(self.layout.log(name))}"
        )

    def start(self) -> None:
        self.t0 = time.monotonic()
        layout = self.layout
        bins = binaries.find()
        for d in (layout.logs, layout.pods, layout.etcd_data, layout.prometheus_data):
            d.mkdir(parents=True, exist_ok=True)
        clients = dict(CLIENTS)
        clients["node"] = (f"system:node:{self.node_name}", "system:nodes")
        certs = pki.generate(layout.pki, clients)
        ports = components.Ports(*(procs.free_port() for _ in range(6)))
        server = f"https://127.0.0.1:{ports.apiserver}"
        self.state.server = server
        self.state.kubeconfig = str(layout.kubeconfig)
        self.state.prometheus_url = f"http://127.0.0.1:{ports.prometheus}"

        def client_kubeconfig(name: str, path: Path) -> Path:
            pair = certs.clients[name]
            return kubeconfig.write(
                path,
                kubeconfig.build(
                    server, certs.ca.cert, user=name, client_cert=pair.cert, client_key=pair.key
                ),
            )

        client_kubeconfig("admin", layout.kubeconfig)
        kc = {
            n: client_kubeconfig(n, layout.component_kubeconfig(n)) for n in clients if n != "admin"
        }
        if not layout.images.exists():
            images.write_file(layout.images, images.load())

        admin = certs.clients["admin"]
        context = ssl.create_default_context(cafile=str(certs.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        tls = httpx.Client(verify=context, timeout=2)
        insecure = httpx.Client(verify=False, timeout=2)  # components' self-signed health ports

        self._spawn("etcd", components.etcd(bins, layout, ports))
        self._wait(
            "etcd",
            lambda: (
                insecure.get(f"http://127.0.0.1:{ports.etcd_client}/health").json()["health"]
                == "true"
            ),
            30,
        )
        self._spawn("kube-apiserver", components.apiserver(bins, layout, ports, certs))
        self._wait("kube-apiserver", lambda: tls.get(f"{server}/readyz").status_code == 200, 90)

        self._spawn(
            "kube-controller-manager",
            components.controller_manager(bins, layout, ports, certs, kc["controller-manager"]),
        )
        self._spawn("kube-scheduler", components.scheduler(bins, layout, ports, kc["scheduler"]))
        prom_cfg = layout.prometheus_data.parent / "prometheus.yml"
        prom = certs.clients["prometheus"]
        prom_cfg.write_text(
            yaml.safe_dump(
                prometheus_config.render(
                    server, certs.ca.cert, prom.cert, prom.key, self.scrape_interval
                ),
                sort_keys=False,
            )
        )
        self._spawn("prometheus", components.prometheus(bins, layout, ports, prom_cfg))
        self._spawn(
            "node",
            [
                sys.executable,
                "-m",
                "modeldeploy_devcluster.node.agent",
                f"--dir={layout.root}",
                f"--kubeconfig={kc['node']}",
                f"--node-name={self.node_name}",
            ],
        )
        self._wait(
            "kube-controller-manager",
            lambda: (
                insecure.get(f"https://127.0.0.1:{ports.controller_manager}/healthz").status_code
                == 200
            ),
            60,
        )
        self._wait(
            "kube-scheduler",
            lambda: insecure.get(f"https://127.0.0.1:{ports.scheduler}/healthz").status_code == 200,
            60,
        )
        self._wait(
            "prometheus",
            lambda: insecure.get(f"{self.state.prometheus_url}/-/ready").status_code == 200,
            60,
        )
        node_url = f"{server}/api/v1/nodes/{self.node_name}"

        def node_ready() -> bool:
            node = tls.get(node_url).raise_for_status().json()
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
            taints = node.get("spec", {}).get("taints") or []
            if ready and any(t["key"] == NOT_READY_TAINT for t in taints):
                # Admission puts this taint on every new Node and the node-lifecycle
                # controller (not run here: one node that never goes away) would
                # lift it once the node is Ready; a node may not lift its own.
                kept = [t for t in taints if t["key"] != NOT_READY_TAINT]
                tls.patch(
                    node_url,
                    json={"spec": {"taints": kept or None}},
                    headers={"Content-Type": "application/merge-patch+json"},
                ).raise_for_status()
                return False
            return ready

        self._wait("node", node_ready, 60)
        # Pods can only be created once the namespace's default ServiceAccount exists.
        sa_url = f"{server}/api/v1/namespaces/default/serviceaccounts/default"
        self._wait("kube-controller-manager", lambda: tls.get(sa_url).status_code == 200, 60)
        self.state.timings["ready"] = round(time.monotonic() - self.t0, 2)
        self.state.phase = "ready"
        self.state.save(layout)
        log.info("cluster ready in %.1fs: %s", time.monotonic() - self.t0, server)

    # -- run / stop ------------------------------------------------------------

    def watch(self) -> None:
        """Report components that die after startup (status shows them)."""
        reported: set[str] = set()
        while not self.stopping.wait(0.2):
            if self.owner_pid and not pid_alive(self.owner_pid):
                log.warning("owner process %d is gone: stopping the cluster", self.owner_pid)
                return
            self._serve_requests(reported)
            for name, proc in self.procs.items():
                if name in self.held:
                    continue
                if name not in reported and proc.poll() is not None:
                    reported.add(name)
                    msg = f"{name} exited with code {proc.returncode}"
                    log.error("%s; log tail:\n%s", msg, procs.log_tail(self.layout.log(name)))
                    self.state.error = "; ".join(filter(None, [self.state.error, msg]))
                    self.state.save(self.layout)

    # -- fault injection -------------------------------------------------------

    def _serve_requests(self, reported: set[str]) -> None:
        """Stop or start components as asked through files in ``layout.control``.

        What a stop breaks is exactly that process: its clients see refused
        connections (SIGKILL, no goodbye) or a graceful shutdown (SIGTERM);
        everything else keeps running. A start reuses the same command line,
        ports, certificates and data (unless the stop wiped Prometheus' data).
        """
        control = self.layout.control
        if not control.is_dir():
            return
        for request in sorted(control.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                body = json.loads(request.read_text())
            except (OSError, ValueError):
                continue  # being written; next round
            request.unlink(missing_ok=True)
            name, action = body.get("component", ""), body.get("action", "")
            try:
                if name not in RESTARTABLE:
                    raise ValueError(f"{name!r} cannot be stopped on request ({RESTARTABLE})")
                if action == "stop":
                    self._stop_component(name, body.get("signal", "SIGKILL"), body.get("wipe"))
                elif action == "start":
                    self._start_component(name)
                    reported.discard(name)
                else:
                    raise ValueError(f"unknown action {action!r}")
                error = ""
            except Exception as exc:
                log.error("%s %s failed: %s", action, name, exc)
                error = f"{action} {name}: {exc}"
            self.state.control = {"id": str(body.get("id", "")), "error": error}
            self.state.held = sorted(self.held)
            self.state.save(self.layout)

    def _stop_component(self, name: str, sig_name: str, wipe: bool | None) -> None:
        if wipe and name != "prometheus":
            raise ValueError("only Prometheus' data can be wiped")
        proc = self.procs[name]
        self.held.add(name)
        procs.signal_group(proc.pid, signal.Signals[sig_name])
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            procs.stop(proc, grace=0)
        if wipe:
            shutil.rmtree(self.layout.prometheus_data, ignore_errors=True)
            self.layout.prometheus_data.mkdir(parents=True)
        log.warning("%s stopped on request (%s%s)", name, sig_name, ", data wiped" if wipe else "")

    def _start_component(self, name: str) -> None:
        if name not in self.held and self.procs[name].poll() is None:
            raise ValueError(f"{name} is running; stop it first")
        argv, env = self.argvs[name]
        started = time.monotonic()
        self._spawn(name, argv, env)
        self._wait(name, self.checks[name], 90)
        self.held.discard(name)
        self.state.restarts[name] = self.state.restarts.get(name, 0) + 1
        log.warning("%s started again, healthy after %.1fs", name, time.monotonic() - started)

    def stop(self) -> None:
        self.state.phase = "stopping"
        self.state.save(self.layout)
        for name in STOP_ORDER:
            proc = self.procs.get(name)
            if proc is not None:
                # The node needs time to stop its pods' processes gracefully.
                procs.stop(proc, grace=40 if name == "node" else 10)
        # Anything the node left behind (it was SIGKILLed, say).
        for pgid_file in self.layout.pods.glob("*/*.pgid"):
            with contextlib.suppress(OSError, ValueError):
                procs.kill_group(int(pgid_file.read_text()), grace=2)
        self.state.phase = "stopped"
        self.state.save(self.layout)


def run(
    layout: Layout, scrape_interval: str, node_name: str = DEFAULT_NODE, owner_pid: int = 0
) -> int:
    """Start everything, serve until SIGTERM/SIGINT (or the owner's exit), stop everything."""
    sup = Supervisor(layout, scrape_interval, node_name, owner_pid)

    def on_signal(signum, frame):
        sup.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sup.start()
    except Exception as exc:
        log.error("startup failed: %s", exc)
        sup.state.phase = "failed"
        sup.state.error = str(exc)
        sup.state.save(layout)
        sup.stop()
        sup.state.phase = "failed"
        sup.state.save(layout)
        return 1
    sup.watch()
    sup.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--scrape-interval", default="2s")
    parser.add_argument("--node-name", default=DEFAULT_NODE)
    parser.add_argument("--owner-pid", type=int, default=0, help="stop when this pid exits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health poll otherwise
    return run(Layout(args.dir), args.scrape_interval, args.node_name, args.owner_pid)


if __name__ == "__main__":
    sys.exit(main())
