"""Which exceptions mean "the API server is briefly away", and how soon to retry.

Kopf retries a handler that raised an arbitrary exception after its default
back-off of 60 s. For a rollout that is far too long: a kube-apiserver
restart of a few seconds would leave a failing candidate serving users for a
minute after the API is back. Connection failures and the API server's
"try again" answers are therefore retried at the tick interval; anything
else (a bug) keeps Kopf's back-off so that it cannot spin.
"""

from __future__ import annotations

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

# Answers that say "not now": conflict (a newer resourceVersion), throttled,
# server errors and timeouts, and the gateway codes of a restarting apiserver.
RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """True for API-server unavailability that a quick retry can outlast."""
    if isinstance(exc, ApiException):
        # status 0: the client got no HTTP answer at all.
        return exc.status in RETRY_STATUSES or not exc.status
    # urllib3's MaxRetryError, ProtocolError, timeouts; ConnectionRefused/Reset,
    # socket timeouts and TLS EOFs during an apiserver restart are OSErrors.
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def kind(exc: BaseException) -> str:
    """Label for the reconcile-errors counter."""
    if isinstance(exc, ApiException):
        return f"api-{exc.status}"
    return "api-unreachable"
