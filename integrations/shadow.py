"""The shadow log for the rollout page: deliveries the stage held back, each with the stage its
destination needs (only the outbox knows that) and its member's home location."""

from __future__ import annotations

from datetime import datetime

from billing.rollout.stages import ShadowEntry

from .models import Delivery, DeliveryStatus
from .outbox import registered


def shadow_entries(*, practice_id: int, since: datetime, limit: int = 5000) -> list[ShadowEntry]:
    destinations = registered()
    rows = (Delivery.objects.filter(practice_id=practice_id, status=DeliveryStatus.SHADOWED, created_at__gte=since)
            .select_related("event__member").order_by("-created_at", "-id")[:limit])
    entries = []
    for delivery in rows:
        destination = destinations.get(delivery.destination)
        stage = destination.required_stage(delivery.event) if destination is not None else ""
        member = delivery.event.member
        entries.append(ShadowEntry(at=delivery.created_at, destination=delivery.destination, stage=stage,
                                   note=delivery.note, member_id=delivery.event.member_id,
                                   location_id=member.home_location_id if member is not None else None))
    return entries
