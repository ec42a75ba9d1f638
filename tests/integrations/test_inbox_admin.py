"""A manager sees each stored webhook's status and error in the admin and can re-process it."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import dunning_hooks
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships import services
from memberships.models import MembershipStatus
from tests.factories import MemberFactory
from tests.support.stripe_events import FIXTURE_SUBSCRIPTION, load_event, post_event

pytestmark = pytest.mark.django_db


def test_failed_event_shows_its_error_and_reprocesses_from_the_admin(client, admin_client, glow, monkeypatch):
    tier, _, _ = glow
    member = MemberFactory(practice=tier.practice)
    membership = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                        idempotency_key="e1", now=timezone.now(),
                                        processor_subscription_id=FIXTURE_SUBSCRIPTION)
    broken = {"on": True}

    original = dunning_hooks.charge_succeeded

    def hook_with_a_bug(**kwargs):
        if broken["on"]:
            raise ValueError("receiver bug")
        return original(**kwargs)

    monkeypatch.setattr(dunning_hooks, "charge_succeeded", hook_with_a_bug)
    try:
        post_event(client, load_event("invoice_paid_first.json", membership=membership))
        inbox.process_due(now=timezone.now())
        row = InboundEvent.objects.get()
        assert row.status == InboundStatus.FAILED and "receiver bug" in row.error
        membership.refresh_from_db()
        assert membership.status == MembershipStatus.PENDING      # nothing half-applied

        page = admin_client.get("/admin/integrations/inboundevent/")
        assert page.status_code == 200
        assert "invoice.paid" in page.content.decode() and "receiver bug" in page.content.decode()

        broken["on"] = False
        response = admin_client.post("/admin/integrations/inboundevent/", {
            "action": "reprocess_events", "_selected_action": [row.pk]}, follow=True)
        assert "1 processed" in response.content.decode()
    finally:
        monkeypatch.undo()
    row.refresh_from_db()
    membership.refresh_from_db()
    assert row.status == InboundStatus.PROCESSED and row.error == ""
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 1


def test_stored_payload_detail_page_renders(client, admin_client):
    post_event(client, load_event("customer_created_unhandled.json"))
    row = InboundEvent.objects.get()
    page = admin_client.get(f"/admin/integrations/inboundevent/{row.pk}/change/")
    assert page.status_code == 200 and "customer.created" in page.content.decode()
    # the payload holds a member's details: who opened it is in the audit trail, once per opening
    from memberships.models import AuditLog

    seen = AuditLog.objects.filter(action="admin_view_inboundevent", object_id=str(row.pk))
    assert seen.count() == 1 and seen.get().user.is_superuser
    assert seen.get().detail == {"source": row.source, "event_type": "customer.created"}


def _summary(page) -> str:
    return " ".join(page.content.decode().split('data-testid="inbox-summary">')[1].split("</p>")[0].split())


def test_the_list_says_how_many_events_wait_and_failed_with_the_oldest_ones_age(admin_client, practice):
    now = timezone.now()
    for event_id, status, minutes, backoff in [("evt_a", InboundStatus.RECEIVED, 45, True),
                                               ("evt_b", InboundStatus.RECEIVED, 2, False),
                                               ("evt_c", InboundStatus.FAILED, 26 * 60 + 5, False),
                                               ("evt_d", InboundStatus.PROCESSED, 90, False)]:
        InboundEvent.objects.create(source="stripe", event_id=event_id, event_type="invoice.paid", payload={},
                                    status=status, received_at=now - timedelta(minutes=minutes),
                                    next_attempt_at=now + timedelta(minutes=3) if backoff else None)
    page = admin_client.get("/admin/integrations/inboundevent/")
    assert page.status_code == 200
    assert _summary(page) == ("2 events waiting, oldest 45 min (1 retried later, with backoff); "
                              "1 failed, oldest 26 h.")


def test_a_manager_sees_the_practice_counts_and_those_not_tied_to_a_practice_yet(client, manager, practice):
    now = timezone.now()
    InboundEvent.objects.create(source="stripe", event_id="evt_unassigned", event_type="invoice.paid", payload={},
                                status=InboundStatus.RECEIVED, received_at=now - timedelta(minutes=7))
    client.force_login(manager)
    page = client.get("/admin/integrations/inboundevent/")
    assert page.status_code == 200
    assert _summary(page) == ("1 event waiting, oldest 7 min; none failed. "
                              "1 of them is not tied to a practice yet and listed to superusers only.")


def test_nothing_waiting_or_failed_says_so(admin_client):
    assert _summary(admin_client.get("/admin/integrations/inboundevent/")) == "No event waiting; none failed."


def test_reprocessing_an_event_that_ran_out_of_retries_lets_it_wait_again(client, settings):
    """A manager re-processes an event that failed after all its retries (its membership was still
    unknown): it waits again with a fresh round of retries, instead of failing at its first wait."""
    settings.INBOX_MAX_ATTEMPTS = 2
    event = load_event("invoice_paid_first.json")          # names a subscription nobody has yet
    post_event(client, event)
    row = InboundEvent.objects.get()
    later = timezone.now()
    for _ in range(2):
        inbox.process_due(now=later)
        later += timedelta(days=1)
    row.refresh_from_db()
    assert row.status == InboundStatus.FAILED and row.error.startswith("waiting")

    assert inbox.reprocess(row, now=later) == InboundStatus.RECEIVED
    row.refresh_from_db()
    assert row.status == InboundStatus.RECEIVED and row.attempts == 1 and row.next_attempt_at > later
