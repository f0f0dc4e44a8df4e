"""A Kubernetes API blip is retried at the tick interval, not Kopf's 60 s back-off."""

from __future__ import annotations

import asyncio

import kopf
import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from modeldeploy_operator import main, transient


class Raising:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    async def reconcile(self, body: dict, *, full: bool) -> None:
        raise self.exc


def refused() -> urllib3.exceptions.MaxRetryError:
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    return urllib3.exceptions.MaxRetryError(None, "/apis/modeldeploy.io", reason)


@pytest.mark.parametrize(
    "exc",
    [
        refused(),
        urllib3.exceptions.ProtocolError("Connection aborted."),
        ConnectionResetError(104, "reset"),
        ApiException(status=503, reason="Service Unavailable"),
        ApiException(status=429, reason="Too Many Requests"),
        ApiException(status=409, reason="Conflict"),
        ApiException(status=0, reason="no answer"),
    ],
)
def test_api_unavailable_is_retried_at_the_given_delay(exc: BaseException) -> None:
    assert transient.is_transient(exc)
    memo = kopf.Memo(reconciler=Raising(exc))
    with pytest.raises(kopf.TemporaryError) as raised:
        asyncio.run(main._run(memo, kopf.Body({}), full=False, retry=0.5))
    assert raised.value.delay == 0.5
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [ValueError("a bug"), KeyError("spec"), ApiException(status=403), ApiException(status=422)],
)
def test_bugs_and_refusals_keep_kopfs_back_off(exc: BaseException) -> None:
    assert not transient.is_transient(exc)
    memo = kopf.Memo(reconciler=Raising(exc))
    with pytest.raises(type(exc)):
        asyncio.run(main._run(memo, kopf.Body({}), full=True, retry=1.0))


def test_error_kinds_name_the_status_or_unreachable() -> None:
    assert transient.kind(ApiException(status=503)) == "api-503"
    assert transient.kind(refused()) == "api-unreachable"
