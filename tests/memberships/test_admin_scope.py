"""A manager sees only their own practice in the admin, in every app: billing (invoices, processor
subscriptions, dunning), the webhook inbox and the outbox, and the record side."""

import pytest
from django.contrib import admin
from django.utils import timezone

from billing import services as billing_services
from billing.facts import ChargeFailed
from billing.models import DunningCase, Invoice, ProcessorSubscription
from integrations.models import Delivery
from memberships import services
from memberships.admin import PracticeScopedAdmin
from memberships.models import LedgerEntry, StaffProfile
from memberships.roles import MANAGER
from tests.factories import PracticeFactory, active_membership, glow_tier, staff_user

OUR_APPS = {"memberships", "billing", "integrations"}
SYSTEM = services.Actor.system()
NOW = timezone.now()


def _fail_a_charge(membership, ref: str):
    membership.processor_subscription_id = f"sub_{ref}"
    membership.save(update_fields=["processor_subscription_id"])
    ProcessorSubscription.objects.create(membership=membership, processor_subscription_id=f"sub_{ref}",
                                         status="active", updated_at=timezone.now())
    billing_services.record_charge_failed(
        charge=ChargeFailed(processor="stripe", invoice_ref=f"in_{ref}", subscription_ref=f"sub_{ref}",
                            customer_ref=f"cus_{ref}", membership_ref=f"ms_{membership.pk}", amount_cents=19900,
                            currency="usd", attempt_count=1, period_start=None, period_end=None,
                            created=1767636000, event_created=1767636000, event_ref=f"evt_{ref}",
                            failure_code="card_declined", decline_code="insufficient_funds"),
        now=timezone.now())


def test_every_admin_of_our_apps_is_scoped_to_the_practice():
    unscoped = [model.__name__ for model, model_admin in admin.site._registry.items()
                if model._meta.app_label in OUR_APPS and model is not StaffProfile
                and not isinstance(model_admin, PracticeScopedAdmin)]
    assert unscoped == []


def test_a_manager_never_sees_another_practices_billing_or_outbox_rows(client, manager, glow):
    ours = active_membership(tier=glow[0])
    other_practice = PracticeFactory(slug="elsewhere", name="Elsewhere Skin")
    theirs = active_membership(tier=glow_tier(other_practice)[0])
    _fail_a_charge(ours, "ours")
    _fail_a_charge(theirs, "theirs")
    assert Invoice.objects.count() == 2 and DunningCase.objects.count() == 2

    client.force_login(manager)
    for url, mine, not_mine in [
        ("/admin/billing/invoice/", "in_ours", "in_theirs"),
        ("/admin/billing/processorsubscription/", "sub_ours", "sub_theirs"),
        ("/admin/billing/dunningcase/", "in_ours", "in_theirs"),
    ]:
        page = client.get(url)
        assert page.status_code == 200, url
        assert mine.encode() in page.content and not_mine.encode() not in page.content, url
        assert b"Elsewhere Skin" not in page.content  # not even in the practice filter
    their_case = DunningCase.objects.get(invoice_ref="in_theirs")
    assert client.get(f"/admin/billing/dunningcase/{their_case.pk}/change/").status_code == 302  # "doesn't exist"
    their_delivery = Delivery.objects.filter(practice=theirs.member.practice).first()
    if their_delivery is not None:
        assert client.get(f"/admin/integrations/delivery/{their_delivery.pk}/change/").status_code == 302

    other_manager = staff_user(MANAGER, other_practice, username="their-manager")
    client.force_login(other_manager)
    page = client.get("/admin/billing/invoice/")
    assert b"in_theirs" in page.content and b"in_ours" not in page.content


@pytest.mark.django_db
def test_manager_of_other_practice_cannot_reverse_in_admin(glow, client):
    """A manager neither sees nor reverses another practice's entries in the admin."""
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    e = services.redeem_entitlement(membership=m, service=facial, actor=SYSTEM, idempotency_key="r", now=NOW)
    other = PracticeFactory(slug="other")
    mgr = staff_user(MANAGER, other, username="mgr-other")
    client.force_login(mgr)
    lst = client.get("/admin/memberships/ledgerentry/")
    assert lst.status_code == 200 and lst.context["cl"].result_count == 0
    client.post("/admin/memberships/ledgerentry/", {"action": "reverse_selected", "_selected_action": [e.pk],
                                                      "apply": "1", "reason": "mine now"})
    assert not LedgerEntry.objects.filter(reverses=e).exists(), "reversed by another practice's manager"
