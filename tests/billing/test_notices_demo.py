"""The demo practice shows notice history: sent notices before members' last renewals, on their
timeline, and a dashboard line of credit used in time that agrees with the ledger."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.metrics.nudges import nudge_effect
from billing.models import MemberNotice, NoticeKind, NoticeStatus
from memberships.models import Event, EventKind

pytestmark = pytest.mark.django_db


def test_the_demo_has_notice_history_the_dashboard_can_show(settings):
    call_command("seed_demo", members=30)
    sent = MemberNotice.objects.filter(status=NoticeStatus.SENT)
    assert sent.filter(kind=NoticeKind.UPCOMING_CHARGE).count() >= 10
    expiring = list(sent.filter(kind=NoticeKind.EXPIRING_CREDIT))
    assert expiring and all(notice.nudged for notice in expiring)
    assert not MemberNotice.objects.filter(boundary_at__gt=timezone.now()).exists()   # history only
    assert Event.objects.filter(kind=EventKind.MESSAGE_SENT, summary__startswith="Upcoming-charge notice sent").count() \
        >= sent.filter(kind=NoticeKind.UPCOMING_CHARGE).count()
    effect = nudge_effect(practice_id=expiring[0].practice_id, now=timezone.now() + timedelta(seconds=1))
    total = effect.total
    assert total.notices == len(expiring) and total.nudged_cents > 0
    assert 0 < total.used_cents < total.nudged_cents              # some used in time, some expired
