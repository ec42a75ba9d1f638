"""A practice's notice timing (days before the renewal, days before a boundary that expires credit):
read with the defaults for a practice that never set it, and changed through one door that writes
the audit row."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction

from memberships.models import Practice
from memberships.services import Actor
from memberships.services.common import audit_staff_change

from ..models import NoticeSettings

LIMITS = (1, 30)


def _check(name: str, value: int) -> None:
    if not isinstance(value, int) or not LIMITS[0] <= value <= LIMITS[1]:
        raise ValidationError({name: f"Enter a number of days from {LIMITS[0]} to {LIMITS[1]}."})


@transaction.atomic
def update_notice_settings(*, practice: Practice, upcoming_charge_days: int, expiring_credit_days: int, actor: Actor,
                           now: datetime) -> NoticeSettings:
    """Set the practice's notice days (each 1–30). The next run uses the new ones; a notice queued
    and not gone yet that is now early is withdrawn when it would leave and planned again on its new
    day (`sending.no_longer_due`). Raises ValidationError, changing nothing, for a value out of range."""
    _check("upcoming_charge_days", upcoming_charge_days)
    _check("expiring_credit_days", expiring_credit_days)
    Practice.objects.select_for_update().filter(pk=practice.pk).first()
    row, _ = NoticeSettings.objects.get_or_create(practice=practice)
    before = {"upcoming_charge_days": row.upcoming_charge_days, "expiring_credit_days": row.expiring_credit_days}
    row.upcoming_charge_days, row.expiring_credit_days = upcoming_charge_days, expiring_credit_days
    row.save(update_fields=["upcoming_charge_days", "expiring_credit_days"])
    audit_staff_change(actor=actor, action="notice_settings", obj=row, now=now,
                       detail={"before": before, "after": {"upcoming_charge_days": upcoming_charge_days,
                                                           "expiring_credit_days": expiring_credit_days}})
    return row
