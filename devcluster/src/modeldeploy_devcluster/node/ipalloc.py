"""Loopback addresses for pods: 127.0.0.2, 127.0.0.3, ... lowest free first.

Every pod gets its own address so that two replicas can listen on the same
port; addresses are reused once their pod is gone. Addresses where something
already listens (another local cluster on the same machine, say) are skipped
when a ``busy`` callable is given: otherwise both clusters' pods would fight
for 127.0.0.2:8080.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable
from pathlib import Path

BASE = ipaddress.IPv4Address("127.0.0.0")
# Where pod addresses start (default 127.0.0.2): another /24 keeps this cluster's
# pods away from those of other local clusters on the same machine.
FIRST_ENV = "MODELDEPLOY_DEVCLUSTER_FIRST_POD_IP"


class AddressesExhausted(RuntimeError):
    pass


class IpAllocator:
    def __init__(
        self, first: int = 2, last: int = 254 * 256, busy: Callable[[], set[str]] | None = None
    ) -> None:
        self._first, self._last = first, last
        self._busy = busy
        self._by_key: dict[str, int] = {}
        self._used: set[int] = set()
        self._lock = threading.Lock()

    def allocate(self, key: str) -> str:
        """The address of ``key`` (a pod uid); the same key gets the same address."""
        with self._lock:
            if key in self._by_key:
                return str(BASE + self._by_key[key])
            busy = self._busy() if self._busy else set()
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


def listening_addresses(proc_net_tcp: Path = Path("/proc/net/tcp")) -> set[str]:
    """IPv4 addresses with a listening TCP socket on this machine (Linux), else empty."""
    try:
        lines = proc_net_tcp.read_text().splitlines()[1:]
    except OSError:
        return set()
    found = set()
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
            hex_ip = fields[1].split(":")[0]
            found.add(str(ipaddress.IPv4Address(bytes.fromhex(hex_ip)[::-1])))
    return found


def first_from_env(environ: dict[str, str] | None = None) -> int:
    """The allocator's first address from FIRST_ENV (offset from 127.0.0.0), default 2."""
    text = (os.environ if environ is None else environ).get(FIRST_ENV, "")
    if not text:
        return 2
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise ValueError(f"{FIRST_ENV}={text!r} is not an IPv4 address") from exc
    if not address.is_loopback or int(address) - int(BASE) < 2:
        raise ValueError(f"{FIRST_ENV}={text!r} must be in 127.0.0.2-127.255.255.254")
    return int(address) - int(BASE)
