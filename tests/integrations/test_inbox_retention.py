"""Full processor and record payloads are kept INBOX_RETENTION_DAYS, then reduced to ids and
outcome by a scheduled job (issue 19): what a manager still needs (which event, what happened) stays;
the member's data in the payload goes."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest

from integrations.models import InboundEvent, InboundStatus
from integrations.retention import reduce_old_payloads
from integrations.tasks import reduce_old_inbox_payloads

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=dt_timezone.utc)


def _event(event_id, *, days_old, status=InboundStatus.PROCESSED, source="stripe", payload=None):
    return InboundEvent.objects.create(
        source=source, event_id=event_id, event_type="invoice.paid", status=status, error="",
        received_at=NOW - timedelta(days=days_old), processed_at=NOW - timedelta(days=days_old),
        payload=payload or {"id": event_id, "type": "invoice.paid",
                            "data": {"object": {"id": f"in_{event_id}", "customer_email": "ana@example.com",
                                                "customer_name": "Ana Garcia", "amount_paid": 19900}}})


@pytest.mark.django_db
def test_old_payloads_become_ids_and_outcome_recent_and_waiting_ones_stay(settings):
    settings.INBOX_RETENTION_DAYS = 400
    old = _event("evt_old", days_old=401)
    failed = _event("evt_failed", days_old=500, status=InboundStatus.FAILED)
    record = _event("rec_1", days_old=450, source="record:webhook",
                    payload={"id": "rec_1", "type": "treatment.completed",
                             "data": {"appointment_id": "A-1", "patient_id": "P-7", "service_code": "botox"}})
    recent = _event("evt_recent", days_old=399)
    waiting = _event("evt_waiting", days_old=600, status=InboundStatus.RECEIVED)
    assert reduce_old_payloads(now=NOW, batch_size=2) == 3
    for row in (old, failed, record, recent, waiting):
        row.refresh_from_db()
    assert old.payload == {"reduced": "ids and outcome", "id": "evt_old", "object": "in_evt_old", "appointment": None}
    assert old.status == InboundStatus.PROCESSED and old.event_id == "evt_old" and old.reduced_at == NOW
    assert failed.payload["object"] == "in_evt_failed" and failed.status == InboundStatus.FAILED
    assert record.payload == {"reduced": "ids and outcome", "id": "rec_1", "object": None, "appointment": "A-1"}
    assert "botox" not in str(record.payload) and "ana@example.com" not in str(old.payload)
    assert recent.payload["data"]["object"]["customer_email"] == "ana@example.com"
    assert "data" in waiting.payload and waiting.reduced_at is None
    assert reduce_old_payloads(now=NOW) == 0  # a second run changes nothing


@pytest.mark.django_db
def test_the_scheduled_job_is_listed_and_uses_the_setting(settings):
    from medspa.schedules import every_schedule

    assert any(fields["func"] == "integrations.tasks.reduce_old_inbox_payloads" for _, fields in every_schedule())
    settings.INBOX_RETENTION_DAYS = 30
    row = _event("evt_month", days_old=40)
    row.received_at = datetime.now(dt_timezone.utc) - timedelta(days=31)
    row.save(update_fields=["received_at"])
    assert reduce_old_inbox_payloads() == 1
    row.refresh_from_db()
    assert row.payload["reduced"] == "ids and outcome"
