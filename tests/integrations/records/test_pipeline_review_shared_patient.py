"""Two members linked to one patient of the record (a household's shared chart, a chart merged in the
record, a second link made by hand): a treatment for that patient is spent from neither member's
balance on a guess — it waits for staff as an unknown patient that says why — unless the event names
the member by number. The inbox's batch and one-by-one paths agree."""

from __future__ import annotations

import pytest
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundStatus, RecordException
from integrations.records import get_adapter
from integrations.records.inbound import process_inbound_event, receive_webhook
from memberships.models import AutomationStage, EntitlementBalance
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier

from .test_treatment_batch import state, store

pytestmark = pytest.mark.django_db


def household(slug):
    practice = PracticeFactory(slug=slug, record_adapter="webhook", record_webhook_secret="s" * 20,
                               automation_stage=AutomationStage.REDEMPTIONS,
                               record_config={"outbound_url": "https://record.example/hook"})
    tier, _, _ = glow_tier(practice)
    now = timezone.now()
    mother = active_membership(tier=tier, member=MemberFactory(practice=practice, record_patient_id="P-7"), now=now)
    daughter = active_membership(tier=tier, member=MemberFactory(practice=practice, record_patient_id="P-7"), now=now)
    return practice, {"mother": mother, "daughter": daughter}



def facials(membership):
    return EntitlementBalance.objects.get(membership=membership, service__code="hydrafacial").balance


def test_a_treatment_of_a_patient_two_members_share_is_spent_from_neither(settings):
    settings.INBOX_BATCH_SIZE = 100
    alone, alone_members = household("alone")
    alone_rows = store(alone, [("P-7", "treatment.completed", "A7", "hydrafacial", 1)], prefix="a")
    for pk in alone_rows:
        process_inbound_event(inbound_id=pk, now=timezone.now())
    swept, swept_members = household("swept")
    swept_rows = store(swept, [("P-7", "treatment.completed", "A7", "hydrafacial", 1)], prefix="s")
    assert inbox.process_due(now=timezone.now()) == {InboundStatus.PROCESSED: 1}

    assert state(swept, swept_members, swept_rows) == state(alone, alone_members, alone_rows)
    for members in (alone_members, swept_members):
        assert [facials(m) for m in members.values()] == [1, 1]
    [exception] = RecordException.objects.filter(practice=alone)
    assert exception.kind == "unknown_patient"
    assert "Several members are linked to this patient" in exception.detail


def test_the_member_number_names_which_of_them():
    practice, members = household("named")
    daughter = members["daughter"]
    payload = {"id": "evt_named", "type": "treatment.completed",
               "data": {"appointment_id": "A8", "patient_id": "P-7", "service_code": "hydrafacial",
                        "member_number": daughter.member.member_number}}
    row, _ = receive_webhook(webhook=get_adapter(practice).inbound_webhook(
        event_id="evt_named", event_type="treatment.completed", payload=payload), adapter_name="webhook",
        now=timezone.now())
    assert process_inbound_event(inbound_id=row.pk, now=timezone.now()) == "redeemed"
    assert (facials(members["mother"]), facials(daughter)) == (1, 0)
