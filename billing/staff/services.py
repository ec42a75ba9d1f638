"""Writes of the manager pages."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from memberships.errors import IllegalTransition
from memberships.models import EventKind, Membership, MembershipStatus
from memberships.services import Actor, record_event

from .queue import CONTACTED


@transaction.atomic
def mark_contacted(*, membership: Membership, actor: Actor, now: datetime, channel: str = "phone") -> None:
    """Note on the member's timeline that staff reached out about the declined card."""
    locked = Membership.objects.select_for_update(of=("self",)).select_related("member").get(pk=membership.pk)
    if locked.status != MembershipStatus.PAST_DUE:
        raise IllegalTransition("This membership is no longer past due.")
    record_event(membership=locked, kind=EventKind.NOTE, summary=f"Contacted about the declined card ({channel})",
                 payload={"dunning": CONTACTED, "channel": channel}, actor=actor, now=now)
