"""Import a spreadsheet, mirror a Stripe account (localstripe, through the official SDK) where some
subscriptions deliberately differ, reconcile: exactly the planted discrepancies are listed.

The record side is the builtin chart here (the chart panel is the ledger itself), so it is not
compared; the engine's record comparisons are covered in test_reconciliation_engine."""

import io
from datetime import datetime

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.models import Discrepancy, ImportStatus
from billing.reconciliation.runs import resolve_discrepancy, run_reconciliation
from billing.reconciliation.selectors import discrepancies, reconciliation_status, reconciliation_trend
from billing.sheets.batches import create_import_batch, run_import_batch
from memberships import services
from memberships.models import Membership
from tests.factories import TierBenefitFactory, TierFactory

pytestmark = pytest.mark.localstripe

NOW = timezone.make_aware(datetime(2026, 11, 20, 12, 0))
HEADER = "Member #,First name,Last name,Plan,Start date,Price,HydraFacial balance,Stripe customer,Stripe subscription,Status"


def make_sub(client, plan, card="pm_card_visa"):
    customer = client.v1.customers.create({})
    pm = client.v1.payment_methods.attach(card, {"customer": customer.id})
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": pm.id}})
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"plan": plan}]})
    return customer.id, sub.id


def import_csv(practice, rows):
    content = ("\n".join([HEADER] + rows) + "\n").encode()
    batch = create_import_batch(practice=practice, file_name="members.csv", content=content, dry_run=False, now=NOW)
    batch = run_import_batch(batch_id=batch.pk, now=NOW)
    assert batch.status == ImportStatus.IMPORTED, batch.errors
    return batch


def planted(run):
    return sorted((d.member_number, d.kind, d.values["sides"])
                  for d in Discrepancy.objects.filter(last_seen_run=run))


def test_reconcile_lists_exactly_the_planted_discrepancies(stripe_env, glow, manager):
    tier, facial, _ = glow
    practice = tier.practice
    radiance = TierFactory(practice=practice, code="radiance", name="Radiance", price_cents=29900)
    TierBenefitFactory(tier=radiance, service=facial, quantity_per_cycle=2)
    client = stripe_env.make_client()
    product = client.v1.products.create({"name": "Membership"})
    for plan_id, amount in (("glow", 19900), ("radiance", 29900)):
        client.v1.plans.create({"id": plan_id, "product": product.id, "amount": amount, "currency": "usd",
                                "interval": "month"})
    ok = make_sub(client, "glow")
    old_rate = make_sub(client, "radiance")              # downgraded to Glow, still billed the old rate
    cancelled = make_sub(client, "glow")
    client.v1.subscriptions.cancel(cancelled[1])          # cancelled at the processor, active elsewhere
    unpaid = make_sub(client, "glow", card="pm_card_chargeCustomerFail")   # first charge declined
    spent = make_sub(client, "glow")
    retiered = make_sub(client, "glow")
    make_sub(client, "glow")                              # a subscription the ledger does not know

    def row(number, ids, plan="Glow", status="active", balance=1):
        return f"{number},First,{number},{plan},2024-03-05,$199.00,{balance},{ids[0]},{ids[1]},{status}"

    import_csv(practice, [row("M1", ok), row("M2", old_rate), row("M3", cancelled), row("M4", unpaid),
                          row("M5", spent), row("M6", retiered), "M7,First,M7,Glow,2024-03-05,199,1,,,active"])
    # After the import: the ledger spends a HydraFacial the spreadsheet does not know about …
    m5 = Membership.objects.get(member__member_number="M5")
    services.redeem_entitlement(membership=m5, service=facial, actor=services.Actor.system(),
                                idempotency_key="walk-in-1", now=NOW)
    # … and the spreadsheet, re-imported, moves M6 to another tier the ledger was never told about.
    import_csv(practice, [row("M1", ok), row("M2", old_rate), row("M3", cancelled), row("M4", unpaid),
                          row("M5", spent), row("M6", retiered, plan="Radiance"),
                          "M7,First,M7,Glow,2024-03-05,199,1,,,active"])

    run = run_reconciliation(practice=practice, now=NOW, trigger="test")
    assert run.sources == ["ledger", "sheet", "processor"]
    assert run.notes == ["record: builtin record: the chart panel is the ledger itself"]
    assert planted(run) == [
        ("", "missing", "processor/ledger"),
        ("M2", "price_mismatch", "ledger/processor"),
        ("M3", "status_mismatch", "ledger/processor"),
        ("M4", "unpaid_entitled", "ledger/processor"),
        ("M5", "balance_mismatch", "sheet/ledger"),
        ("M6", "tier_mismatch", "sheet/ledger"),
        ("M7", "missing", "ledger/processor"),
    ]
    assert run.members_compared == 7 and run.total == 7

    # A resolution sticks while the values stay the same; the next run keeps the same rows.
    m6 = Discrepancy.objects.get(member_number="M6")
    resolve_discrepancy(discrepancy=m6, actor=services.Actor.staff(manager), note="Asked the front desk; sheet was wrong", now=NOW)
    again = run_reconciliation(practice=practice, now=NOW, trigger="test")
    assert Discrepancy.objects.count() == 7
    assert discrepancies(practice_id=practice.pk, show="open").count() == 6
    assert reconciliation_status(practice_id=practice.pk).open == 6
    assert [p.total for p in reconciliation_trend(practice_id=practice.pk)] == [7, 7]
    assert again.counts["price_mismatch"] == 1

    out = io.StringIO()
    call_command("reconcile", stdout=out)
    assert "M2\tprice_mismatch\tPays $299.00 at the processor; the Glow tier costs $199.00" in out.getvalue()
