"""Unit tests: ModelDeployment status and EndpointSlices -> routing table."""

from __future__ import annotations

from modeldeploy_router import discovery, routing


def eps(service: str, *endpoints: tuple[str, bool | None], ports=None) -> dict:
    return {
        "metadata": {"name": f"{service}-x", "labels": {discovery.SERVICE_NAME_LABEL: service}},
        "ports": ports if ports is not None else [{"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": [ip], **({} if ready is None else {"conditions": {"ready": ready}})}
            for ip, ready in endpoints
        ],
    }


def md(traffic: dict | None, model: str = "fraud") -> dict:
    doc: dict = {"metadata": {"name": "fraud-md"}, "spec": {"model": {"name": model}}}
    if traffic is not None:
        doc["status"] = {"traffic": traffic}
    return doc


TRAFFIC = {
    "canaryWeight": 10,
    "mirrorPercent": 50,
    "tracks": {
        "stable": {"service": "f-stable", "version": "1.0.0", "revision": "f-aaaa"},
        "canary": {"service": "f-canary", "version": "2.0.0", "revision": "f-bbbb"},
    },
}


def test_ready_endpoints_only_and_port_named_http() -> None:
    s = eps(
        "svc",
        ("10.0.0.1", True),
        ("10.0.0.2", False),
        ("10.0.0.3", None),
        ports=[{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
    )
    assert discovery.endpoints_from_slices([s]) == ("http://10.0.0.1:8080", "http://10.0.0.3:8080")


def test_first_port_when_none_named_http_and_ipv6() -> None:
    s = eps("svc", ("fd00::1", True), ports=[{"name": "web", "port": 81}, {"port": 82}])
    assert discovery.endpoints_from_slices([s]) == ("http://[fd00::1]:81",)
    assert discovery.endpoints_from_slices([eps("svc", ("1.2.3.4", True), ports=[])]) == ()


def test_table_from_status_traffic() -> None:
    slices = {
        "f-stable": [eps("f-stable", ("127.0.0.2", True))],
        "f-canary": [eps("f-canary", ("127.0.0.3", True), ("127.0.0.4", True))],
    }
    t = discovery.table_from_objects(md(TRAFFIC), slices, "fallback")
    assert (t.model, t.canary_weight, t.mirror_percent) == ("fraud", 10, 50)
    assert t.tracks["stable"].pool.urls == ("http://127.0.0.2:8080",)
    assert t.tracks["canary"].version == "2.0.0"
    assert t.tracks["canary"].revision == "f-bbbb"
    assert len(t.tracks["canary"].pool) == 2
    assert "shadow" not in t.tracks
    assert t.ready


def test_missing_object_or_status_means_no_tracks() -> None:
    for obj in (None, md(None)):
        t = discovery.table_from_objects(obj, {}, "fallback")
        assert t.tracks == {}
        assert not t.ready
    assert discovery.table_from_objects(None, {}, "fallback").model == "fallback"


def test_bad_weight_keeps_previous_value() -> None:
    good = discovery.table_from_objects(md(TRAFFIC), {}, "m")
    bad = dict(TRAFFIC, canaryWeight="lots", mirrorPercent=150)
    t = discovery.table_from_objects(md(bad), {}, "m", previous=good)
    assert (t.canary_weight, t.mirror_percent) == (10, 50)


def test_unchanged_endpoints_keep_pool_object() -> None:
    slices = {"f-stable": [eps("f-stable", ("127.0.0.2", True))]}
    first = discovery.table_from_objects(md(TRAFFIC), slices, "m")
    again = discovery.table_from_objects(md(dict(TRAFFIC, canaryWeight=20)), slices, "m", first)
    assert again.tracks["stable"].pool is first.tracks["stable"].pool
    assert again.canary_weight == 20


def test_unknown_track_ignored() -> None:
    traffic = dict(TRAFFIC, tracks={"blue": {"service": "x"}, "stable": {"service": "s"}})
    t = discovery.table_from_objects(md(traffic), {}, "m")
    assert set(t.tracks) == {routing.STABLE}
