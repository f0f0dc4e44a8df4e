"""`modeldeploy-router`: the command line (static mode and Kubernetes mode)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import uvloop

from modeldeploy_router import proxy, routing, server, static
from modeldeploy_router.settings import DEFAULTS, Settings

log = logging.getLogger("modeldeploy_router")

DESCRIPTION = """\
Split traffic between the stable and canary tracks of a model and mirror a
share of it to a shadow track, comparing the shadow's predictions with the
primary's. Static mode takes the backends from flags; Kubernetes mode (--kube)
reads weights from the ModelDeployment's status.traffic and endpoints from the
track Services' EndpointSlices.
"""

EPILOG = """\
examples:
  modeldeploy-router --port 8080 --backend stable=http://127.0.0.1:9001 \\
      --backend canary=http://127.0.0.1:9002 --weight 10
  modeldeploy-router --port 8080 --backend stable=http://127.0.0.1:9001 \\
      --shadow http://127.0.0.1:9003 --mirror-percent 100
  modeldeploy-router --port 8080 --kube --namespace ns --model-deployment fraud
"""


def _percent(what: str):
    def parse(value: str) -> float:
        try:
            return routing.parse_weight(value, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modeldeploy-router",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, required=True, help="port to listen on")
    p.add_argument(
        "--model",
        default="",
        help="model label for metrics (default: from the "
        "ModelDeployment in --kube mode, else empty)",
    )
    static_group = p.add_argument_group("static mode")
    static_group.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="TRACK=URL",
        help="stable=URL or canary=URL; repeat a track for several endpoints",
    )
    static_group.add_argument(
        "--weight",
        type=_percent("--weight"),
        default=0.0,
        help="canary share of primary traffic, 0-100 (default 0)",
    )
    static_group.add_argument(
        "--shadow", action="append", default=[], metavar="URL", help="shadow endpoint; repeatable"
    )
    static_group.add_argument(
        "--mirror-percent",
        type=_percent("--mirror-percent"),
        default=None,
        help="share of requests copied to the shadow, 0-100 (default 100 with --shadow)",
    )
    static_group.add_argument(
        "--track-version",
        action="append",
        default=[],
        metavar="TRACK=VERSION",
        help="version label for a track's metrics",
    )
    kube_group = p.add_argument_group("Kubernetes mode")
    kube_group.add_argument(
        "--kube", action="store_true", help="read routing and endpoints from the Kubernetes API"
    )
    kube_group.add_argument("--namespace", help="namespace of the ModelDeployment")
    kube_group.add_argument("--model-deployment", help="name of the ModelDeployment")
    tuning = p.add_argument_group("behaviour")
    d = DEFAULTS
    tuning.add_argument(
        "--sticky-header",
        default=d.sticky_header,
        help="header whose value pins a request to a track "
        "(consistent hash; '' disables; default %(default)s)",
    )
    tuning.add_argument(
        "--allow-track-override",
        action="store_true",
        help="honour x-modeldeploy-track: stable|canary|shadow (for testers)",
    )
    seconds = (
        ("--connect-timeout", d.connect_timeout, "upstream connect timeout"),
        ("--timeout", d.timeout, "upstream timeout: for the answer's head, and for each read "
         "of its body"),
        ("--shadow-timeout", d.shadow_timeout, "timeout of a whole shadow exchange"),
        ("--keep-alive", d.keep_alive, "how long an idle client connection is kept open"),
        ("--head-timeout", d.head_timeout, "how long a request line and headers may take to "
         "arrive once a connection waits for them (408 after)"),
        ("--drain-seconds", d.drain_seconds, "on SIGTERM, how long requests in flight may "
         "take to finish"),
    )  # fmt: skip
    for flag, default, text in seconds:
        tuning.add_argument(
            flag, type=_positive, default=default, help=f"{text}, seconds (default %(default)s)"
        )
    tuning.add_argument(
        "--shutdown-delay",
        type=_non_negative,
        default=d.shutdown_delay,
        help="on SIGTERM, keep accepting connections this many seconds (answering each "
        "with connection: close, /readyz 503) before draining, while the pod's endpoint "
        "leaves the Service (default %(default)s)",
    )
    counts = (
        ("--mirror-queue", d.mirror_queue, "copies waiting for the shadow before new ones "
         "are dropped"),
        ("--mirror-queue-bytes", d.mirror_queue_bytes, "bytes of bodies (request and primary "
         "answer) of the copies waiting for or at the shadow before new ones are dropped; "
         "also the largest copy kept"),
        ("--mirror-concurrency", d.mirror_concurrency, "shadow requests in flight at most"),
        ("--max-body-bytes", d.max_body_bytes, "largest request body accepted (413 above)"),
        ("--max-head-bytes", d.max_head_bytes, "largest request line and headers (431 above)"),
    )  # fmt: skip
    for flag, default, text in counts:
        tuning.add_argument(
            flag, type=_positive_int, default=default, help=f"{text} (default %(default)s)"
        )
    tuning.add_argument(
        "--mirror-in-process",
        action="store_true",
        help="run the shadow path (shadow call, comparison, its metrics) on the "
        "router's own event loop instead of a child process; costs the primary path CPU",
    )
    tuning.add_argument(
        "--regression-tolerance",
        type=float,
        default=d.regression_tolerance,
        help="relative difference under which regressor rows agree (default %(default)s)",
    )
    tuning.add_argument(
        "--seed", type=int, default=None, help="seed the split's random draws (tests, benchmarks)"
    )
    tuning.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return p


def make_source(args: argparse.Namespace, parser: argparse.ArgumentParser) -> proxy.TableSource:
    if args.kube:
        if args.backend or args.shadow:
            parser.error("--kube takes routing from the API: drop --backend/--shadow")
        if not args.namespace or not args.model_deployment:
            parser.error("--kube needs --namespace and --model-deployment")
        from modeldeploy_router import kube  # only Kubernetes mode needs the client

        return kube.KubeSource(args.namespace, args.model_deployment, args.model)
    if not args.backend:
        parser.error("give --backend stable=URL (static mode) or --kube")
    try:
        backends = static.parse_backends(args.backend)
        shadows = [static.check_url(u, "--shadow") for u in args.shadow]
        versions = static.parse_versions(args.track_version)
    except ValueError as exc:
        parser.error(str(exc))
    mirror = args.mirror_percent
    if mirror is None:
        mirror = 100.0 if shadows else 0.0
    elif mirror > 0 and not shadows:
        parser.error("--mirror-percent needs --shadow URL")
    if args.weight > 0 and routing.CANARY not in backends:
        parser.error("--weight needs --backend canary=URL")
    table = static.build_table(args.model, backends, shadows, args.weight, mirror, versions)
    return static.StaticSource(table)


def settings_from(args: argparse.Namespace) -> Settings:
    """One Settings from the flags (each flag's dest is a Settings field)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    return Settings(**{k: v for k, v in vars(args).items() if k in names})


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    source = make_source(args, parser)
    router = proxy.Router(settings_from(args), source)
    return uvloop.run(server.serve(router, args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
