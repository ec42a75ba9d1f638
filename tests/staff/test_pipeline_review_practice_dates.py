"""The dates the staff pages state — the renewal on the tier-change confirmation, the end of the paid
period on the cancel confirmation and on the cancelled chart's flag, the chart's next charge — are the
practice's calendar days, not UTC's nor the server's: a period that ends at 22:00 on Jan 31 in Honolulu
(08:00 UTC on Feb 1) ends on Jan 31 there, and the desk tells the member so."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.urls import reverse

from memberships.models import Membership
from tests.factories import TierFactory

from .test_lifecycle_pages import flow

pytestmark = pytest.mark.django_db

# 22:00 on Jan 31 in Honolulu (UTC-10, no daylight saving): already Feb 1 in UTC.
PERIOD_END = datetime(2026, 2, 1, 8, 0, tzinfo=dt_timezone.utc)


@pytest.fixture
def honolulu_member(member_with_glow):
    member, membership, *_ = member_with_glow
    practice = member.practice
    practice.timezone = "Pacific/Honolulu"
    practice.frozen_credit_usable_until_period_end = True
    practice.save(update_fields=["timezone", "frozen_credit_usable_until_period_end"])
    Membership.objects.filter(pk=membership.pk).update(current_period_start=PERIOD_END - timedelta(days=31),
                                                       current_period_end=PERIOD_END)
    return member, membership


@pytest.fixture
def desk(client, front_desk):
    client.force_login(front_desk)
    return client


def test_chart_states_the_next_charge_on_the_practice_s_day(desk, honolulu_member, time_machine):
    member, _ = honolulu_member
    time_machine.move_to(PERIOD_END - timedelta(days=5))
    chart = desk.get(reverse("memberships:chart", args=[member.pk])).content.decode()
    assert "on Jan 31, 2026" in chart
    assert "Feb 1, 2026" not in chart


def test_tier_change_at_the_renewal_names_the_practice_s_day(desk, honolulu_member, glow, time_machine):
    member, _ = honolulu_member
    time_machine.move_to(PERIOD_END - timedelta(days=5))
    other = TierFactory(practice=member.practice, code="lite", name="Lite", price_cents=9900)
    html, _, _ = flow(desk, reverse("memberships:change_tier", args=[member.pk]),
                      {"tier": other.pk, "effective": "next_cycle"})
    assert "until the renewal on Jan 31, 2026" in html


def test_cancel_states_the_end_of_the_paid_period_on_the_practice_s_day(desk, honolulu_member, time_machine):
    member, _ = honolulu_member
    time_machine.move_to(PERIOD_END - timedelta(days=5))
    html, done, _ = flow(desk, reverse("memberships:cancel", args=[member.pk]), {"reason": "moving away"})
    assert "usable until the paid period ends on Jan 31, 2026" in html
    chart = desk.get(done["Location"]).content.decode()
    assert "frozen balance usable until Jan 31, 2026" in chart
