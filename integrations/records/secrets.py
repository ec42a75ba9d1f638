"""The record's webhook secret, the practice's or a location's own: replaced or removed by a manager
in the admin, one audit row per change (ids and what happened; never the secret)."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from memberships.models import Location, Practice
from memberships.services.common import Actor, write_audit


@transaction.atomic
def set_record_webhook_secret(*, owner: Practice | Location, secret: str, actor: Actor,
                              now: datetime) -> Practice | Location:
    """The door: `owner`'s record webhooks are verified with `secret` from now on (empty: none, so
    every webhook of that record is refused). A location's secret is its own: the practice's never
    verifies that location's webhooks. Writes the audit row; saving the same secret again writes
    nothing."""
    owner = type(owner).objects.select_for_update().get(pk=owner.pk)
    if owner.record_webhook_secret == secret:
        return owner
    had = bool(owner.record_webhook_secret)
    owner.record_webhook_secret = secret
    owner.save(update_fields=["record_webhook_secret"])
    is_location = isinstance(owner, Location)
    write_audit(actor=actor, now=now, obj=owner,
                action=("record_webhook_secret_removed" if not secret
                        else "record_webhook_secret_replaced" if had else "record_webhook_secret_set"),
                detail={"practice_id": owner.practice_id if is_location else owner.pk,
                        "location_id": owner.pk if is_location else None})
    return owner
