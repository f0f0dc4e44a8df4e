"""``modeldeploy-devcluster``: the local cluster from the command line.

up          start etcd, the Kubernetes control plane, Prometheus and the
            process-backed node (detached; prints how to use it)
down        stop everything and remove the state directory
status      what runs, where, and whether it is healthy
kubeconfig  print the admin kubeconfig's path (``export KUBECONFIG=$(...)``)
logs POD    print a pod's container logs
forward     reach a Service from the host (no kube-proxy here)
smoke       up (or reuse), deploy a 2-replica server, check it, tear down
stop-component / start-component NAME
            fault injection: stop etcd, kube-apiserver, kube-controller-manager,
            kube-scheduler or prometheus, and start it again
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from modeldeploy_devcluster import binaries, launcher
from modeldeploy_devcluster.cluster import Cluster, ControlError, NoSuchPod
from modeldeploy_devcluster.state import DEFAULT_NODE, Layout, State, default_dir, pid_alive
from modeldeploy_devcluster.supervisor import RESTARTABLE


def _dir(args: argparse.Namespace) -> Path:
    return Path(args.dir).resolve() if args.dir else default_dir()


def cmd_up(args: argparse.Namespace) -> int:
    root = _dir(args)
    images_file = Path(args.images) if args.images else None
    if args.foreground:
        return launcher.foreground(root, args.scrape_interval, images_file, args.node_name)
    start = time.monotonic()
    cluster = launcher.up(root, args.scrape_interval, images_file, args.timeout, args.node_name)
    took = time.monotonic() - start
    print(f"cluster ready in {took:.1f}s")
    print(f"  API server   {cluster.server}")
    print(f"  Prometheus   {cluster.prometheus_url}")
    print(f"  kubeconfig   {cluster.kubeconfig}")
    print(f"  state dir    {root}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    print(f"export MODELDEPLOY_KUBECONFIG={cluster.kubeconfig}")
    print(f"export MODELDEPLOY_PROMETHEUS_URL={cluster.prometheus_url}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    root = _dir(args)
    was = launcher.down(root, keep=args.keep)
    print("cluster stopped" if was else f"no cluster was running in {root} (leftovers cleaned)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    root = _dir(args)
    state = State.load(Layout(root))
    if state is None:
        print(f"no cluster in {root}")
        return 3
    alive = pid_alive(state.supervisor_pid)
    report = {
        "dir": str(root),
        "phase": state.phase if alive else f"{state.phase} (supervisor gone)",
        "server": state.server,
        "prometheus_url": state.prometheus_url,
        "kubeconfig": state.kubeconfig,
        "components": {
            name: {"pid": pid, "running": pid_alive(pid)} for name, pid in state.components.items()
        },
        "seconds_to_ready": state.timings,
        "error": state.error,
    }
    print(json.dumps(report, indent=2))
    healthy = (
        alive and state.phase == "ready" and all(pid_alive(p) for p in state.components.values())
    )
    return 0 if healthy else 1


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    layout = Layout(_dir(args))
    if not layout.kubeconfig.exists():
        print(f"no cluster in {layout.root} (run `modeldeploy-devcluster up`)", file=sys.stderr)
        return 3
    print(layout.kubeconfig)
    return 0


def cmd_component(args: argparse.Namespace) -> int:
    try:
        cluster = Cluster.from_dir(_dir(args))
        if args.action == "stop":
            cluster.stop_component(args.name, signal=args.signal, wipe_data=args.wipe_data)
        else:
            cluster.start_component(args.name)
    except (ControlError, FileNotFoundError) as exc:
        print(f"modeldeploy-devcluster: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name} {'stopped' if args.action == 'stop' else 'started and healthy'}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    try:
        print(Cluster.from_dir(_dir(args)).logs(args.pod, args.namespace, args.container), end="")
    except (NoSuchPod, FileNotFoundError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    from modeldeploy_devcluster import forward

    kind, _, name = args.target.partition("/")
    if kind not in ("svc", "service") or not name:
        print(f"expected svc/NAME, got {args.target!r}", file=sys.stderr)
        return 2
    cluster = Cluster.from_dir(_dir(args))
    with forward.forward(
        cluster.api_client(), name, args.namespace, args.port, args.local_port
    ) as url:
        print(
            f"forwarding {url} -> svc/{name}:{args.port} in {args.namespace} (Ctrl-C stops)",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from modeldeploy_devcluster import smoke

    return smoke.run(_dir(args), args.scrape_interval)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modeldeploy-devcluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--dir",
        default=os.environ.get("MODELDEPLOY_DEVCLUSTER_DIR"),
        help=f"state directory (default {default_dir()}; env MODELDEPLOY_DEVCLUSTER_DIR)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the cluster (detached)")
    up.add_argument(
        "--scrape-interval", default="2s", help="Prometheus scrape interval (default 2s)"
    )
    up.add_argument("--images", help="YAML/JSON file mapping image repositories to commands")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for ready")
    up.add_argument("--node-name", default=DEFAULT_NODE)
    up.add_argument("--foreground", action="store_true", help="run attached; Ctrl-C stops")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the cluster and remove its state")
    down.add_argument("--keep", action="store_true", help="keep the state directory (logs)")
    down.set_defaults(func=cmd_down)

    sub.add_parser("status", help="components, URLs and health (JSON)").set_defaults(
        func=cmd_status
    )
    sub.add_parser("kubeconfig", help="print the admin kubeconfig path").set_defaults(
        func=cmd_kubeconfig
    )

    logs = sub.add_parser("logs", help="print a pod's logs")
    logs.add_argument("pod")
    logs.add_argument("-n", "--namespace", default="default")
    logs.add_argument("-c", "--container")
    logs.set_defaults(func=cmd_logs)

    fwd = sub.add_parser("forward", help="listen locally and proxy to a Service's ready endpoints")
    fwd.add_argument("target", help="svc/NAME")
    fwd.add_argument("port", type=int, help="the Service port")
    fwd.add_argument("-n", "--namespace", default="default")
    fwd.add_argument("--local-port", type=int, default=0, help="default: a free port")
    fwd.set_defaults(func=cmd_forward)

    for action in ("stop", "start"):
        comp = sub.add_parser(
            f"{action}-component", help=f"fault injection: {action} a control-plane component"
        )
        comp.add_argument("name", choices=RESTARTABLE)
        if action == "stop":
            comp.add_argument("--signal", default="SIGKILL", choices=["SIGKILL", "SIGTERM"])
            comp.add_argument(
                "--wipe-data", action="store_true", help="prometheus only: delete its TSDB"
            )
        comp.set_defaults(func=cmd_component, action=action)

    smoke = sub.add_parser("smoke", help="end-to-end check of the local cluster")
    smoke.add_argument("--scrape-interval", default="2s")
    smoke.set_defaults(func=cmd_smoke)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except binaries.BinariesMissing as exc:
        print(f"modeldeploy-devcluster: {exc}", file=sys.stderr)
        return 2
    except launcher.ClusterStartError as exc:
        print(f"modeldeploy-devcluster: the cluster did not start:\n{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
