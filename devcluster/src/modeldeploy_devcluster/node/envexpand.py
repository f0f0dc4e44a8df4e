"""Kubernetes' ``$(VAR)`` expansion for env values, command and args (pure).

Rules as the kubelet applies them: ``$(NAME)`` becomes the variable's value
when defined and stays literally otherwise; ``$$`` is an escaped ``$``; a
``$`` followed by anything else is kept as is.
"""

from __future__ import annotations

from collections.abc import Mapping


def expand(value: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = value[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            close = value.find(")", i + 2)
            if close == -1:  # unterminated: keep the rest literally
                out.append(value[i:])
                break
            name = value[i + 2 : close]
            out.append(env[name] if name in env else value[i : close + 1])
            i = close + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def expand_all(values: list[str], env: Mapping[str, str]) -> list[str]:
    return [expand(v, env) for v in values]


def build_env(items: list[tuple[str, str | None, str | None]]) -> dict[str, str]:
    """Resolve a container's env in order.

    ``items`` are (name, literal value or None, already-resolved valueFrom or
    None). A literal may reference variables defined *before* it, as in
    Kubernetes; resolved valueFrom values are taken verbatim.
    """
    env: dict[str, str] = {}
    for name, literal, resolved in items:
        if resolved is not None:
            env[name] = resolved
        else:
            env[name] = expand(literal or "", env)
    return env
