"""The member session: a key `portal_member_id` in a fresh session, separate from the staff login
(django.contrib.auth's user): a member session carries no user, so it never passes a staff
permission check, and a staff login never opens a member page. It ends after
PORTAL_SESSION_IDLE_MINUTES without a request (30 by default), or on "Sign out"."""

from __future__ import annotations

import functools
from datetime import datetime

from django.conf import settings
from django.shortcuts import redirect
from django.utils import timezone

from memberships.models import Member

MEMBER_KEY = "portal_member_id"
SEEN_KEY = "portal_seen"


def idle_seconds() -> int:
    return 60 * getattr(settings, "PORTAL_SESSION_IDLE_MINUTES", 30)


def start(request, member: Member, *, now: datetime) -> None:
    """A new session (any staff login in this browser ends) holding only the member's id."""
    request.session.flush()
    request.session[MEMBER_KEY] = member.pk
    request.session[SEEN_KEY] = now.timestamp()


def end(request) -> None:
    request.session.flush()


def member_of(request, *, now: datetime) -> Member | None:
    """The signed-in member, or None (no member session, idle too long, or a staff login)."""
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        return None
    member_id, seen = request.session.get(MEMBER_KEY), request.session.get(SEEN_KEY)
    if member_id is None or seen is None:
        return None
    if now.timestamp() - float(seen) > idle_seconds():
        end(request)
        return None
    member = Member.objects.select_related("practice").filter(pk=member_id).first()
    if member is None:
        end(request)
        return None
    request.session[SEEN_KEY] = now.timestamp()
    return member


def member_page(view):
    """A page of the member's own: without a live member session, to "Send me a link"."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        now = timezone.now()
        had_session = MEMBER_KEY in request.session
        member = member_of(request, now=now)
        if member is None:
            return redirect("portal:me:link_expired" if had_session else "portal:me:link")
        return view(request, member, *args, now=now, **kwargs)

    wrapped.member_page = True
    return wrapped
