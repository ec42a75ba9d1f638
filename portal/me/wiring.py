"""What the member page plugs in when the app is ready: the outbox destination sending its links."""

from __future__ import annotations


def connect() -> None:
    from integrations.outbox import register

    from .delivery import MemberLinkDestination

    register(MemberLinkDestination())
