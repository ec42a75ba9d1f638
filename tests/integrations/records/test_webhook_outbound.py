"""The generic webhook adapter's outbound side (a signed POST per delivery to the practice's URL),
and the builtin chart, which gets no deliveries at all."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from werkzeug.wrappers import Response

from integrations import outbox
from integrations.models import Delivery, DeliveryStatus
from integrations.records import get_adapter
from integrations.records.base import sign
from memberships import services
from memberships.models import AutomationStage
from tests.factories import active_membership

from .conftest import SECRET


@pytest.fixture
def receiver(httpserver):
    received = []

    def handler(request):
        received.append(request)
        return Response("", status=receiver_status[0])

    receiver_status = [200]
    httpserver.expect_request("/zap", method="POST").respond_with_handler(handler)
    return httpserver, received, receiver_status


def test_builtin_chart_gets_no_record_deliveries(practice, glow):
    assert practice.record_adapter == "builtin"
    tier, _, _ = glow
    membership = active_membership(tier=tier)
    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd",
                           now=timezone.now())
    assert not Delivery.objects.filter(destination="record").exists()
    assert get_adapter(practice).read_patient_snapshot(membership.member) == {
        "tier": "glow", "status": "past_due", "flags": ["card_declined"]}


def test_each_change_is_one_signed_member_updated_post(on_adapter, glow, receiver):
    server, received, _ = receiver
    practice = on_adapter("webhook", stage=AutomationStage.ALERTS, outbound_url=server.url_for("/zap"))
    tier, facial, _ = glow
    now = timezone.now()
    membership = active_membership(tier=tier, now=now)
    services.mark_past_due(membership=membership, actor=services.Actor.processor(), idempotency_key="pd", now=now)
    outbox.dispatch_due(now=now)
    assert len(received) == 3  # enrolled, refilled, past due
    for request in received:
        body = request.get_data()
        assert request.headers["X-Medspa-Signature"] == sign(body, SECRET)
        assert request.headers["X-Medspa-Practice"] == practice.slug
    last = json.loads(received[-1].get_data())
    assert last["type"] == "member.updated"
    assert last["id"] == received[-1].headers["X-Medspa-Event-Id"]
    assert last["patient"]["member_number"] == membership.member.member_number
    assert last["membership"]["tier_code"] == "glow" and last["membership"]["status"] == "past_due"
    assert last["flag"] == {"active": True, "reason": "card_declined", "text": last["flag"]["text"],
                            "since": last["flag"]["since"]}
    [facial_line] = [line for line in last["entitlements"]["lines"] if line["service_code"] == "hydrafacial"]
    assert facial_line["balance"] == 1 and facial_line["rollover"] == "carry_over"
    # nothing clinical beyond the service codes the record already knows; no contact data
    assert membership.member.email not in received[-1].get_data().decode()
    assert membership.member.phone not in received[-1].get_data().decode()


def test_a_4xx_answer_fails_the_delivery_a_5xx_retries(on_adapter, glow, receiver):
    server, received, status = receiver
    on_adapter("webhook", stage=AutomationStage.ALERTS, outbound_url=server.url_for("/zap"))
    tier, _, _ = glow
    now = timezone.now()
    status[0] = 503
    active_membership(tier=tier, now=now)
    outbox.dispatch_due(now=now)
    assert set(Delivery.objects.filter(destination="record").values_list("status", flat=True)) == {DeliveryStatus.RETRYING}
    status[0] = 410
    outbox.dispatch_due(now=now + timedelta(hours=7))
    assert set(Delivery.objects.filter(destination="record").values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    first_ids = {json.loads(r.get_data())["id"] for r in received}
    assert len(first_ids) == 2  # the retry carried the same id as the first try
