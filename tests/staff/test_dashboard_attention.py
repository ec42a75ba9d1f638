"""The manager's dashboard says what at the edges needs a person, for their practice only."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from integrations.models import (
    Delivery,
    DeliveryStatus,
    InboundEvent,
    InboundStatus,
    RecordException,
    RecordExceptionKind,
    RecordExceptionStatus,
)
from memberships import services
from tests.factories import MemberFactory, PracticeFactory


def _plant(practice, n: int):
    now = timezone.now()
    member = MemberFactory(practice=practice)
    for i in range(n):
        event = services.record_event(member=member, kind="note", summary="x", actor=services.Actor.system(), now=now)
        Delivery.objects.create(event=event, practice=practice, destination="record", status=DeliveryStatus.DEAD,
                                attempts=8, last_error="503 from the record", next_attempt_at=now, created_at=now)
        InboundEvent.objects.create(source="stripe", event_id=f"evt_{practice.pk}_{i}", event_type="invoice.paid",
                                    payload={}, practice=practice, status=InboundStatus.FAILED, error="boom",
                                    received_at=now)
        RecordException.objects.create(practice=practice, member=member, kind=RecordExceptionKind.NO_BALANCE,
                                       event_type="treatment.completed", appointment_ref=f"apt-{i}",
                                       detail="No balance left", status=RecordExceptionStatus.OPEN, created_at=now)


def test_dashboard_lists_dead_letters_failed_webhooks_and_open_exceptions_of_the_practice(client, manager, practice):
    _plant(practice, 2)
    _plant(PracticeFactory(slug="elsewhere"), 5)
    client.force_login(manager)
    page = client.get(reverse("manager:dashboard")).content.decode()
    assert 'data-testid="attention"' in page
    assert "2 updates to the processor, the record or a member could not be delivered" in page
    assert "2 incoming webhooks failed" in page
    assert "2 treatments from the record to resolve" in page
    assert "5 " not in page.split('data-testid="attention"')[1].split("</section>")[0]


def test_nothing_to_attend_to_shows_no_box(client, manager, practice):
    client.force_login(manager)
    response = client.get(reverse("manager:dashboard"))
    assert response.status_code == 200 and 'data-testid="attention"' not in response.content.decode()


def _inbound(practice, event_id: str, *, status: str, minutes_ago: float, now, backoff: bool = False):
    return InboundEvent.objects.create(
        source="stripe", event_id=event_id, event_type="invoice.paid", payload={}, practice=practice, status=status,
        received_at=now - timedelta(minutes=minutes_ago),
        next_attempt_at=now + timedelta(minutes=5) if backoff else None)


def test_dashboard_shows_events_waiting_and_failed_with_the_oldest_ones_age(client, manager, practice):
    now = timezone.now()
    _inbound(practice, "evt_w1", status=InboundStatus.RECEIVED, minutes_ago=12.5, now=now, backoff=True)
    _inbound(practice, "evt_w2", status=InboundStatus.RECEIVED, minutes_ago=0.1, now=now)
    _inbound(None, "evt_w3", status=InboundStatus.RECEIVED, minutes_ago=3, now=now)   # its practice not known yet
    _inbound(practice, "evt_f1", status=InboundStatus.FAILED, minutes_ago=190, now=now)
    _inbound(practice, "evt_f2", status=InboundStatus.FAILED, minutes_ago=20, now=now)
    other = PracticeFactory(slug="elsewhere")
    for i in range(5):
        _inbound(other, f"evt_other{i}", status=InboundStatus.RECEIVED, minutes_ago=600, now=now)
        _inbound(other, f"evt_otherf{i}", status=InboundStatus.FAILED, minutes_ago=6000, now=now)
    client.force_login(manager)
    page = client.get(reverse("manager:dashboard")).content.decode()
    box = page.split('data-testid="attention"')[1].split("</section>")[0]
    assert "3 events waiting, oldest 12 min" in box
    assert "2 incoming webhooks failed</a>, oldest 3 h" in box
    assert "5 " not in box and "days" not in box


def test_events_waiting_only_seconds_are_no_cause_for_attention(client, manager, practice):
    now = timezone.now()
    _inbound(practice, "evt_fresh", status=InboundStatus.RECEIVED, minutes_ago=0.2, now=now)
    client.force_login(manager)
    page = client.get(reverse("manager:dashboard")).content.decode()
    assert 'data-testid="attention"' not in page
