"""Loopback addresses for pods: 127.0.0.2, 127.0.0.3, ... lowest free first.

Every pod gets its own address so that two replicas can listen on the same
port; addresses are reused once their pod is gone. Several clusters on one
machine (parallel test sessions) must not hand out the same address, so each
node first claims a /24 block (127.0.B.0) with a lock file that the kernel
releases when the node process ends; the first cluster gets 127.0.0.x.
"""

from __future__ import annotations

import fcntl
import ipaddress
import tempfile
import threading
from pathlib import Path
from typing import IO

BASE = ipaddress.IPv4Address("127.0.0.0")


class AddressesExhausted(RuntimeError):
    pass


class IpAllocator:
    def __init__(self, first: int = 2, last: int = 254 * 256) -> None:
        self._first, self._last = first, last
        self._by_key: dict[str, int] = {}
        self._used: set[int] = set()
        self._lock = threading.Lock()

    def allocate(self, key: str, busy: frozenset[str] = frozenset()) -> str:
        """The address of ``key`` (a pod uid); the same key gets the same address.

        ``busy`` are addresses something else already listens on (another
        program, an older cluster): handing them out would fail the pod's bind.
        """
        with self._lock:
            if key in self._by_key:
                return str(BASE + self._by_key[key])
            for n in range(self._first, self._last + 1):
                # Skip .0 and .255 of every /24: some tools treat them as special.
                if n % 256 in (0, 255) or n in self._used or str(BASE + n) in busy:
                    continue
                self._used.add(n)
                self._by_key[key] = n
                return str(BASE + n)
            raise AddressesExhausted(f"no free loopback address in 127.0.0.{self._first}..")

    def release(self, key: str) -> None:
        with self._lock:
            n = self._by_key.pop(key, None)
            if n is not None:
                self._used.discard(n)

    def in_use(self) -> dict[str, str]:
        with self._lock:
            return {k: str(BASE + n) for k, n in self._by_key.items()}


def parse_listeners(proc_net_tcp: str) -> frozenset[str]:
    """IPv4 addresses with a listening TCP socket, from /proc/net/tcp text."""
    found = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
            hex_ip = fields[1].split(":")[0]
            found.add(str(ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(hex_ip), "little"))))
    return frozenset(found)


def listening_addresses() -> frozenset[str]:
    try:
        return parse_listeners(Path("/proc/net/tcp").read_text())
    except OSError:
        return frozenset()


def claim_block(lock_dir: Path | None = None) -> tuple[IpAllocator, IO]:
    """An allocator over the lowest free 127.0.B.0/24; keep the returned file open."""
    lock_dir = lock_dir or Path(tempfile.gettempdir()) / "modeldeploy-devcluster-ipblocks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for block in range(256):
        handle = open(lock_dir / f"127.0.{block}.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        return IpAllocator(first=block * 256 + 2, last=block * 256 + 254), handle
    raise AddressesExhausted("every 127.0.B.0/24 block is held by another devcluster node")
