"""The Prometheus client's errors say what went wrong (the status shows them)."""

from __future__ import annotations

import httpx
import pytest
from modeldeploy_operator.analysis import prometheus


def provider_with(handler) -> prometheus.Prometheus:
    p = prometheus.Prometheus("http://prom.test", timeout=2.5)
    p._client = httpx.AsyncClient(base_url=p.url, transport=httpx.MockTransport(handler))
    return p


async def test_a_timeout_names_the_timeout():
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("", request=request)  # httpx often gives no text

    p = provider_with(slow)
    with pytest.raises(prometheus.ProviderError) as caught:
        await p.run_query("up")
    await p.aclose()
    assert "timed out (ReadTimeout after 2.5s)" in str(caught.value)


async def test_b_an_error_without_text_names_its_kind():
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("", request=request)

    p = provider_with(refused)
    with pytest.raises(prometheus.ProviderError) as caught:
        await p.run_query("up")
    await p.aclose()
    assert str(caught.value).endswith("unreachable at http://prom.test: ConnectError")


async def test_c_an_error_answer_keeps_prometheus_text():
    def failing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"status": "error", "error": "WAL replay"})

    p = provider_with(failing)
    with pytest.raises(prometheus.ProviderError) as caught:
        await p.run_query("up")
    await p.aclose()
    assert str(caught.value) == "Prometheus query failed (503): WAL replay"
