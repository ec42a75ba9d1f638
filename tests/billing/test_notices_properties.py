"""Property: whatever the hours the scheduled run happens to run at — often, rarely, repeated, at
night — and whoever the members are (with or without consent, after STOP, without email, living in
another zone), each member gets each notice once per channel they may receive it on, or none when no
run fell in the notice window; and nothing is ever delivered in the member's quiet hours."""

from datetime import datetime, timedelta, timezone as dt_timezone
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import transaction
from django.db.models import Min
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import MemberNotice
from billing.notices import plan_notices
from integrations import outbox
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from memberships import services
from memberships.models import AutomationStage, Location, Membership

from ..factories import MemberFactory, PracticeFactory, active_membership, glow_tier

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
LA, NY = ZoneInfo("America/Los_Angeles"), ZoneInfo("America/New_York")
BOUNDARY = datetime(2026, 1, 12, 2, 0, tzinfo=UTC)          # Jan 11, 18:00 in Los Angeles, 21:00 in New York
START = BOUNDARY - timedelta(days=9)
SERIAL = count()

MEMBER = st.fixed_dictionaries({"consent": st.booleans(), "stopped": st.booleans(), "email": st.booleans(),
                                "east": st.booleans()})


@pytest.fixture(autouse=True)
def messaging(settings):
    settings.SMS_BACKEND = "locmem"
    settings.PUBLIC_BASE_URL = "https://ledger.example.com"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


def _practice():
    practice = PracticeFactory(slug=f"notices-{next(SERIAL)}", automation_stage=AutomationStage.NOTICES,
                               timezone="America/Los_Angeles")
    east = Location.objects.create(practice=practice, name="Manhattan", timezone="America/New_York")
    return practice, glow_tier(practice)[0], east


def _member(practice, tier, east, spec):
    member = MemberFactory(practice=practice, sms_consent=spec["consent"], home_location=east if spec["east"] else None,
                           **({} if spec["email"] else {"email": ""}))
    if spec["stopped"]:
        services.record_sms_opt_out(member=member, actor=services.Actor.system(), now=START, source="STOP")
        member.refresh_from_db()
    membership = active_membership(tier=tier, member=member, now=START - timedelta(days=20))
    Membership.objects.filter(pk=membership.pk).update(current_period_end=BOUNDARY)
    return member


def _drain(practice, until):
    """The outbox, run whenever something of this practice falls due, up to `until`."""
    while True:
        due = (Delivery.objects.filter(practice=practice, status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
               .aggregate(m=Min("next_attempt_at"))["m"])
        if due is None or due > until:
            return
        outbox.dispatch_due(now=due)


def _quiet(moment, zone) -> bool:
    hour = moment.astimezone(zone).hour
    return hour >= 21 or hour < 8


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.lists(MEMBER, min_size=1, max_size=3),
       runs=st.lists(st.integers(0, 9 * 24 - 1), min_size=0, max_size=6))
def test_any_run_schedule_sends_each_notice_once_never_at_night(members, runs):
    with transaction.atomic():                      # each example on its own: undone after it
        _example(members, runs)
        transaction.set_rollback(True)


def _example(members, runs):
    practice, tier, east = _practice()
    people = [(_member(practice, tier, east, spec), spec) for spec in members]
    mail.outbox.clear()
    sms.outbox.clear()
    moments = sorted(START + timedelta(hours=h) for h in runs + runs[:1])   # the first run repeated
    for moment in moments:
        plan_notices(now=moment)
        _drain(practice, moment)
    _drain(practice, BOUNDARY)

    for member, spec in people:
        zone = NY if spec["east"] else LA
        window = BOUNDARY.astimezone(zone).date() - timedelta(days=7)
        told = any(window <= moment.astimezone(zone).date() for moment in moments)
        texts = [m for m in sms.outbox if m.to == member.phone]
        emails = [m for m in mail.outbox if m.to == [member.email]] if member.email else []
        may_text = spec["consent"] and not spec["stopped"]
        assert len(texts) == (2 if told and may_text else 0), (spec, moments)
        assert len(emails) == (2 if told and spec["email"] else 0), (spec, moments)
        assert MemberNotice.objects.filter(member=member).count() == (2 if told else 0)
    delivered = Delivery.objects.filter(practice=practice, destination="member_notice",
                                        status=DeliveryStatus.DELIVERED).select_related("event__member__home_location")
    for delivery in delivered:
        zone = NY if delivery.event.member.home_location_id else LA
        assert not _quiet(delivery.finished_at, zone), delivery.finished_at
