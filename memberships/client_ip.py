"""The client's address, the one way every caller reads it: the login throttle (django-axes'
AXES_CLIENT_IP_CALLABLE), the audit log's ip_address and the actor of a staff change.

Behind N trusted proxies (`TRUSTED_PROXY_COUNT`), each proxy appends the address it received the
request from to X-Forwarded-For, so the client is the Nth address from the right: everything to the
left of it was written by the client itself and proves nothing. With 0 (the default: nothing in
front of the server) X-Forwarded-For is ignored and the address is the socket's, REMOTE_ADDR. A
request that did not pass through all N proxies (a shorter header) or carries a malformed one gets
REMOTE_ADDR too: never an address the client chose."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    remote = _valid(request.META.get("REMOTE_ADDR", "")) or None
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < proxies:
        return remote
    return _valid(forwarded[-proxies]) or remote


def _valid(address: str) -> str | None:
    """The address in its canonical form, or None when it is not one (a port, a name, garbage)."""
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None
