"""HTTP for the record adapters (only `integrations/` talks to the network): a session that never
goes through a proxy for local addresses, a timeout on every call, no redirects followed, and vendor
failures mapped to `RecordUnavailable` (retry later) and `RecordRejected` (a 4xx business answer).

Every URL we call is checked first (`check_url`, also run when a manager saves it in the admin):
https only, and its host must not resolve to a loopback, private, link-local, multicast or reserved
address (SSRF: a record URL that points at the cloud metadata service or an internal admin port is
refused). `RECORD_ALLOW_PRIVATE_URLS` lifts both rules for a lab or a test server on this machine.
The connection resolves the name once more, checks those answers and connects to the address it
checked (a name whose answer turns inward after the check — DNS rebinding — is refused, not called);
redirects are not followed, so a public server cannot bounce us inward. Through a proxy
(`RECORD_HTTP_TRUST_ENV`) the proxy resolves the name, so only the first check applies."""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

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
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None and _inside(str(ip.sixtofour)):
        return True
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
    public_address(parts.hostname, port)


def public_address(host: str, port: int) -> str:
    """The first address `host` resolves to, once every answer is known to be public (UnsafeUrl)."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not answers or any(_inside(answer[4][0]) for answer in answers):
        raise UnsafeUrl("The URL leads to a private, loopback or link-local address; only public hosts may be "
                        "called (RECORD_ALLOW_PRIVATE_URLS is for a lab).")
    return answers[0][4][0]


class _PinnedHTTPSConnection(HTTPSConnection):
    """Connects to the address it has just checked; TLS still verifies the name."""

    def _new_conn(self) -> socket.socket:
        if private_urls_allowed():
            return super()._new_conn()
        try:
            address = public_address(self._dns_host, self.port)
            return urllib3_connection.create_connection((address, self.port), self.timeout,
                                                        source_address=self.source_address,
                                                        socket_options=self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except socket.timeout as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class _PinnedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {**self.poolmanager.pool_classes_by_scheme,
                                                   "https": _PinnedHTTPSConnectionPool}


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = settings.RECORD_HTTP_TRUST_ENV
    s.mount("https://", _PinnedAdapter())
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
    except UnsafeUrl as exc:  # the name turned inward between the check and the connection
        logger.warning("record call %s refused: unsafe address at connect time", method)
        raise RecordRejected(f"{method} {urlsplit(url).hostname or '?'}: {exc}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        logger.warning("record call %s failed: %s", method, type(exc).__name__)
        raise RecordUnavailable(f"{method} {url}: {type(exc).__name__}") from exc
    if response.status_code in ok:
        return response
    detail = response.text[:500]
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUSES:
        raise RecordUnavailable(f"{method} {url}: HTTP {response.status_code} {detail}")
    raise RecordRejected(f"{method} {url}: HTTP {response.status_code} {detail}")
