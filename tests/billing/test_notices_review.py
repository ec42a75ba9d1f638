"""Member notices and their dashboard lines, in the cases a first reading missed: a member whose
subscription ends (or stops collecting) at the renewal is not told "your membership renews on …";
a redemption undone after the boundary did not use the credit in time; the dashboard's months are
the practice's months, not the site's."""

from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from billing.metrics.nudges import nudge_effect
from billing.models import ChannelStatus, MemberNotice, NoticeKind, NoticeStatus, ProcessorSubscription
from integrations.messaging import sms
from memberships import services
from memberships.models import LedgerEntry, Location, Member, Membership

from .test_notices import BOUNDARY, T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc


def _subscription(membership, **state):
    Membership.objects.filter(pk=membership.pk).update(processor_subscription_id=f"sub_{membership.pk}")
    return ProcessorSubscription.objects.create(
        membership=membership, processor="stripe", processor_subscription_id=f"sub_{membership.pk}", status="active",
        amount_cents=19900, current_period_end=BOUNDARY, updated_at=T0 - timedelta(days=1), **state)


def _subjects(membership):
    return sorted(m.subject for m in mail.outbox if m.to == [membership.member.email])


@pytest.mark.parametrize("state", [{"cancel_at_period_end": True}, {"collection_paused": True}],
                         ids=["cancels at period end", "collection paused"])
def test_no_renewal_notice_when_the_processor_will_not_charge_at_the_boundary(enroll, state):  # noqa: F811
    ending, renewing = enroll(), enroll()
    _subscription(ending, **state)
    _subscription(renewing)
    run(T0)
    assert _subjects(renewing) == ["Glow Aesthetics: membership benefits that expire on Jan 10",
                                   "Glow Aesthetics: your membership renews on Jan 10"]
    assert _subjects(ending) == ["Glow Aesthetics: membership benefits that expire on Jan 10"]
    assert not any("renews" in m.body for m in sms.outbox if m.to == ending.member.phone)
    assert not MemberNotice.objects.filter(membership=ending, kind=NoticeKind.UPCOMING_CHARGE).exists()


def test_a_cancellation_at_period_end_after_the_notice_was_queued_stops_it(enroll):  # noqa: F811
    membership = enroll()
    sub = _subscription(membership)
    night = T0 + timedelta(hours=13)                            # queued at night: waits for the morning
    run(night)
    sub.cancel_at_period_end = True
    sub.save()
    run(T0 + timedelta(days=1))
    assert _subjects(membership) == ["Glow Aesthetics: membership benefits that expire on Jan 10"]
    notice = MemberNotice.objects.get(membership=membership, kind=NoticeKind.UPCOMING_CHARGE)
    assert (notice.status, notice.email_status, notice.sms_status) == (
        NoticeStatus.WITHDRAWN, ChannelStatus.SKIPPED, ChannelStatus.SKIPPED)
    assert "does not renew" in notice.note


def test_a_redemption_undone_after_the_boundary_did_not_use_the_credit_in_time(enroll, glow):  # noqa: F811
    tier, facial, credit = glow
    membership = enroll()
    run(T0)                                                    # told that $50 of credit expires Jan 10
    entry = services.redeem_entitlement(membership=membership, service=credit, quantity=5000,
                                        actor=services.Actor.system(), idempotency_key="all-50",
                                        now=T0 + timedelta(days=1))
    services.refill_entitlements(membership=membership, cycle_key="renew", actor=services.Actor.processor(),
                                 now=BOUNDARY)
    services.reverse_entry(entry=entry, actor=services.Actor.system(), reason="entered by mistake",
                           idempotency_key="undo", now=BOUNDARY + timedelta(days=2))

    effect = nudge_effect(practice_id=membership.member.practice_id, now=BOUNDARY + timedelta(days=3), months=2)
    january = next(m for m in effect.months if m.month.month == 1)
    expired = -sum(LedgerEntry.objects.filter(kind="expire", service=credit).values_list("quantity", flat=True))
    assert expired == 5000                                     # the credit came back after the boundary and expired
    assert (january.nudged_cents, january.used_cents, january.expired_cents) == (5000, 0, 5000)
    assert january.share_display == "0%"


def test_the_notice_months_are_the_practice_months(enroll, notice_practice, settings):  # noqa: F811
    """A New York practice on a Los Angeles site: at 01:30 on Feb 1 in New York (Jan 31 in Los
    Angeles) the series ends with February, and a boundary of Jan 31, 23:30 New York is January's."""
    settings.TIME_ZONE = "America/Los_Angeles"
    notice_practice.timezone = "America/New_York"
    notice_practice.save()
    membership = enroll()
    ny = ZoneInfo("America/New_York")
    boundary = datetime(2026, 1, 31, 23, 30, tzinfo=ny)
    Membership.objects.filter(pk=membership.pk).update(current_period_end=boundary)
    run(datetime(2026, 1, 26, 10, 0, tzinfo=ny))
    assert MemberNotice.objects.get(membership=membership, kind=NoticeKind.EXPIRING_CREDIT).status == NoticeStatus.SENT

    effect = nudge_effect(practice_id=notice_practice.pk, now=datetime(2026, 2, 1, 1, 30, tzinfo=ny), months=2,
                          zone=ny)
    assert [(m.month.isoformat(), m.notices) for m in effect.months] == [("2026-01-01", 1), ("2026-02-01", 0)]


def test_a_member_who_moves_to_a_clinic_in_another_zone_is_not_told_twice(enroll, notice_practice):  # noqa: F811
    """The renewal at 06:00 UTC is Jan 9 in Los Angeles and Jan 10 in New York: a member told in
    Los Angeles whose home becomes the New York clinic before it is not told again."""
    membership = enroll()
    Membership.objects.filter(pk=membership.pk).update(current_period_end=datetime(2026, 1, 10, 6, 0, tzinfo=UTC))
    run(T0)
    assert _subjects(membership) == ["Glow Aesthetics: membership benefits that expire on Jan 9",
                                     "Glow Aesthetics: your membership renews on Jan 9"]
    east = Location.objects.create(practice=notice_practice, name="Manhattan", timezone="America/New_York")
    Member.objects.filter(pk=membership.member_id).update(home_location=east)
    run(T0 + timedelta(days=1))
    assert len(_subjects(membership)) == 2
    assert MemberNotice.objects.filter(membership=membership).count() == 2


def test_a_notice_queued_before_the_member_moved_zone_still_goes(enroll, notice_practice):  # noqa: F811
    membership = enroll()
    Membership.objects.filter(pk=membership.pk).update(current_period_end=datetime(2026, 1, 10, 6, 0, tzinfo=UTC))
    run(T0 + timedelta(hours=13))                              # 23:00 in Los Angeles: queued for the morning
    east = Location.objects.create(practice=notice_practice, name="Manhattan", timezone="America/New_York")
    Member.objects.filter(pk=membership.member_id).update(home_location=east)
    run(T0 + timedelta(days=1))
    assert _subjects(membership) == ["Glow Aesthetics: membership benefits that expire on Jan 9",
                                     "Glow Aesthetics: your membership renews on Jan 9"]
    assert set(MemberNotice.objects.values_list("status", flat=True)) == {NoticeStatus.SENT}


def test_planning_queries_do_not_grow_with_the_members(enroll):  # noqa: F811
    """The check of the processor's subscriptions is one query per batch, not one per member."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.notices import plan_notices

    def planned_with(n, now):
        for _ in range(n):
            membership = enroll()
            _subscription(membership)
        with CaptureQueriesContext(connection) as queries:
            plan_notices(now=now)
        return len(queries)

    few = planned_with(2, T0)
    MemberNotice.objects.all().delete()
    many = planned_with(8, T0 + timedelta(hours=1))
    assert many == few
    assert MemberNotice.objects.count() == 2 * 10


def test_the_renewal_amount_is_the_home_clinic_price_of_the_tier_it_renews_into(enroll, notice_practice, glow):  # noqa: F811
    from memberships.models import TierLocationPrice
    from tests.factories import TierFactory

    south = Location.objects.create(practice=notice_practice, name="South")
    luxe = TierFactory(practice=notice_practice, code="luxe", name="Luxe", price_cents=29900)
    TierLocationPrice.objects.create(tier=glow[0], location=south, price_cents=17900)
    TierLocationPrice.objects.create(tier=luxe, location=south, price_cents=32900)
    staying, moving = enroll(), enroll()
    for membership in (staying, moving):
        Member.objects.filter(pk=membership.member_id).update(home_location=south)
        membership.refresh_from_db()
    # Both pay South's prices (a member priced at the list price keeps list prices into the new tier).
    Membership.objects.filter(pk__in=[staying.pk, moving.pk]).update(price_location=south)
    moving.refresh_from_db()
    moving = services.change_tier(membership=moving, new_tier=luxe, effective="next_cycle",
                                  actor=services.Actor.system(), idempotency_key="to-luxe", now=T0 - timedelta(hours=1))
    run(T0)
    amounts = dict(MemberNotice.objects.filter(kind=NoticeKind.UPCOMING_CHARGE).values_list("membership_id",
                                                                                          "amount_cents"))
    assert amounts == {staying.pk: 17900, moving.pk: 32900}
    assert any("renews on Jan 10 for $329.00" in m.body for m in sms.outbox if m.to == moving.member.phone)


def test_the_demo_history_names_the_home_clinic_price(enroll, notice_practice, glow):  # noqa: F811
    from billing.notices.history import record_notice_history
    from memberships.models import TierLocationPrice

    south = Location.objects.create(practice=notice_practice, name="South")
    TierLocationPrice.objects.create(tier=glow[0], location=south, price_cents=17900)
    membership = enroll()
    Membership.objects.filter(pk=membership.pk).update(price_location=south)
    membership.refresh_from_db()
    made = record_notice_history(membership=membership, boundary=BOUNDARY)
    assert [n.amount_cents for n in made if n.kind == NoticeKind.UPCOMING_CHARGE] == [17900]
