"""``modeldeploy-predictor``: ``bundle`` makes a model bundle, ``serve`` serves one.

``serve`` fetches and verifies the bundle before the server starts, so a bad
bundle fails the process at once with a readable message (exit code 2) instead
of leaving a pod that is live but never ready.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

from . import config, validation_set
from .bundle import BundleError, bundle_from_files
from .tables import TableError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldeploy-predictor", description="scikit-learn model bundles and their server"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="make a model bundle from an estimator and training features")
    b.add_argument("--model", required=True, type=Path, help="fitted estimator (.joblib or .skops)")
    b.add_argument(
        "--reference",
        required=True,
        type=Path,
        help="training features, CSV or Parquet (header = names)",
    )
    b.add_argument("--name", required=True, help="model name")
    b.add_argument("--version", required=True, help="model version")
    b.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    b.add_argument(
        "--categorical",
        type=_names,
        default=[],
        metavar="COL,COL",
        help="columns to treat as categorical (CSV: read as strings), overriding inference",
    )
    b.add_argument(
        "--boolean",
        type=_names,
        default=[],
        metavar="COL,COL",
        help="columns to treat as boolean (true/false, 1/0, yes/no), overriding inference",
    )
    b.add_argument(
        "--validation",
        type=Path,
        help="validation rows, CSV or Parquet, replayed before traffic (strategy.validation)",
    )
    b.add_argument("--label-column", help="column of --validation holding the true labels")
    s = sub.add_parser("serve", help="serve a bundle over HTTP (OIP v2, KServe v1, /predict)")
    config.add_arguments(s)
    return parser


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bundle" and args.label_column and args.validation is None:
        parser.error("--label-column needs --validation")
    if args.command == "bundle":
        try:
            out = bundle_from_files(
                args.model,
                args.reference,
                args.name,
                args.version,
                args.out,
                categorical=args.categorical,
                boolean=args.boolean,
            )
            if args.validation is not None:
                validation_set.attach(out, args.validation, args.label_column)
        except (BundleError, TableError) as exc:
            print(f"modeldeploy-predictor bundle: {exc}", file=sys.stderr)
            return 2
        print(out)
        return 0
    return serve(config.from_namespace(args))


def serve(settings: config.Settings) -> int:
    import uvicorn

    from .dataplane import DataPlane
    from .model import SklearnModel
    from .server.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not settings.bundle:
        print(
            "modeldeploy-predictor serve: --bundle (or MODELDEPLOY_BUNDLE) is required",
            file=sys.stderr,
        )
        return 2
    try:
        model = SklearnModel.load(
            settings.bundle,
            cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
            digest=settings.digest,
            allow_version_mismatch=settings.allow_version_mismatch,
            fetch_timeout=settings.fetch_timeout,
        )
    except BundleError as exc:
        print(f"modeldeploy-predictor serve: {exc}", file=sys.stderr)
        return 2
    app = create_app(DataPlane(model, settings))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.graceful_timeout),  # whole seconds
        server_header=False,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
