"""What staff do from the dunning queue page, each its one door: the case's change (through `cases`
and `messages`) and its audit row in one transaction. The actor carries the request's address."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing.models import DunningCase, DunningMessage
from memberships.services import Actor
from memberships.services.common import write_audit

from . import cases, messages


@transaction.atomic
def record_member_contacted(*, case: DunningCase, actor: Actor, note: str, now: datetime) -> DunningCase:
    """Staff reached the member (a call, at the desk): noted on the timeline and audited."""
    case = cases.mark_contacted(case, actor, note, now)
    write_audit(actor=actor, action="dunning_contacted", obj=case, member=case.member, now=now,
                detail={"case_id": case.pk})
    return case


@transaction.atomic
def resend_card_link(*, case: DunningCase, actor: Actor, now: datetime) -> list[DunningMessage]:
    """Send the member the card-update link again (email, and SMS with consent; quiet hours may hold
    the SMS until morning), audited. Raises CaseClosed, changing nothing, for a closed case."""
    made = messages.resend_card_link(case, actor, now)
    write_audit(actor=actor, action="dunning_card_link_resent", obj=case, member=case.member, now=now,
                detail={"case_id": case.pk, "messages": [m.pk for m in made]})
    return made
