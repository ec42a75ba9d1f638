"""Rollout per location: each clinic turns automation on at its own pace. Two members of one practice
at two locations — one location observing, one at the dunning stage — fail a payment: only the second
gets the card-update SMS; the first's is held back ("would have …") and the rollout page shows it under
its location. Moving a location's stage is the manager's, audited, one step up at a time."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.urls import reverse

from billing import dunning
from billing.models import DunningMessage, MessageChannel, MessageStatus
from billing.rollout.locations import set_location_stage
from integrations import outbox
from integrations.messaging import sms
from memberships import services
from memberships.errors import IllegalTransition
from memberships.models import AuditLog, AutomationStage, Location
from memberships.services.stages import effective_stage, stage_at_least_for
from tests.factories import MemberFactory, active_membership

# Yesterday at 18:00 UTC (10:00 or 11:00 in Los Angeles: no quiet hours), within the page's 30 days.
T0 = (datetime.now(dt_timezone.utc) - timedelta(days=1)).replace(hour=18, minute=0, second=0, microsecond=0)


@pytest.fixture(autouse=True)
def fake_channels(settings):
    settings.DUNNING_PROCESSOR = "tests.billing.fakes.FakeProcessor"
    settings.SMS_BACKEND = "locmem"
    settings.PUBLIC_BASE_URL = "https://ledger.example.com"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


def _member_at(location, tier, phone):
    member = MemberFactory(practice=tier.practice, home_location=location, phone=phone,
                           processor_customer_id="cus_test")
    return active_membership(tier=tier, member=member, now=T0 - timedelta(days=30))


def _fail_and_run(*memberships):
    for i, membership in enumerate(memberships):
        dunning.open_case_for_failure(membership=membership, invoice_ref=f"in_{i}", amount_cents=19900,
                                      currency="usd", decline_code="insufficient_funds", now=T0)
    for _ in range(5):
        dunning.run_dunning(now=T0)
        outbox.dispatch_due(now=T0)


# (practice stage, North's own stage, South's own stage): North observes, South runs dunning —
# a location behind its practice, and a location ahead of it.
SHAPES = {
    "behind the practice": (AutomationStage.DUNNING, AutomationStage.OBSERVE, ""),
    "ahead of the practice": (AutomationStage.OBSERVE, "", AutomationStage.DUNNING),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_card_update_sms_goes_only_where_the_members_location_runs_dunning(shape, client, manager, practice, glow):
    practice_stage, north_stage, south_stage = SHAPES[shape]
    practice.automation_stage, practice.timezone = practice_stage, "America/Los_Angeles"
    practice.save(update_fields=["automation_stage", "timezone"])
    north = Location.objects.create(practice=practice, name="North clinic", automation_stage=north_stage)
    south = Location.objects.create(practice=practice, name="South clinic", automation_stage=south_stage)
    observing = _member_at(north, glow[0], "+14155550111")
    dunned = _member_at(south, glow[0], "+14155550122")
    assert effective_stage(practice, north) == AutomationStage.OBSERVE
    assert effective_stage(practice, south) == AutomationStage.DUNNING

    _fail_and_run(observing, dunned)

    assert [m.to for m in sms.outbox] == ["+14155550122"]         # only the member at the dunning clinic
    held = DunningMessage.objects.get(case__member=observing.member, channel=MessageChannel.SMS)
    sent = DunningMessage.objects.get(case__member=dunned.member, channel=MessageChannel.SMS)
    assert held.status == MessageStatus.SHADOWED and sent.status != MessageStatus.SHADOWED

    client.force_login(manager)
    page = client.get(reverse("mirror:rollout")).content.decode()
    north_block = page.split('id="location-%d"' % north.pk)[1].split('id="location-')[0]
    south_block = page.split('id="location-%d"' % south.pk)[1]
    would = f"would have: send the card-update SMS to member {observing.member_id}"
    assert would in north_block and "Observe (read-only mirror)" in north_block, north_block
    assert f"to member {dunned.member_id}" not in page                  # it was sent: nothing held back
    assert "Dunning (member messages, payment retries)" in south_block


def test_deliveries_follow_the_home_locations_stage(practice, glow):
    """The outbox: a chart write for a member whose clinic observes is shadowed, for one whose clinic
    runs alerts it is attempted; the processor call of an enrollment needs tier sync at the member's
    clinic, even when the practice is at tier sync."""
    practice.record_adapter = "webhook"
    practice.record_config = {"outbound_url": "https://127.0.0.1:9/none"}
    practice.automation_stage = AutomationStage.TIER_SYNC
    practice.save(update_fields=["record_adapter", "record_config", "automation_stage"])
    north = Location.objects.create(practice=practice, name="North", automation_stage=AutomationStage.OBSERVE)
    south = Location.objects.create(practice=practice, name="South")
    quiet, synced = (MemberFactory(practice=practice, home_location=north),
                     MemberFactory(practice=practice, home_location=south))
    for member in (quiet, synced):
        services.enroll_member(member=member, tier=glow[0], actor=services.Actor.system(),
                               idempotency_key=f"enroll-{member.pk}", now=T0)
    from integrations.models import Delivery, DeliveryStatus

    outbox.dispatch_due(now=T0)
    statuses = {(d.event.member_id, d.destination): d.status for d in Delivery.objects.select_related("event")}
    assert statuses[(quiet.pk, "record")] == DeliveryStatus.SHADOWED
    assert statuses[(quiet.pk, "processor")] == DeliveryStatus.SHADOWED
    assert statuses[(synced.pk, "record")] != DeliveryStatus.SHADOWED
    assert statuses[(synced.pk, "processor")] != DeliveryStatus.SHADOWED
    assert Delivery.objects.get(event__member=quiet, destination="record").note.startswith("would have: ")


def test_a_locations_stage_moves_one_step_up_at_a_time_back_any_time_and_is_audited(practice, manager):
    clinic = Location.objects.create(practice=practice, name="New clinic")
    actor = services.Actor.staff(manager)
    with pytest.raises(IllegalTransition, match="one stage at a time"):
        set_location_stage(location=clinic, stage=AutomationStage.DUNNING, actor=actor, now=T0)
    set_location_stage(location=clinic, stage=AutomationStage.ALERTS, actor=actor, now=T0)
    set_location_stage(location=clinic, stage=AutomationStage.DUNNING, actor=actor, now=T0)
    member = MemberFactory(practice=practice, home_location=Location.objects.get(pk=clinic.pk))
    assert stage_at_least_for(member, AutomationStage.DUNNING)
    assert not practice.stage_at_least(AutomationStage.ALERTS)          # the practice still observes
    set_location_stage(location=clinic, stage="", actor=actor, now=T0)   # follow the practice again
    member.home_location.refresh_from_db()
    assert not stage_at_least_for(member, AutomationStage.ALERTS)
    with pytest.raises(IllegalTransition, match="already follows"):
        set_location_stage(location=clinic, stage="", actor=actor, now=T0)
    moves = list(AuditLog.objects.filter(action="location_automation_stage_changed", object_id=str(clinic.pk))
                 .order_by("id").values_list("detail__from", "detail__to", "user_id"))
    assert moves == [("observe", "alerts", manager.pk), ("alerts", "dunning", manager.pk),
                     ("dunning", "observe", manager.pk)]


def test_only_a_manager_of_the_practice_moves_a_locations_stage(client, manager, front_desk, practice):
    from memberships.roles import MANAGER
    from tests.factories import PracticeFactory, staff_user

    clinic = Location.objects.create(practice=practice, name="North")
    url = reverse("mirror:rollout_location_stage", args=[clinic.pk])
    client.force_login(front_desk)
    assert client.post(url, {"stage": "alerts", "confirm": "1"}).status_code == 403
    other = staff_user(MANAGER, PracticeFactory(slug="elsewhere"))
    client.force_login(other)
    assert client.post(url, {"stage": "alerts", "confirm": "1"}).status_code == 404
    client.force_login(manager)
    page = client.post(url, {"stage": "alerts"}, follow=True).content.decode()
    assert "Tick the confirmation" in page
    assert Location.objects.get(pk=clinic.pk).automation_stage == ""
    page = client.post(url, {"stage": "alerts", "confirm": "1"}, follow=True).content.decode()
    assert "North: automation stage is now Alerts" in page
    assert Location.objects.get(pk=clinic.pk).automation_stage == AutomationStage.ALERTS
    assert client.post(url, {"stage": ""}, follow=True).status_code == 200       # back: no confirmation
    assert Location.objects.get(pk=clinic.pk).automation_stage == ""


def test_a_message_queued_before_its_location_moved_back_is_held_back_not_left_pending(practice, glow):
    """Queued while the clinic ran dunning, then the clinic went back to observing before the outbox
    ran: nothing is sent and the message reads as held back ("shadowed"), not pending for ever."""
    practice.automation_stage, practice.timezone = AutomationStage.DUNNING, "America/Los_Angeles"
    practice.save(update_fields=["automation_stage", "timezone"])
    south = Location.objects.create(practice=practice, name="South clinic")
    membership = _member_at(south, glow[0], "+14155550133")
    dunning.open_case_for_failure(membership=membership, invoice_ref="in_q", amount_cents=19900, currency="usd",
                                  decline_code="insufficient_funds", now=T0)
    dunning.run_dunning(now=T0)
    queued = DunningMessage.objects.filter(case__member=membership.member)
    assert queued.exists() and {m.status for m in queued} == {MessageStatus.PENDING}

    Location.objects.filter(pk=south.pk).update(automation_stage=AutomationStage.OBSERVE)
    outbox.dispatch_due(now=T0)

    assert sms.outbox == []
    assert {m.status for m in queued.all()} == {MessageStatus.SHADOWED}
