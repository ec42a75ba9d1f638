"""A Square practice's notices. At Square a tier change "now" is the old subscription cancelled at
the end of its paid period and a new one on the new plan starting that day
(`integrations/processors/square_tier_change.py`): while the change is on its way, Square may
already report the old subscription as ending before the membership names the new one. A notice
that goes in that moment is withdrawn ("does not renew"); once the membership is on the new
subscription it is planned again and goes once, at the new tier's price. A Square membership
really ending at the period end gets no "renews on" notice."""

from datetime import timedelta

import pytest

from billing.models import MemberNotice, NoticeKind, NoticeStatus, ProcessorSubscription
from integrations.messaging import sms
from memberships import services
from memberships.models import Membership

from ..factories import TierFactory
from .test_notices import BOUNDARY, T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
SYSTEM = services.Actor.system()


@pytest.fixture
def square_practice(notice_practice):
    notice_practice.processor = "square"
    notice_practice.save()
    return notice_practice


def _on_subscription(membership, ref, **state):
    Membership.objects.filter(pk=membership.pk).update(processor_subscription_id=ref)
    ProcessorSubscription.objects.update_or_create(
        processor="square", processor_subscription_id=ref,
        defaults=dict(membership=membership, status="active", current_period_end=BOUNDARY,
                      updated_at=T0 - timedelta(days=1), **state))


def renewals(membership):
    return [m.body for m in sms.outbox if m.to == membership.member.phone and "renews" in m.body]


def test_a_square_tier_change_now_caught_half_way_is_announced_once_at_the_new_price(enroll, square_practice):  # noqa: F811
    luxe = TierFactory(practice=square_practice, code="luxe", name="Luxe", price_cents=34900)
    membership = enroll()
    _on_subscription(membership, "sq_old")
    run(T0 + timedelta(hours=13))                              # planned at night
    services.change_tier(membership=Membership.objects.get(pk=membership.pk), new_tier=luxe, effective="now",
                         actor=SYSTEM, idempotency_key="to-luxe", now=T0 + timedelta(hours=20))
    # Square has cancelled the old subscription at its period end; the membership still names it.
    ProcessorSubscription.objects.filter(processor_subscription_id="sq_old").update(cancel_at_period_end=True)
    morning = T0 + timedelta(days=1)
    run(morning)
    assert renewals(membership) == []
    assert MemberNotice.objects.get(membership=membership, kind=NoticeKind.UPCOMING_CHARGE).status == \
        NoticeStatus.WITHDRAWN
    _on_subscription(membership, "sq_new")                     # the change reached Square: the new one
    for hours in (1, 2, 3):
        run(morning + timedelta(hours=hours))
    assert len(renewals(membership)) == 1 and "renews on Jan 10 for $349.00" in renewals(membership)[0]


def test_a_square_membership_ending_at_the_period_end_is_not_told_it_renews(enroll, square_practice):  # noqa: F811
    ending = enroll()
    _on_subscription(ending, "sq_ending", cancel_at_period_end=True)
    run(T0)
    run(T0 + timedelta(hours=5))
    assert renewals(ending) == []
    assert not MemberNotice.objects.filter(membership=ending, kind=NoticeKind.UPCOMING_CHARGE).exists()
