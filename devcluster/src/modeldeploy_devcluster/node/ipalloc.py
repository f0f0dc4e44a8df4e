"""Loopback addresses for pods: 127.0.0.2, 127.0.0.3, ... lowest free first.

Every pod gets its own address so that two replicas can listen on the same
port; addresses are reused once their pod is gone.
"""

from __future__ import annotations

import ipaddress
import threading

BASE = ipaddress.IPv4Address("127.0.0.0")


class AddressesExhausted(RuntimeError):
    pass


class IpAllocator:
    def __init__(self, first: int = 2, last: int = 254 * 256) -> None:
        self._first, self._last = first, last
        self._by_key: dict[str, int] = {}
        self._used: set[int] = set()
        self._lock = threading.Lock()

    def allocate(self, key: str) -> str:
        """The address of ``key`` (a pod uid); the same key gets the same address."""
        with self._lock:
            if key in self._by_key:
                return str(BASE + self._by_key[key])
            for n in range(self._first, self._last + 1):
                # Skip .0 and .255 of every /24: some tools treat them as special.
                if n % 256 in (0, 255) or n in self._used:
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
