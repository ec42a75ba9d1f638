"""django-q2 tasks of the member page (they take ids and read the clock once)."""

from __future__ import annotations

from django.utils import timezone

from . import links


def send_member_links(request_id: int) -> int:
    return len(links.send_links(request_id=request_id, now=timezone.now()))
