"""SMS consent changes the member asked for (STOP / START, or the carrier's opt-out code): recorded
at once, each an Event. Contact data never goes into the event."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from memberships.models import EventKind, Member

from .common import Actor, record_event


@transaction.atomic
def record_sms_opt_out(*, member: Member, actor: Actor, now: datetime, source: str) -> Member:
    """No more SMS to this member until they opt back in. A repeat is a no-op."""
    locked = Member.objects.select_for_update().get(pk=member.pk)
    if locked.sms_opted_out_at is not None:
        return locked
    locked.sms_opted_out_at = now
    locked.save(update_fields=["sms_opted_out_at"])
    record_event(member=locked, kind=EventKind.SMS_OPTED_OUT, summary=f"SMS opt-out recorded ({source})",
                 payload={"source": source}, actor=actor, now=now)
    return locked


@transaction.atomic
def record_sms_opt_in(*, member: Member, actor: Actor, now: datetime, source: str) -> Member:
    """The member texted START (or similar): a STOP they sent earlier is lifted. It never gives
    consent by itself (TCPA): a member without consent on file stays without, and staff record
    consent the usual way. A member who was not opted out is left as is."""
    locked = Member.objects.select_for_update().get(pk=member.pk)
    if locked.sms_opted_out_at is None or not locked.sms_consent:
        return locked
    locked.sms_opted_out_at = None
    locked.save(update_fields=["sms_opted_out_at"])
    record_event(member=locked, kind=EventKind.SMS_OPTED_IN, summary=f"SMS opt-out lifted ({source})",
                 payload={"source": source}, actor=actor, now=now)
    return locked
