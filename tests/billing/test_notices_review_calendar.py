"""Notices on the member's calendar: the practice's notice days changed after notices were planned;
practices in Pacific/Honolulu and Asia/Tokyo, whose renewal falls on another date than in UTC; a
renewal on Feb 29 and on Feb 28 after a Jan 31 start; a renewal the week the clocks change."""

from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from billing.models import MemberNotice, NoticeKind, NoticeStatus
from billing.notices.timing import update_notice_settings
from integrations.messaging import sms
from memberships import services
from memberships.models import Membership

from .test_notices import T0, enroll, messaging, notice_practice, run  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db
UTC = dt_timezone.utc


def texts(membership):
    return [m.body for m in sms.outbox if m.to == membership.member.phone]


def test_notices_planned_at_seven_days_wait_when_the_practice_moves_to_three(enroll, notice_practice, manager):  # noqa: F811
    """Planned at 23:00 on Jan 5 (5 days before Jan 10, due at 7), held by quiet hours; at 07:00 the
    manager moves both notices to 3 days before. Nothing goes that morning; both go once on Jan 7."""
    membership = enroll()
    run(T0 + timedelta(hours=13))
    update_notice_settings(practice=notice_practice, upcoming_charge_days=3, expiring_credit_days=3,
                           actor=services.Actor.staff(manager), now=T0 + timedelta(hours=21))
    run(T0 + timedelta(days=1))                                # Jan 6, 10:00: 4 days before
    assert texts(membership) == [] and not mail.outbox
    assert set(MemberNotice.objects.values_list("status", flat=True)) == {NoticeStatus.WITHDRAWN}
    assert all("3 days before" in note for note in MemberNotice.objects.values_list("note", flat=True))
    for hours in (0, 1, 5):                                    # Jan 7, 10:00 onwards: 3 days before
        run(T0 + timedelta(days=2, hours=hours))
    assert len(texts(membership)) == 2 and len(mail.outbox) == 2
    assert set(MemberNotice.objects.values_list("status", flat=True)) == {NoticeStatus.SENT}


@pytest.mark.parametrize("zone, renewal, planned, expect", [
    # 22:00 on Jan 9 in Honolulu is Jan 10 in UTC: the member reads Jan 9.
    ("Pacific/Honolulu", datetime(2026, 1, 10, 8, 0, tzinfo=UTC), datetime(2026, 1, 2, 0, 5), "Jan 9"),
    # 00:30 on Jan 11 in Tokyo is still Jan 10 in UTC: the member reads Jan 11.
    ("Asia/Tokyo", datetime(2026, 1, 10, 15, 30, tzinfo=UTC), datetime(2026, 1, 4, 0, 5), "Jan 11"),
    ("America/Los_Angeles", datetime(2028, 2, 29, 18, 0, tzinfo=UTC), datetime(2028, 2, 22, 0, 5), "Feb 29"),
    ("America/Los_Angeles", datetime(2027, 2, 28, 18, 0, tzinfo=UTC), datetime(2027, 2, 21, 0, 5), "Feb 28"),
    # The clocks go forward on Mar 8 2026 in Los Angeles, between the notice and the renewal.
    ("America/Los_Angeles", datetime(2026, 3, 10, 17, 0, tzinfo=UTC), datetime(2026, 3, 3, 0, 5), "Mar 10"),
    # ... and back on Nov 1 2026.
    ("America/Los_Angeles", datetime(2026, 11, 3, 18, 0, tzinfo=UTC), datetime(2026, 10, 27, 0, 5), "Nov 3"),
])
def test_a_notice_planned_after_local_midnight_leaves_after_quiet_hours_with_the_local_date(
        enroll, notice_practice, zone, renewal, planned, expect):  # noqa: F811
    notice_practice.timezone = zone
    notice_practice.save()
    membership = enroll()
    Membership.objects.filter(pk=membership.pk).update(current_period_end=renewal)
    local = ZoneInfo(zone)
    run(planned.replace(tzinfo=local) - timedelta(minutes=10))  # the day before: not due yet
    assert not MemberNotice.objects.exists()
    run(planned.replace(tzinfo=local))                          # just after midnight: planned, quiet
    assert MemberNotice.objects.filter(membership=membership).count() == 2 and not sms.outbox
    run(planned.replace(tzinfo=local, hour=7, minute=59))
    assert not sms.outbox
    run(planned.replace(tzinfo=local, hour=8, minute=0))
    assert len(texts(membership)) == 2
    assert all(f"on {expect} " in body for body in texts(membership))
    assert MemberNotice.objects.get(membership=membership, kind=NoticeKind.UPCOMING_CHARGE).status == NoticeStatus.SENT
