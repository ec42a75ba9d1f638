"""The manager's dashboard says what at the edges needs a person, for their practice only."""

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
