"""The README stays true: its example is the example file, its links and targets exist.

The example itself is applied to the API server (server-side dry run) with
every other file in examples/ by tests/operator/test_crd_cluster.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_annotated_example_is_the_example_file():
    found = re.findall(r"<!-- example: (\S+) -->\n```yaml\n(.*?)```", README, re.S)
    assert found, "README lost its example marker"
    for path, block in found:
        assert block == (ROOT / path).read_text(), f"README's copy of {path} differs"
        body = yaml.safe_load(block)
        assert body["kind"] == "ModelDeployment" and body["spec"]["model"]["version"]


def test_relative_links_point_at_files():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if not re.match(r"[a-z]+://", link)]
    assert local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, missing


def test_make_targets_named_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, re.M))
    named = set(re.findall(r"`make ([a-z0-9-]+)", README))
    assert {"demo", "test"} <= named
    assert named <= targets, named - targets
