"""Image -> command map of the process-backed node (pure, plus file I/O helpers).

There is no container runtime: an image's *repository* (tag and digest are
ignored) names a local entrypoint instead. A container's ``command`` replaces
the entrypoint and ``args`` replace the default arguments, as in Kubernetes.

Map entries are a string (split like a shell would), a list, or
``{"entrypoint": [...], "args": [...]}``. Sources, later ones win: the
defaults below, a YAML/JSON file (``--images``), the env variable
``MODELDEPLOY_DEVCLUSTER_IMAGES`` (a file path or inline JSON/YAML mapping).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

import yaml

ENV_VAR = "MODELDEPLOY_DEVCLUSTER_IMAGES"

DEFAULT_IMAGES: dict[str, dict[str, list[str]]] = {
    "ghcr.io/modeldeploy/predictor": {"entrypoint": ["modeldeploy-predictor"], "args": []},
    "ghcr.io/modeldeploy/operator": {"entrypoint": ["modeldeploy-operator"], "args": []},
}


class ImageError(ValueError):
    """The image has no local command (reported as ErrImagePull)."""


def repository(image: str) -> str:
    """``ghcr.io/x/y:1.2@sha256:..`` -> ``ghcr.io/x/y`` (a registry port is kept)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return name


def _normalise(repo: str, value: object) -> dict[str, list[str]]:
    if isinstance(value, str):
        return {"entrypoint": shlex.split(value), "args": []}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return {"entrypoint": list(value), "args": []}
    if isinstance(value, dict) and set(value) <= {"entrypoint", "args"}:
        entry = value.get("entrypoint", [])
        args = value.get("args", [])
        if isinstance(entry, str):
            entry = shlex.split(entry)
        if isinstance(args, str):
            args = shlex.split(args)
        return {"entrypoint": list(entry), "args": list(args)}
    raise ValueError(
        f"image map entry {repo!r}: expected a string, a list of strings or "
        f"{{entrypoint, args}}, got {value!r}"
    )


def parse(mapping: object, source: str) -> dict[str, dict[str, list[str]]]:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ValueError(f"image map {source}: expected a mapping of repository -> command")
    return {repository(str(k)): _normalise(str(k), v) for k, v in mapping.items()}


def _read(text: str, source: str) -> dict[str, dict[str, list[str]]]:
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise ValueError(f"image map {source}: not YAML/JSON: {exc}") from exc
    return parse(data, source)


def load(
    file: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, dict[str, list[str]]]:
    """Defaults, then ``file``, then the env variable."""
    environ: Mapping[str, str] = os.environ if env is None else env
    merged = {k: dict(v) for k, v in DEFAULT_IMAGES.items()}
    if file is not None:
        merged.update(_read(Path(file).read_text(), str(file)))
    if value := environ.get(ENV_VAR, "").strip():
        if value[0] in "{[" or "\n" in value:
            merged.update(_read(value, ENV_VAR))
        else:
            merged.update(_read(Path(value).read_text(), f"{ENV_VAR}={value}"))
    return merged


def read_file(path: Path) -> dict[str, dict[str, list[str]]]:
    return _read(path.read_text(), str(path)) if path.exists() else {}


def write_file(path: Path, mapping: dict[str, dict[str, list[str]]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(mapping, sort_keys=True))
    os.replace(tmp, path)


def resolve(
    mapping: dict[str, dict[str, list[str]]],
    image: str,
    command: list[str] | None,
    args: list[str] | None,
) -> list[str]:
    """The argv (before ``$(VAR)`` expansion) of a container, Kubernetes-style."""
    entry = mapping.get(repository(image))
    if entry is None:
        known = ", ".join(sorted(mapping)) or "none"
        raise ImageError(
            f"image {image!r} is not in the devcluster image map (known repositories: {known}); "
            f"add it with --images FILE or {ENV_VAR}"
        )
    if command:
        argv = list(command) + list(args or [])
    else:
        argv = list(entry["entrypoint"]) + list(args if args is not None else entry["args"])
    if not argv:
        raise ImageError(f"image {image!r} maps to an empty command and the container sets none")
    return argv
