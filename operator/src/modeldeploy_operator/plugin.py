"""`kubectl modeldeploy`: status, history and manual commands for a ModelDeployment.

Commands never touch `spec` (Git stays the source of truth): they set the
`modeldeploy.io/command` annotation to `ACTION:NONCE`; the operator consumes
each nonce once and records it in `status.lastCommandNonce`, so the plugin
can wait until its own command was seen.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modeldeploy_operator import kube
from modeldeploy_operator.rollout import commands
from modeldeploy_operator.spec import GROUP, PLURAL, VERSION
from modeldeploy_operator.status import Gates, Ref, Status, Traffic

ACTIONS = commands.COMMANDS


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[[("" if c is None else str(c)) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def render_status(obj: dict[str, Any]) -> str:
    """The status view: summary, traffic, conditions, last measurements."""
    meta, spec = obj["metadata"], obj.get("spec") or {}
    st = Status.from_api(obj.get("status"))
    stable, cand = st.stable or Ref(version="-"), st.candidate or Ref(version="-")
    traffic = st.traffic or Traffic()
    steps = ((spec.get("strategy") or {}).get("canary") or {}).get("steps") or []
    paused = f" ({st.paused.reason}: {st.paused.message})" if st.paused else ""
    lines = [
        f"Name:       {meta['namespace']}/{meta['name']}",
        f"Model:      {(spec.get('model') or {}).get('name', '')}",
        f"Phase:      {st.phase or 'Pending'}{paused}",
        f"Strategy:   {(spec.get('strategy') or {}).get('type', 'Canary')}",
        f"Stable:     {stable.version} {stable.revision}",
        f"Candidate:  {cand.version} {cand.revision}",
        f"Weight:     {traffic.canary_weight}% canary, {traffic.mirror_percent}% mirrored",
    ]
    if st.stage == "Canary" and steps:
        lines.append(f"Step:       {st.current_step + 1}/{len(steps)}")
    a = st.analysis
    if a is not None:
        lines.append(
            f"Analysis:   {a.failures} failed, {a.inconclusive} inconclusive, "
            f"{a.passes} passed in this step"
        )
    lines += _gate_lines(st)
    conds = [(c.type, c.status, c.reason, c.message) for c in st.conditions]
    if conds:
        lines += ["", table(conds, ("CONDITION", "STATUS", "REASON", "MESSAGE"))]
    ms = [
        (
            m.get("time", ""),
            m.get("metric"),
            _num(m.get("value")),
            m.get("threshold"),
            f"{m.get('verdict')} (dry run)" if m.get("dryRun") else m.get("verdict"),
        )
        for m in (a.measurements if a else ())[-10:]
    ]
    if ms:
        lines += ["", table(ms, ("TIME", "METRIC", "VALUE", "THRESHOLD", "VERDICT"))]
    return "\n".join(lines)


def _gate_lines(st: Status) -> list[str]:
    """Webhook gates of the current rollout, when it has any."""
    gates = st.gates or Gates()
    lines = []
    pre = gates.pre_rollout
    if pre:
        lines.append(f"Pre-rollout: {pre.state} {pre.message or ''}".rstrip())
    val = st.validation
    if val:
        lines.append(f"Validation: {val.state}: {val.message or ''}")
        shown = [f"{k} {_num(v)}" for k, v in (val.metrics or {}).items() if v is not None]
        if shown:
            lines.append(f"            {', '.join(shown)}")
    confirm = gates.confirm_promotion
    if confirm and st.stage in ("Shadow", "Canary", "Bake"):
        lines.append(f"Promotion:  waiting since {confirm.waiting_since}: {confirm.message}")
    return lines


def render_history(obj: dict[str, Any]) -> str:
    rows = [
        (h.time, h.version, h.revision, h.result, h.message)
        for h in Status.from_api(obj.get("status")).history
    ]
    return table(rows, ("TIME", "VERSION", "REVISION", "RESULT", "MESSAGE"))


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def command_value(action: str, nonce: str | None = None) -> str:
    return f"{action}:{nonce or uuid.uuid4().hex[:12]}"


def _add_connection_flags(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("-n", "--namespace", default=default, help="namespace (default: kubeconfig's)")
    p.add_argument("--kubeconfig", default=default, help="kubeconfig file (default: KUBECONFIG)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl modeldeploy",
        description="Inspect and steer ModelDeployment rollouts (modeldeploy.io).",
    )
    _add_connection_flags(p, default=None)
    # The same flags after the subcommand (`status NAME -n NS`, as with kubectl);
    # SUPPRESS keeps a subcommand that omits them from resetting the global ones.
    common = argparse.ArgumentParser(add_help=False)
    _add_connection_flags(common, default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="action", required=True)
    st = sub.add_parser(
        "status", parents=[common], help="phase, weights, step, conditions and measurements"
    )
    st.add_argument("name")
    st.add_argument("-w", "--watch", action="store_true", help="refresh until interrupted")
    st.add_argument("--interval", type=float, default=2.0, help="refresh period with --watch")
    sub.add_parser("history", parents=[common], help="past rollouts").add_argument("name")
    helps = {
        "promote": "promote the candidate now (skips remaining steps)",
        "abort": "roll the candidate back now",
        "pause": "hold the rollout at its current step",
        "resume": "continue a paused rollout",
        "retry": "retry a rolled-back revision",
    }
    for action in ACTIONS:
        c = sub.add_parser(action, parents=[common], help=helps[action])
        c.add_argument("name")
        c.add_argument("--no-wait", action="store_true", help="do not wait for the operator")
        c.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    return p


def _default_namespace() -> str:
    try:
        from kubernetes import config as kconfig

        _, active = kconfig.list_kube_config_contexts()
        return (active or {}).get("context", {}).get("namespace") or "default"
    except Exception:
        return "default"


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    namespace = args.namespace or _default_namespace()
    api = client.CustomObjectsApi(kube.new_api_client(args.kubeconfig))

    def get() -> dict[str, Any]:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, args.name)

    try:
        if args.action == "status":
            while True:
                text = render_status(get())
                if not args.watch:
                    print(text)
                    return 0
                print("\033[2J\033[H" + text, flush=True)
                time.sleep(args.interval)
        if args.action == "history":
            print(render_history(get()))
            return 0
        value = command_value(args.action)
        body = {"metadata": {"annotations": {commands.COMMAND_ANNOTATION: value}}}
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, args.name, body)
        nonce = value.partition(":")[2]
        if args.no_wait:
            print(f"{args.action} sent to {namespace}/{args.name}")
            return 0
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            status = Status.from_api(get().get("status"))
            if status.last_command_nonce == nonce:
                print(f"{args.action} applied: {namespace}/{args.name} is {status.phase}")
                return 0
            time.sleep(0.5)
        print(f"{args.action} sent, but the operator has not consumed it yet", file=sys.stderr)
        return 1
    except ApiException as exc:
        if exc.status == 404:
            print(f"error: modeldeployment {namespace}/{args.name} not found", file=sys.stderr)
        else:
            print(f"error: API server answered {exc.status}: {exc.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
