"""A past-due member cancelled at the desk ("no further charges", the confirmation says) is chased no
more from that moment: her open dunning case ends with the cancellation, the "card declined" flag comes
off her chart and she leaves the dunning queue — they stayed until the case's next scheduled step, up
to days later, with the desk asked to phone a member who had left — and neither the text waiting for
the end of quiet hours nor a card she saves afterwards does anything."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing import dunning
from billing.dunning.selectors import open_dunning_cases
from billing.models import DunningCase, DunningCaseStatus
from memberships import selectors, services
from memberships.models import MembershipStatus

from .conftest import T0, fail, sms_to, walk

pytestmark = pytest.mark.django_db

# 22:00 in Los Angeles: inside the practice's quiet hours (21:00-08:00), so the day-0 text waits.
EVENING = T0 + timedelta(hours=12)


def test_cancelling_a_past_due_membership_at_the_desk_ends_its_chase_at_once(membership, front_desk, fake_processor):
    member = membership.member
    case = fail(membership, now=EVENING)
    walk(EVENING, EVENING)                         # the day-0 step: its text queued for 08:00
    assert sms_to(member) == []
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAST_DUE

    services.cancel_membership(membership=membership, actor=services.Actor.staff(front_desk), idempotency_key="bye",
                               now=EVENING + timedelta(hours=1), reason="moving away")

    assert DunningCase.objects.get(pk=case.pk).status == DunningCaseStatus.CANCELLED
    assert list(selectors.open_chart_flags(member=member)) == []
    assert [c for c in open_dunning_cases(member.practice_id) if c.member_id == member.pk] == []
    # The card she saves after cancelling pays nothing.
    assert dunning.retry_open_cases_after_card_update(member=member, payment_method_ref="pm_new",
                                                      now=EVENING + timedelta(hours=2)) == []
    # Morning: the text queued last night does not go.
    walk(EVENING + timedelta(hours=10), EVENING + timedelta(days=10))
    assert sms_to(member) == []
    assert fake_processor.charges == []                  # no payment retry was made
