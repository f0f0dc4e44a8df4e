"""The pure builders produce the names, labels and wiring of docs/contracts.md."""

from __future__ import annotations

from md_factories import md
from modeldeploy_operator import manifests
from modeldeploy_operator.traffic import builtin


def test_revision_deployment_contract():
    m = md("2.0.0")
    d = manifests.revision_deployment(m, 2, "canary")
    assert d["metadata"]["name"] == m.revision and m.revision.startswith("fraud-")
    assert len(m.revision) == len("fraud-") + 10
    assert d["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    tpl = d["spec"]["template"]
    assert tpl["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "modeldeploy",
        "modeldeploy.io/name": "fraud",
        "modeldeploy.io/revision": m.revision,
        "app.kubernetes.io/component": "predictor",
    }
    assert tpl["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    (c,) = tpl["spec"]["containers"]
    assert c["args"] == [
        "serve",
        "--bundle",
        "/models/2.0.0",
        "--port",
        "8080",
        "--host",
        "0.0.0.0",
    ]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["MODELDEPLOY_MODEL_VERSION"] == "2.0.0"
    assert env["MODELDEPLOY_TRACK"] == "canary"
    assert env["MODELDEPLOY_REVISION"] == m.revision
    assert "POD_IP" not in env  # a pod listens on all its interfaces
    assert env["MODELDEPLOY_CACHE_DIR"] == "/var/cache/modeldeploy"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    startup = c["startupProbe"]  # a bundle download of minutes must not trip liveness
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    # a leaving pod serves on until its endpoint is gone, then stops gracefully
    drain = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert drain >= 2
    pod = d["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > drain + 30  # + predictor --graceful-timeout
    assert d["spec"]["replicas"] == 2


def _pod_specs():
    m = md()
    yield manifests.revision_deployment(m, 1, "stable")["spec"]["template"]["spec"]
    router = builtin.objects(m, "ghcr.io/modeldeploy/predictor:0.1")[3]
    yield router["spec"]["template"]["spec"]


def test_every_pod_is_hardened():
    """Restricted Pod Security: non-root, read-only root, no privilege, no capability."""
    for spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert "livenessProbe" in c and "readinessProbe" in c
            mounts = {vm["mountPath"]: vm["name"] for vm in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            host = c["args"][c["args"].index("--host") + 1]
            assert host == "0.0.0.0"


def test_revision_changes_with_model_not_with_replicas():
    a, b = md("1.0.0"), md("1.0.1")
    assert a.revision != b.revision
    scaled = md("1.0.0", predictor={"image": "ghcr.io/modeldeploy/predictor:0.1.0", "replicas": 9})
    assert scaled.revision == a.revision


def test_track_service_selects_revision():
    m = md()
    s = manifests.track_service(m, "canary", "fraud-0123456789")
    assert s["metadata"]["name"] == "fraud-canary"
    assert s["spec"]["selector"] == {"modeldeploy.io/revision": "fraud-0123456789"}
    assert s["spec"]["ports"][0]["name"] == "http" and s["spec"]["ports"][0]["port"] == 8080


def test_router_objects():
    m = md()
    sa, role, binding, dep, svc, _ = builtin.objects(m, "ghcr.io/modeldeploy/predictor:0.1")
    assert sa["metadata"]["name"] == role["metadata"]["name"] == "fraud-router"
    assert binding["subjects"][0]["name"] == "fraud-router"
    resources = {r["resources"][0] for r in role["rules"]}
    assert resources == {"modeldeployments", "endpointslices"}
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["modeldeploy-router"]
    assert c["args"][:5] == ["--kube", "--namespace", "ns", "--model-deployment", "fraud"]
    assert c["args"][-2:] == ["--shutdown-delay", "2"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "fraud-router"
    assert svc["metadata"]["name"] == "fraud"
    assert svc["spec"]["selector"] == {
        "modeldeploy.io/name": "fraud",
        "app.kubernetes.io/component": "router",
    }


def test_router_is_replicated_spread_and_guarded_by_a_disruption_budget():
    *_, dep, _, pdb = builtin.objects(md(), "ghcr.io/modeldeploy/predictor:0.1")
    selector = {"modeldeploy.io/name": "fraud", "app.kubernetes.io/component": "router"}
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    (term,) = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["metadata"]["name"] == "fraud-router"
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    assert pdb["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"


def test_router_replicas_follow_the_spec():
    m = md(traffic={"provider": "builtin", "router": {"replicas": 3}})
    dep = builtin.objects(m, "img")[3]
    assert dep["spec"]["replicas"] == 3


def test_predictor_env_never_repeats_a_name():
    """predictor.env naming a variable the operator sets (or one name twice) once
    gave the Deployment two entries of one name: server-side apply refused it
    with a 500, retried for ever with no status (found by
    tests/chaos/test_store_faults.py). Ours win, then the user's first entry."""
    env = [
        {"name": "MODELDEPLOY_CACHE_DIR", "value": "/elsewhere"},
        {"name": "MODELDEPLOY_MODEL_VERSION", "value": "9.9.9"},
        {"name": "EXTRA", "value": "1"},
        {"name": "EXTRA", "value": "2"},
    ]
    m = md("2.0.0", predictor={"image": "ghcr.io/modeldeploy/predictor:0.1.0", "env": env})
    (c,) = manifests.revision_deployment(m, 1, "canary")["spec"]["template"]["spec"]["containers"]
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names)), names
    values = {e["name"]: e.get("value") for e in c["env"]}
    assert values["MODELDEPLOY_CACHE_DIR"] == manifests.BUNDLE_CACHE
    assert values["MODELDEPLOY_MODEL_VERSION"] == "2.0.0"
    assert values["EXTRA"] == "1"
