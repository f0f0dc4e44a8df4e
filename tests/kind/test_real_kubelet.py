"""Our images, chart and operator under a real kubelet (kind): what the local node cannot show.

One ModelDeployment in a namespace that enforces the restricted Pod Security
Standard, its bundle in the cluster's S3 store; then what only a real node
enforces or provides: the container runtime's read-only root filesystem and
non-root user, probes against the container, a Service through kube-proxy and
CoreDNS, and `kubectl port-forward` into the pod's own localhost.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import httpx
import kubernetes
import pytest
from modeldeploy_devcluster import forward

from demo import models
from demo import scenario as demo_scenario
from demo.store import Store
from tests.shipping import chart, scenario

pytestmark = pytest.mark.kind
PROMETHEUS = "http://prometheus.monitoring.svc:9090"
PREDICTOR = f"ghcr.io/modeldeploy/predictor:{demo_scenario.IMAGE.rsplit(':', 1)[1]}"


def _phase(kube: scenario.Kube, ns: str) -> dict:
    out = kube.run("get", "md", models.NAME, "-n", ns, "-o", "json").stdout
    return json.loads(out).get("status") or {}


def _pods(kube: scenario.Kube, ns: str, component: str) -> list[dict]:
    out = kube.run("get", "pods", "-n", ns, "-l", f"app.kubernetes.io/component={component}",
                   "-o", "json").stdout  # fmt: skip
    return json.loads(out)["items"]


@pytest.fixture
def served(
    kube: scenario.Kube, kind_helm: chart.Helm, restricted_namespace: str, kind_kubeconfig: str
) -> str:
    """The chart's operator watching the namespace, and iris 1.0.0 from S3 Ready in it."""
    ns = restricted_namespace
    release = scenario.release_name()
    values = scenario.namespaced_values([ns], prometheus={"url": PROMETHEUS}, tick=1)
    scenario.install(kind_helm, release, ns, values)
    store = Store.from_env()
    assert store.remote, "DEMO_S3_UPLOAD_URL is set by hack/e2e-kind.sh"
    with kubernetes.config.new_client_from_config(config_file=kind_kubeconfig) as api:
        store.create_secret(api, ns)
    first = models.train()[0]
    with tempfile.TemporaryDirectory() as out:
        uris = store.publish(models.bundle_all([first], Path(out)))
    body = demo_scenario.manifest(
        first.version, uris[first.version], demo_scenario.canary(), store.secret_name
    )
    body["metadata"]["namespace"] = ns
    kube.apply([body])
    scenario.wait_for(lambda: _phase(kube, ns).get("phase") == "Succeeded", 240,
                      f"iris {first.version} Succeeded in {ns}")  # fmt: skip
    kube.run("-n", ns, "rollout", "status", f"deployment/{models.NAME}-router", "--timeout=120s")
    return ns


def test_pods_are_restricted_and_probed_by_the_kubelet(kube: scenario.Kube, served: str) -> None:
    for component in ("predictor", "router"):
        pods = _pods(kube, served, component)
        assert pods, f"no {component} pod in {served}"
        for pod in pods:
            statuses = pod["status"]["containerStatuses"]
            assert all(s["ready"] and s["restartCount"] == 0 for s in statuses), statuses
            container = pod["spec"]["containers"][0]
            assert container["livenessProbe"] and container["readinessProbe"]
            # What the runtime enforces: a non-root uid and a read-only root filesystem.
            name = pod["metadata"]["name"]
            uid = kube.run("-n", served, "exec", name, "--", "id", "-u").stdout.strip()
            assert uid == "65532"
            write = kube.run("-n", served, "exec", name, "--", "python3", "-c",
                             "open('/opt/x', 'w')", check=False)  # fmt: skip
            assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_service_through_kube_proxy_and_coredns(kube: scenario.Kube, served: str) -> None:
    """A client pod in the cluster calls the router by its DNS name."""
    url = f"http://{models.NAME}.{served}.svc.cluster.local:8080/predict"
    row = dict.fromkeys(models.FEATURES, 5.0)
    # kube-proxy programs a Service's endpoints a moment after they are Ready
    # (a refused connect until then): the client tries again on a refusal only,
    # for at most 30 s, and says how many attempts it took.
    code = (
        "import json, time, urllib.error, urllib.request as u\n"
        f"req = u.Request({url!r}, data=json.dumps([{row!r}]).encode(), "
        "headers={'content-type': 'application/json'})\n"
        "for attempt in range(1, 31):\n"
        "    try:\n"
        "        r = u.urlopen(req, timeout=10)\n"
        "        break\n"
        "    except urllib.error.URLError as e:\n"
        "        if not isinstance(e.reason, ConnectionRefusedError) or attempt == 30:\n"
        "            raise\n"
        "        time.sleep(1)\n"
        "print(r.status, r.read().decode(), 'attempts', attempt)"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client", "namespace": served},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": PREDICTOR, "command": ["python3", "-c", code],
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }  # fmt: skip
    kube.apply([pod])
    scenario.wait_for(
        lambda: kube.run("-n", served, "get", "pod", "client", "-o",
                         "jsonpath={.status.phase}").stdout in ("Succeeded", "Failed"),
        120, "the client pod to finish",
    )  # fmt: skip
    log = kube.run("-n", served, "logs", "client").stdout
    assert log.startswith("200 "), log
    assert "predictions" in log


def test_port_forward_reaches_the_pods_localhost(
    kube: scenario.Kube, served: str, kind_kubeconfig: str
) -> None:
    """kubectl port-forward connects to localhost inside the pod: servers must listen there too."""
    pod = _pods(kube, served, "predictor")[0]["metadata"]["name"]
    with forward.port_forward(Path(kind_kubeconfig), f"pod/{pod}", served, 8080) as url:
        assert httpx.get(f"{url}/v2/health/ready", timeout=10).status_code == 200
