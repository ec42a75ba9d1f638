"""HTTP for the record adapters (only `integrations/` talks to the network): a session that never
goes through a proxy for local addresses, a timeout on every call, and vendor failures mapped to
`RecordUnavailable` (retry later) and `RecordRejected` (a 4xx business answer)."""

from __future__ import annotations

import logging

import requests
from django.conf import settings

from .base import RecordRejected, RecordUnavailable

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = {408, 425, 429}


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = settings.RECORD_HTTP_TRUST_ENV
    return s


def send(sess: requests.Session, method: str, url: str, *, ok=(200, 201), **kwargs) -> requests.Response:
    """One call; answers in `ok` come back, everything else raises our error (ids only in logs)."""
    kwargs.setdefault("timeout", settings.RECORD_HTTP_TIMEOUT_SECONDS)
    try:
        response = sess.request(method, url, **kwargs)
    except (requests.ConnectionError, requests.Timeout) as exc:
        logger.warning("record call %s failed: %s", method, type(exc).__name__)
        raise RecordUnavailable(f"{method} {url}: {type(exc).__name__}") from exc
    if response.status_code in ok:
        return response
    detail = response.text[:500]
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
        raise RecordUnavailable(f"{method} {url}: HTTP {response.status_code} {detail}")
    raise RecordRejected(f"{method} {url}: HTTP {response.status_code} {detail}")
