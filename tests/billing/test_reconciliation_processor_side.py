"""The ledger against the processor, read from a real peer (localstripe through the official SDK):
what the processor is expected to bill (the scheduled tier's price once a change is scheduled; the
tier's currency and interval) and a subscription Stripe will end at the period end."""

import pytest
from django.utils import timezone

from billing.reconciliation.compare import reconcile
from billing.reconciliation.snapshots import ledger_rows
from integrations.processors.stripe_read import processor_source
from memberships import services
from tests.factories import MemberFactory, TierFactory, active_membership

pytestmark = pytest.mark.localstripe

PLANS = {"glow": (19900, "usd", "month"), "glow-cad": (19900, "cad", "month"),
         "glow-yearly": (19900, "usd", "year"), "luxe": (34900, "usd", "month")}


def test_scheduled_changes_currencies_intervals_and_period_end_cancellations(stripe_env, glow):
    tier, _, _ = glow
    practice = tier.practice
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900)
    client = stripe_env.make_client()
    product = client.v1.products.create({"name": "Membership"})
    for plan_id, (amount, currency, interval) in PLANS.items():
        client.v1.plans.create({"id": plan_id, "product": product.id, "amount": amount, "currency": currency,
                                "interval": interval})
    now = timezone.now()
    actor = services.Actor.system()

    def member_on(plan, *, ending=False):
        m = active_membership(tier=tier, member=MemberFactory(practice=practice), now=now)
        customer = client.v1.customers.create({})
        pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
        client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
        sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"plan": plan}]})
        if ending:      # cancelled in the Stripe dashboard the usual way: at the period end
            client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
        m.processor_subscription_id = sub.id
        m.save(update_fields=["processor_subscription_id"])
        m.member.processor_customer_id = customer.id
        m.member.save(update_fields=["processor_customer_id"])
        return m

    scheduled = member_on("luxe")                 # the tier change pushed the Luxe price at once
    services.change_tier(membership=scheduled, new_tier=luxe, effective="next_cycle", actor=actor,
                         idempotency_key="to-luxe", now=now)
    canadian = member_on("glow-cad")
    yearly = member_on("glow-yearly")
    cancelled = member_on("glow", ending=True)
    services.cancel_membership(membership=cancelled, actor=actor, idempotency_key="bye", now=now)
    leaving = member_on("glow", ending=True)
    member_on("glow")                             # in step

    ledger = ledger_rows(practice_id=practice.pk)
    found = reconcile(ledger, None, processor_source(practice=practice, ledger=ledger, client=client), None)

    number = {m.pk: m.member.member_number for m in (canadian, yearly, leaving)}
    assert sorted((d.member_number, d.kind, d.message.split(";")[0].split(",")[0]) for d in found) == sorted([
        (number[canadian.pk], "price_mismatch", "Pays CA$199.00 (CAD) at the processor"),
        (number[yearly.pk], "price_mismatch", "Pays $199.00/year at the processor"),
        (number[leaving.pk], "status_mismatch", "Status is active in the ledger"),
    ])
    leaving_row = next(d for d in found if d.member_number == number[leaving.pk])
    assert "the processor ends the subscription on " in leaving_row.message
