"""Chart scenarios on a real cluster, shared by the local-cluster tests and kind.

Everything here talks to the API server through `kubectl` and `helm` with an
explicit kubeconfig, so the same steps run against the local cluster (pytest
fixture `cluster`) and against kind (`hack/e2e-kind.sh` sets
MODELDEPLOY_E2E_KUBECONFIG). RBAC checks impersonate the chart's
ServiceAccount, so the API server's own authorizer gives the answers.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from modeldeploy_devcluster import forward

from . import chart

# Every kind the chart can create; leftovers are searched among these.
CHART_KINDS = (
    "deployments,services,serviceaccounts,configmaps,roles,rolebindings,"
    "clusterroles,clusterrolebindings,kopfpeerings.kopf.dev,clusterkopfpeerings.kopf.dev"
)


@dataclass
class Kube:
    """kubectl bound to one kubeconfig."""

    kubeconfig: str

    def run(
        self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [forward.kubectl_binary(), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}"
            )
        return proc

    def apply(self, docs: Iterable[Mapping[str, Any]], *flags: str) -> subprocess.CompletedProcess:
        return self.run(
            "apply", "--server-side", "--field-manager=modeldeploy-tests", "-f", "-", *flags,
            stdin=yaml.safe_dump_all(list(docs)),
        )  # fmt: skip

    def create_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.run("create", "namespace", name)
        return name

    def delete_namespace(self, name: str) -> None:
        self.run("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)

    def can_i(self, service_account: str, verb: str, resource: str, namespace: str = "") -> bool:
        """May NS/NAME do `verb` on `resource[.group][/subresource]` (in `namespace`, "" = all)?

        Asked as a SubjectAccessReview for the ServiceAccount's user and groups,
        so the API server's own RBAC authorizer answers, also for resources
        whose API is not installed (where `kubectl auth can-i` guesses).
        """
        ns, name = service_account.split("/")
        resource, _, subresource = resource.partition("/")
        plural, _, group = resource.partition(".")
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": f"system:serviceaccount:{ns}:{name}",
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                           "system:authenticated"],
                "resourceAttributes": {
                    "verb": verb, "group": group, "resource": plural,
                    "subresource": subresource, "namespace": namespace,
                },
            },
        }  # fmt: skip
        proc = self.run("create", "-o", "json", "-f", "-", stdin=json.dumps(review))
        return bool(json.loads(proc.stdout)["status"].get("allowed"))

    def can_i_kubectl(self, service_account: str, verb: str, resource: str, namespace: str) -> bool:
        """The same question through `kubectl auth can-i --as` (known resource types only)."""
        ns, name = service_account.split("/")
        proc = self.run(
            "auth", "can-i", verb, resource, "-n", namespace,
            "--as", f"system:serviceaccount:{ns}:{name}",
            check=False,
        )  # fmt: skip
        answer = proc.stdout.strip()
        if answer not in ("yes", "no"):
            raise AssertionError(f"can-i {verb} {resource}: {proc.stdout}{proc.stderr}")
        return answer == "yes"

    def service_account_kubeconfig(self, service_account: str, path: str) -> str:
        """A kubeconfig that authenticates as NS/NAME with a real bound token.

        This is how the operator is run "as the chart's ServiceAccount" outside
        a pod: the API server authenticates the token and enforces RBAC itself.
        """
        ns, name = service_account.split("/")
        token = self.run("create", "token", name, "-n", ns, "--duration", "1h").stdout.strip()
        admin = json.loads(
            self.run("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
        )
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
            "users": [{"name": name, "user": {"token": token}}],
            "contexts": [
                {"name": "sa", "context": {"cluster": "cluster", "user": name, "namespace": ns}}
            ],
            "current-context": "sa",
        }
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        return path

    def owned_by_release(self, release: str) -> list[str]:
        """kind/name of every object labelled as the release's, in all namespaces."""
        proc = self.run(
            "get", CHART_KINDS, "--all-namespaces", "--ignore-not-found",
            "-l", f"app.kubernetes.io/instance={release}", "-o", "name",
        )  # fmt: skip
        return sorted(proc.stdout.split())


EXAMPLE = chart.REPO / "examples" / "01-canary" / "modeldeployment.yaml"
# What the operator makes for a ModelDeployment (docs/contracts.md): the router's
# Role and RoleBinding prove it holds every permission it grants.
CHILD_KINDS = ("deployments", "services", "serviceaccounts", "roles", "rolebindings")


def reconcile_example(kube: Kube, namespace: str, operator_log: Callable[[], str]) -> None:
    """The canary example, reconciled by an operator that runs with the chart's RBAC.

    Status written, every kind of child made (router RBAC included), and on
    delete the finalizer released: the operator's whole write path. Any
    refusal by the API server shows up in the operator's log.
    """
    name = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    kube.run("apply", "-n", namespace, "-f", str(EXAMPLE))

    def phase() -> str:
        return kube.run(
            "get", "md", name, "-n", namespace, "-o", "jsonpath={.status.phase}"
        ).stdout.strip()

    wait_for(phase, 120, f"the operator to write status:\n{operator_log()[-3000:]}")

    def children() -> list[str]:
        listing = kube.run(
            "get", ",".join(CHILD_KINDS), "-n", namespace,
            "-l", f"modeldeploy.io/name={name}", "-o", "name",
        ).stdout  # fmt: skip
        made = {line.split("/")[0].split(".")[0] for line in listing.split()}
        return [kind for kind in CHILD_KINDS if kind.removesuffix("s") in made]

    wait_for(
        lambda: len(children()) == len(CHILD_KINDS),
        120,
        f"every kind of child ({CHILD_KINDS}), have {children()}:\n{operator_log()[-3000:]}",
    )
    deleted = kube.run(
        "delete", "md", name, "-n", namespace, "--timeout=30s", check=False, timeout=60
    )
    assert deleted.returncode == 0, (
        f"the finalizer was not released within 30 s: {deleted.stderr}\n{operator_log()[-3000:]}"
    )
    log = operator_log()
    for refusal in ("Forbidden", " 403", "Not enough permissions"):
        assert refusal not in log, log[-5000:]


def wait_for(condition, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll `condition` until it returns a truthy value; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def release_name() -> str:
    return f"md{uuid.uuid4().hex[:6]}"


def namespaced_values(namespaces: list[str], **more: Any) -> dict[str, Any]:
    return {"watch": {"allNamespaces": False, "namespaces": namespaces}, **more}


def install(
    helm: chart.Helm,
    release: str,
    namespace: str,
    values: Mapping[str, Any],
    *,
    upgrade: bool = False,
) -> subprocess.CompletedProcess:
    """`helm install` (or `upgrade`) without waiting for pods: RBAC and objects only."""
    verb = ["upgrade"] if upgrade else ["install"]
    return helm.run(
        *verb, release, str(chart.CHART), "--namespace", namespace, *chart.set_flags(values),
        timeout=300,
    )  # fmt: skip
