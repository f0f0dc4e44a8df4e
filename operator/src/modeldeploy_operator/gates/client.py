"""POST a JSON body to a URL and tell whether it answered 2xx in time (aiohttp).

Every failure (timeout, refused connection, DNS, non-2xx) is an `Outcome`,
never an exception: a receiver can stop a rollout only through its answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

# Enough of an error body to say why, not enough to bloat status or logs.
_BODY_CHARS = 200


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None  # HTTP status, None when no answer
    message: str


class HookClient:
    """One aiohttp session for the process, made on first use (it needs a loop)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": "modeldeploy-operator"},
                # Receivers are the user's; proxies from the operator's env still apply.
                trust_env=True,
            )
        return self._session

    async def post(self, url: str, body: dict[str, Any], timeout: float) -> Outcome:
        try:
            async with self._client().post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as r:
                if 200 <= r.status < 300:
                    return Outcome(True, r.status, f"answered {r.status}")
                text = (await r.content.read(_BODY_CHARS)).decode(errors="replace").strip()
                return Outcome(
                    False, r.status, f"answered {r.status}" + (f": {text}" if text else "")
                )
        except TimeoutError:
            return Outcome(False, None, f"no answer within {timeout:g}s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(False, None, f"unreachable: {exc or type(exc).__name__}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
