"""A container's environment: the kubelet's rules for env, envFrom and valueFrom.

``fieldRef`` supports the pod's name, namespace, uid, labels/annotations,
node name, service account, pod IP(s) and host IP; ConfigMap and Secret
references are read through the API (the Node authorizer allows that for
pods bound to this node). ``resourceFieldRef`` is not supported.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from modeldeploy_devcluster.node import envexpand

# Readers: (namespace, name) -> data dict, or None if the object does not exist.
Reader = Callable[[str, str], dict[str, str] | None]


class EnvError(ValueError):
    """A required reference cannot be resolved (reported as CreateContainerConfigError)."""


def base_env(pod_name: str) -> dict[str, str]:
    """What every container starts with: no host secrets, but the venv's console scripts."""
    venv_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")]),
        "HOME": os.environ.get("HOME", "/tmp"),
        "HOSTNAME": pod_name,
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("LANG", "LC_ALL", "TMPDIR", "TZ"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


def field_ref(pod: dict, path: str) -> str:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs") or []),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": ",".join(p["ip"] for p in status.get("hostIPs") or []),
    }
    if path in simple:
        return simple[path]
    if m := _SUBSCRIPT.match(path):
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise EnvError(f"fieldRef {path!r} is not supported by the devcluster node")


def _key_ref(ref: dict, kind: str, namespace: str, reader: Reader) -> str | None:
    data = reader(namespace, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise EnvError(f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise EnvError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
    return data[ref["key"]]


def container_env(
    pod: dict,
    container: dict,
    read_configmap: Reader,
    read_secret: Reader,
) -> dict[str, str]:
    """The container's own variables (without the base env), in Kubernetes order."""
    namespace = pod["metadata"]["namespace"]
    items: list[tuple[str, str | None, str | None]] = []
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if ref := source.get("configMapRef"):
            kind, data = "configmap", read_configmap(namespace, ref["name"])
        elif ref := source.get("secretRef"):
            kind, data = "secret", read_secret(namespace, ref["name"])
        else:
            continue
        if data is None and not ref.get("optional"):
            raise EnvError(f'{kind} "{ref["name"]}" not found')
        items.extend((prefix + k, None, v) for k, v in (data or {}).items())
    for var in container.get("env") or []:
        name, source = var["name"], var.get("valueFrom")
        if source is None:
            items.append((name, var.get("value", ""), None))
        elif "fieldRef" in source:
            items.append((name, None, field_ref(pod, source["fieldRef"]["fieldPath"])))
        elif "configMapKeyRef" in source:
            value = _key_ref(source["configMapKeyRef"], "configmap", namespace, read_configmap)
            if value is not None:
                items.append((name, None, value))
        elif "secretKeyRef" in source:
            value = _key_ref(source["secretKeyRef"], "secret", namespace, read_secret)
            if value is not None:
                items.append((name, None, value))
        else:
            raise EnvError(f"env {name}: valueFrom {sorted(source)} is not supported")
    return envexpand.build_env(items)


def decode_secret(data: dict[str, str] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (data or {}).items()}
