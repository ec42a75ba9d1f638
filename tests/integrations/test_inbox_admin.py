"""A manager sees each stored webhook's status and error in the admin and can re-process it."""

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
