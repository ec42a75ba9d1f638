"""The membership summary written into Zenoti names the last refill by the practice's calendar day:
a refill at 22:00 on Jan 31 in Honolulu (08:00 UTC on Feb 1) is Jan 31's there."""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

import pytest

from integrations.records.selectors import member_state
from integrations.records.zenoti import _summary_text
from memberships.models import Membership
from tests.factories import active_membership

pytestmark = pytest.mark.django_db


def test_zenoti_summary_names_the_last_refill_by_the_practice_s_day(practice, glow):
    practice.timezone = "Pacific/Honolulu"
    practice.save(update_fields=["timezone"])
    membership = active_membership(tier=glow[0])
    Membership.objects.filter(pk=membership.pk).update(
        last_refill_at=datetime(2026, 2, 1, 8, 0, tzinfo=dt_timezone.utc))
    text = _summary_text(member_state(member=membership.member), practice=practice)
    assert "Last refill 2026-01-31" in text
