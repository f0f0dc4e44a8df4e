"""`modeldeploy-router`: the command line (static mode and Kubernetes mode)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

import uvloop

from modeldeploy_router import frontend, proxy, routing, static

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
    tuning.add_argument(
        "--sticky-header",
        default="x-modeldeploy-key",
        help="header whose value pins a request to a track "
        "(consistent hash; '' disables; default %(default)s)",
    )
    tuning.add_argument(
        "--allow-track-override",
        action="store_true",
        help="honour x-modeldeploy-track: stable|canary|shadow (for testers)",
    )
    tuning.add_argument(
        "--connect-timeout",
        type=_positive,
        default=1.0,
        help="upstream connect timeout, seconds (default %(default)s)",
    )
    tuning.add_argument(
        "--timeout",
        type=_positive,
        default=30.0,
        help="upstream total timeout, seconds (default %(default)s)",
    )
    tuning.add_argument(
        "--shadow-timeout",
        type=_positive,
        default=10.0,
        help="shadow request timeout, seconds (default %(default)s)",
    )
    tuning.add_argument(
        "--mirror-queue",
        type=int,
        default=1000,
        help="copies waiting for the shadow before new ones are dropped",
    )
    tuning.add_argument(
        "--mirror-concurrency", type=int, default=32, help="shadow requests in flight at most"
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
        default=0.01,
        help="relative difference under which regressor rows agree",
    )
    tuning.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="largest request body accepted (413 above)",
    )
    tuning.add_argument(
        "--keep-alive",
        type=_positive,
        default=frontend.KEEP_ALIVE_SECONDS,
        help="seconds an idle client connection is kept open (default %(default)s)",
    )
    tuning.add_argument(
        "--drain-seconds",
        type=_positive,
        default=10.0,
        help="on SIGTERM, how long requests in flight may take to finish (default %(default)s)",
    )
    tuning.add_argument(
        "--shutdown-delay",
        type=_non_negative,
        default=0.0,
        help="on SIGTERM, keep accepting connections this many seconds (answering each "
        "with connection: close, /readyz 503) before draining, while the pod's endpoint "
        "leaves the Service (default %(default)s)",
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    source = make_source(args, parser)
    settings = proxy.Settings(
        model=args.model,
        sticky_header=args.sticky_header,
        allow_track_override=args.allow_track_override,
        connect_timeout=args.connect_timeout,
        timeout=args.timeout,
        shadow_timeout=args.shadow_timeout,
        mirror_queue=args.mirror_queue,
        mirror_concurrency=args.mirror_concurrency,
        rel_tolerance=args.regression_tolerance,
        mirror_in_process=args.mirror_in_process,
        max_body_bytes=args.max_body_bytes,
        seed=args.seed,
    )
    router = proxy.Router(settings, source)
    timing = ServeTiming(args.keep_alive, args.drain_seconds, args.shutdown_delay)
    return uvloop.run(serve(router, args.host, args.port, timing))


@dataclass(frozen=True)
class ServeTiming:
    keep_alive: float  # --keep-alive: idle client connections, seconds
    grace: float  # --drain-seconds
    delay: float  # --shutdown-delay


async def serve(router: proxy.Router, host: str, port: int, timing: ServeTiming) -> int:
    """Start the router, serve until SIGTERM or SIGINT, then drain. Exit status 0
    after a clean drain, 1 when the port cannot be bound, 3 when start-up fails."""
    try:
        await router.start()
    except Exception:
        log.exception("router failed to start")
        await router.stop()
        return 3
    server = frontend.HttpServer(
        router.handle, max_body_bytes=router.settings.max_body_bytes, keep_alive=timing.keep_alive
    )
    try:
        await server.listen(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        await router.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on http://%s:%d", host, port)
    await stop.wait()
    router.draining = True
    if timing.delay > 0:
        log.info("shutting down: still accepting for %gs (--shutdown-delay)", timing.delay)
    log.info("shutting down: finishing requests in flight (at most %gs)", timing.grace)
    await server.drain(timing.grace, timing.delay)
    await router.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
