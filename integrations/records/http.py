"""HTTP for the record adapters (only `integrations/` talks to the network): a session that never
goes through a proxy for local addresses, a timeout on every call, no redirects followed, and vendor
failures mapped to `RecordUnavailable` (retry later) and `RecordRejected` (a 4xx business answer).

Every URL we call is checked first (`check_url`, also run when a manager saves it in the admin):
https only, and its host must not resolve to a loopback, private, link-local, multicast or reserved
address (SSRF: a record URL that points at the cloud metadata service or an internal admin port is
refused). `RECORD_ALLOW_PRIVATE_URLS` lifts both rules for a lab or a test server on this machine.
The check resolves the name, then the call resolves it again: a name whose answer changes between
the two (DNS rebinding) is not caught; redirects are not followed, so a public server cannot bounce
us inward."""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings

from .base import RecordRejected, RecordUnavailable

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = {408, 425, 429}


class UnsafeUrl(ValueError):
    """The URL may not be called (not https, or it leads inside)."""


def private_urls_allowed() -> bool:
    return bool(getattr(settings, "RECORD_ALLOW_PRIVATE_URLS", False))


def _inside(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local


def check_url(url: str) -> None:
    """Raise UnsafeUrl (a sentence for the manager) unless the URL may be called; `socket.gaierror`
    when its name does not resolve now."""
    parts = urlsplit(str(url or ""))
    if private_urls_allowed():
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UnsafeUrl("The URL must start with https:// and name a host.")
        return
    if parts.scheme != "https" or not parts.hostname:
        raise UnsafeUrl("The URL must start with https:// and name a host.")
    try:
        port = parts.port or 443
    except ValueError:
        raise UnsafeUrl("The URL's port is not a number.") from None
    answers = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    if not answers or any(_inside(answer[4][0]) for answer in answers):
        raise UnsafeUrl("The URL leads to a private, loopback or link-local address; only public hosts may be "
                        "called (RECORD_ALLOW_PRIVATE_URLS is for a lab).")


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = settings.RECORD_HTTP_TRUST_ENV
    return s


def send(sess: requests.Session, method: str, url: str, *, ok=(200, 201), **kwargs) -> requests.Response:
    """One call; answers in `ok` come back, everything else raises our error (ids only in logs)."""
    kwargs.setdefault("timeout", settings.RECORD_HTTP_TIMEOUT_SECONDS)
    kwargs.setdefault("allow_redirects", False)
    try:
        check_url(url)
    except UnsafeUrl as exc:
        logger.warning("record call %s refused: unsafe URL", method)
        raise RecordRejected(f"{method} {urlsplit(url).hostname or '?'}: {exc}") from None
    except (socket.gaierror, UnicodeError) as exc:
        logger.warning("record call %s failed: the host does not resolve", method)
        raise RecordUnavailable(f"{method} {urlsplit(url).hostname or '?'}: the host does not resolve") from exc
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
