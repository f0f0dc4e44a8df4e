"""Pod addresses skip loopback addresses another process (cluster) listens on."""

from __future__ import annotations

import socket

import pytest
from modeldeploy_devcluster.node.ipalloc import (
    FIRST_ENV,
    IpAllocator,
    first_from_env,
    listening_addresses,
)


def test_busy_addresses_are_skipped():
    alloc = IpAllocator(busy=lambda: {"127.0.0.2", "127.0.0.4"})
    assert [alloc.allocate(k) for k in "abc"] == ["127.0.0.3", "127.0.0.5", "127.0.0.6"]


def test_listening_addresses_sees_a_real_listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert "127.0.0.1" in listening_addresses()


def test_listening_addresses_parses_proc_format(tmp_path):
    table = tmp_path / "tcp"
    table.write_text(
        "  sl  local_address rem_address   st\n"
        "   0: 0200007F:1F90 00000000:0000 0A\n"  # 127.0.0.2:8080 LISTEN
        "   1: 0300007F:1F90 0100007F:9C40 01\n"  # established: ignored
    )
    assert listening_addresses(table) == {"127.0.0.2"}
    assert listening_addresses(tmp_path / "missing") == set()


def test_first_address_from_env():
    assert first_from_env({}) == 2
    first = first_from_env({FIRST_ENV: "127.0.37.2"})
    assert IpAllocator(first=first).allocate("a") == "127.0.37.2"
    for bad in ("10.0.0.2", "127.0.0.1", "nope"):
        with pytest.raises(ValueError, match=FIRST_ENV):
            first_from_env({FIRST_ENV: bad})
