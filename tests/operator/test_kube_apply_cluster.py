"""Server-side apply of any string the API server stores (kube.apply_body)."""

from __future__ import annotations

import pytest
from kubernetes import client
from modeldeploy_operator import kube

pytestmark = [pytest.mark.cluster]

# Beyond the BMP: json.dumps' default \\ud83c\\udf89 escapes broke the apply (400).
TEXT = "s3://b/\U0005ee03-\U0001f389-é"


async def test_apply_keeps_characters_beyond_the_bmp(cluster, namespace):
    api = kube.new_api_client(str(cluster.kubeconfig))
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "unicode", "namespace": namespace},
        "data": {"uri": TEXT},
    }
    await kube.Kube(api).apply(cm)
    stored = client.CoreV1Api(api).read_namespaced_config_map("unicode", namespace)
    assert stored.data == {"uri": TEXT}
