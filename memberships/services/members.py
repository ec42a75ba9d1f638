"""Registering a new member from the front desk."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction

from memberships.errors import DuplicateMember, LedgerError
from memberships.models import EventKind, Member, Practice

from .common import Actor, record_event
from .idempotency import idempotent


def _next_member_number(practice: Practice, attempt: int) -> str:
    count = Member.objects.filter(practice=practice).count()
    return f"M{count + 1 + attempt:06d}"


def _check_names(*, first_name: str, last_name: str, **_) -> None:
    if not first_name.strip() or not last_name.strip():
        raise LedgerError("First and last name are required.")


@idempotent("create_member", check=_check_names)
def create_member(*, practice: Practice, first_name: str, last_name: str, email: str = "", phone: str = "",
                  sms_consent: bool = False, actor: Actor, idempotency_key: str, now: datetime) -> Member:
    """Register a member of `practice` with the next free member number. `phone` is E.164 (the form
    normalizes it). Replaying the key returns the first member."""
    first_name, last_name, email = first_name.strip(), last_name.strip(), email.strip().lower()
    if email and Member.objects.filter(practice=practice, email__iexact=email).exists():
        raise DuplicateMember("A member with this email already exists; search for them instead.")
    if phone and Member.objects.filter(practice=practice, phone=phone).exists():
        raise DuplicateMember("A member with this phone number already exists; search for them instead.")
    for attempt in range(20):
        try:
            with transaction.atomic():
                member = Member.objects.create(
                    practice=practice, member_number=_next_member_number(practice, attempt),
                    first_name=first_name, last_name=last_name, email=email, phone=phone,
                    sms_consent=sms_consent, sms_consent_at=now if sms_consent else None,
                )
            break
        except IntegrityError:
            continue
    else:  # pragma: no cover - twenty concurrent registrations in one practice
        raise LedgerError("Could not allocate a member number; try again.")
    record_event(member=member, kind=EventKind.NOTE, summary=f"Member {member.member_number} registered",
                 payload={"member_id": member.pk}, actor=actor, now=now)
    return member
