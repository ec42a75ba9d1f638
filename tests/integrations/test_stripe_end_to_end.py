"""The whole processor path against a real peer: localstripe, the official SDK, our outbox
delivering to it and its events signed and POSTed to the live test server."""

import json

import pytest
import requests
from django.utils import timezone

from billing.models import Invoice, InvoiceStatus
from integrations import inbox, outbox
from integrations.models import Delivery, DeliveryStatus, InboundEvent, InboundStatus
from memberships import services
from memberships.models import (
    AutomationStage,
    EntitlementBalance,
    Event,
    EventKind,
    MembershipStatus,
    RolloverRule,
)
from tests.factories import MemberFactory, TierBenefitFactory, TierFactory
from tests.support.stripe_events import signed

pytestmark = [pytest.mark.localstripe, pytest.mark.django_db(transaction=True)]

SECRET = "whsec_test_secret"


class StripeWebhooks:
    """Pulls the events localstripe recorded and delivers them to our endpoint over HTTP, signed."""

    def __init__(self, client, url):
        self.client, self.url, self.sent = client, url, set()

    def post(self, event: dict) -> int:
        body, header = signed(event, SECRET)
        response = requests.post(self.url, data=body, timeout=60,
                                 headers={"Content-Type": "application/json", "Stripe-Signature": header})
        return response.status_code

    def deliver_new(self, *, again: bool = False) -> int:
        events = [json.loads(str(e)) for e in self.client.v1.events.list({"limit": 100}).auto_paging_iter()]
        events.sort(key=lambda e: (e["created"], e["id"]))
        count = 0
        for event in events:
            if event["id"] in self.sent and not again:
                continue
            assert self.post(event) == 200
            self.sent.add(event["id"])
            count += 1
        return count

    def deliver_object(self, event_type: str, obj: dict, *, event_id: str) -> int:
        """An event localstripe does not emit, built around the object re-read from it."""
        return self.post({"id": event_id, "object": "event", "type": event_type, "api_version": "2017-08-15",
                          "created": int(timezone.now().timestamp()), "livemode": False, "data": {"object": obj}})


def work(now=None):
    """What the workers do: deliver the outbox, process the inbox, until both are idle."""
    for _ in range(20):
        now = timezone.now()
        sent = outbox.dispatch_due(now=now)
        done = inbox.process_due(now=now)
        if not sent and not done:
            return
    raise AssertionError("workers did not settle")


def balances(membership):
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")}


@pytest.fixture
def world(glow, stripe_env, live_server):
    tier, facial, credit = glow
    practice = tier.practice
    practice.automation_stage = AutomationStage.TIER_SYNC
    practice.save()
    radiance = TierFactory(practice=practice, code="radiance", name="Radiance", processor_name="Membership — Tier C",
                           price_cents=29900)
    TierBenefitFactory(tier=radiance, service=facial, quantity_per_cycle=2, rollover=RolloverRule.CARRY_OVER,
                       rollover_cap=3)
    client = stripe_env.make_client()
    hooks = StripeWebhooks(client, live_server.url + "/webhooks/stripe/")
    return {"tier": tier, "radiance": radiance, "client": client, "hooks": hooks, "ls": stripe_env}


def card_on_file(client, customer_id, card="pm_card_visa"):
    pm = client.v1.payment_methods.attach(card, {"customer": customer_id})
    client.v1.customers.update(customer_id, {"invoice_settings": {"default_payment_method": pm.id}})
    return pm.id


def test_enroll_renew_fail_recover_change_cancel(world):
    client, hooks, tier = world["client"], world["hooks"], world["tier"]
    member = MemberFactory(practice=tier.practice, first_name="Zelda", last_name="Quartermaine")
    actor = services.Actor.system()
    # The member entered a card on the processor's hosted page earlier: a customer with a card on file.
    customer = client.v1.customers.create({"metadata": {"member_ref": f"mb_{member.pk}"}})
    card_on_file(client, customer.id)
    member.processor_customer_id = customer.id
    member.save(update_fields=["processor_customer_id"])

    # enroll → the outbox creates the subscription → its first invoice is paid → balance seeded
    m = services.enroll_member(member=member, tier=tier, actor=actor, idempotency_key="enroll", now=timezone.now())
    work()
    m.refresh_from_db()
    assert m.processor_subscription_id.startswith("sub_")
    sub = client.v1.subscriptions.retrieve(m.processor_subscription_id)
    assert sub.status == "active" and sub.plan.amount == 19900 and sub.metadata["membership_ref"] == f"ms_{m.pk}"
    hooks.deliver_new()
    work()
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 1
    assert balances(m) == {"hydrafacial": 1, "product-credit": 5000}

    # a forced renewal → refilled exactly once, however often the events are delivered
    renewal = client.v1.invoices.create({"customer": customer.id, "subscription": m.processor_subscription_id})
    assert client.v1.invoices.pay(renewal.id).status == "paid"
    hooks.deliver_new()
    hooks.deliver_new(again=True)
    work()
    m.refresh_from_db()
    assert m.cycle_number == 2 and balances(m) == {"hydrafacial": 2, "product-credit": 5000}

    # a failing card → past due, handed to dunning with the amount
    card_on_file(client, customer.id, "pm_card_chargeCustomerFail")
    failing = client.v1.invoices.create({"customer": customer.id, "subscription": m.processor_subscription_id})
    failed = client.v1.invoices.pay(failing.id)
    assert failed.status == "open"          # localstripe answers 200 and emits no payment_failed event here
    hooks.deliver_object("invoice.payment_failed", json.loads(str(client.v1.invoices.retrieve(failing.id))),
                         event_id=f"evt_failed_{failing.id}")
    hooks.deliver_new()
    work()
    m.refresh_from_db()
    assert m.status == MembershipStatus.PAST_DUE
    failure = Event.objects.get(membership=m, kind=EventKind.PAYMENT_FAILED)
    assert failure.payload["amount_cents"] == 19900 and failure.payload["failure_code"] == "card_declined"
    assert Invoice.objects.get(processor_invoice_id=failing.id).status == InvoiceStatus.OPEN

    # a new card and the invoice paid → active again, that cycle refilled
    card_on_file(client, customer.id)
    assert client.v1.invoices.pay(failing.id).status == "paid"
    hooks.deliver_new()
    work()
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and m.cycle_number == 3
    assert Invoice.objects.get(processor_invoice_id=failing.id).status == InvoiceStatus.PAID

    # tier change → the subscription's plan and amount change
    services.change_tier(membership=m, new_tier=world["radiance"], actor=actor, idempotency_key="up",
                         now=timezone.now())
    work()
    sub = client.v1.subscriptions.retrieve(m.processor_subscription_id)
    world["radiance"].refresh_from_db()
    assert sub.plan.amount == 29900 and sub["items"].data[0].plan.id == world["radiance"].processor_price_id

    # cancel → the subscription is cancelled; its deletion event changes nothing more
    services.cancel_membership(membership=m, actor=actor, idempotency_key="bye", now=timezone.now())
    work()
    assert client.v1.subscriptions.retrieve(m.processor_subscription_id).status == "canceled"
    hooks.deliver_new()
    work()
    m.refresh_from_db()
    assert m.status == MembershipStatus.CANCELLED
    assert set(Delivery.objects.filter(destination="processor").values_list("status", flat=True)) == {
        DeliveryStatus.DELIVERED}
    assert not InboundEvent.objects.exclude(status__in=[InboundStatus.PROCESSED, InboundStatus.IGNORED]).exists()
    # one subscription and one customer at the processor, whatever was retried
    assert len(client.v1.subscriptions.list({"status": "all"}).data) == 1
    assert len(client.v1.customers.list().data) == 1

    # nothing but opaque ids and neutral names reached the processor
    sent = json.dumps([json.loads(str(x)) for kind in ("customers", "products", "plans")
                       for x in getattr(client.v1, kind).list().data]
                      + [json.loads(str(s)) for s in client.v1.subscriptions.list({"status": "all"}).data],
                      ensure_ascii=False)
    for private in ("Zelda", "Quartermaine", member.email, member.phone, "Glow", "Radiance", "HydraFacial",
                    "Product credit"):
        assert private not in sent, private
    assert "Membership — Tier B" in sent


def test_enrollment_without_a_card_waits_for_the_hosted_page(world):
    tier = world["tier"]
    member = MemberFactory(practice=tier.practice)
    m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key="e",
                               now=timezone.now())
    work()
    d = Delivery.objects.get(event__membership=m, destination="processor")
    member.refresh_from_db()
    m.refresh_from_db()
    assert d.status == DeliveryStatus.DELIVERED and d.result["awaiting_card"] is True
    assert member.processor_customer_id.startswith("cus_") and not m.processor_subscription_id
    assert world["client"].v1.subscriptions.list({"status": "all"}).data == []


def test_observe_stage_sends_nothing(world):
    tier = world["tier"]
    tier.practice.automation_stage = AutomationStage.OBSERVE
    tier.practice.save()
    member = MemberFactory(practice=tier.practice)
    m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key="e",
                               now=timezone.now())
    work()
    d = Delivery.objects.get(event__membership=m, destination="processor")
    assert d.status == DeliveryStatus.SHADOWED
    assert d.note == "would have: create the processor customer and subscription at $199.00"
    assert world["client"].v1.customers.list().data == []


def test_a_retried_enrollment_delivery_makes_no_second_subscription(world):
    """localstripe ignores idempotency keys, so this is the check-before-create at work."""
    client, tier = world["client"], world["tier"]
    member = MemberFactory(practice=tier.practice)
    customer = client.v1.customers.create({"metadata": {"member_ref": f"mb_{member.pk}"}})
    card_on_file(client, customer.id)
    member.processor_customer_id = customer.id
    member.save(update_fields=["processor_customer_id"])
    m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(), idempotency_key="e",
                               now=timezone.now())
    work()
    d = Delivery.objects.get(event__membership=m, destination="processor")
    # as if the worker died after Stripe answered but before our commit: the id was never stored
    type(m).objects.filter(pk=m.pk).update(processor_subscription_id="")
    type(d).objects.filter(pk=d.pk).update(status=DeliveryStatus.PENDING)
    work()
    m.refresh_from_db()
    assert len(client.v1.subscriptions.list({"status": "all"}).data) == 1
    assert m.processor_subscription_id == client.v1.subscriptions.list().data[0].id
