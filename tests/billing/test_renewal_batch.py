"""Renewal day in bulk writes exactly what the invoice-by-invoice path writes.

`billing.renewals.record_renewals` (set-based, PostgreSQL) and `billing.services.record_charge_succeeded`
(the rule book) must leave the same rows: balances, lots, ledger entries, periods, timeline events,
invoices, idempotency keys — through several cycles of every rollover rule, with credit redeemed in
between. Twins get the same history, one through each path, and are compared."""

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.db import connection, transaction

from billing import renewals, services as billing
from billing.facts import ChargeSucceeded
from billing.models import Invoice
from memberships import services
from memberships.models import (
    CreditLot,
    EntitlementBalance,
    Event,
    LedgerEntry,
    Membership,
    Operation,
    RolloverRule,
)
from tests.factories import MemberFactory, ServiceFactory, TierBenefitFactory, TierFactory, glow_tier

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

T0 = datetime(2026, 1, 5, 18, 0, tzinfo=dt_timezone.utc)
PERIOD = timedelta(days=30)


@pytest.fixture
def tier(practice):
    tier, facial, credit = glow_tier(practice)        # facial carries over up to 2; credit use-it-or-lose-it
    toxin = ServiceFactory(practice=practice, name="Neurotoxin", code="toxin")
    TierBenefitFactory(tier=tier, service=toxin, quantity_per_cycle=20, rollover=RolloverRule.EXPIRE_AFTER,
                       expire_after_cycles=2)
    return tier


def enrolled(tier, n):
    """A membership whose first cycle (period 0) is paid, with a subscription of its own."""
    member = MemberFactory(practice=tier.practice)
    m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                               idempotency_key=f"enroll:{member.pk}", now=T0,
                               processor_subscription_id=f"sub_{member.pk}")
    billing.record_charge_succeeded(charge=paid(m, 0), now=T0)
    return Membership.objects.get(pk=m.pk)


def paid(membership, cycle):
    start = T0 + cycle * PERIOD
    return ChargeSucceeded(
        processor="stripe", invoice_ref=f"in_{membership.member_id}_{cycle}",
        subscription_ref=membership.processor_subscription_id, customer_ref="cus_x",
        membership_ref=f"ms_{membership.pk}", amount_cents=19900, currency="usd", attempt_count=1,
        period_start=start, period_end=start + PERIOD, created=int(start.timestamp()),
        event_created=int(start.timestamp()) + 5, event_ref=f"evt_{membership.pk}_{cycle}",
        billing_reason="subscription_create" if cycle == 0 else "subscription_cycle",
        amount_paid_cents=19900, paid_at=start)


def spend(membership, code, quantity, key):
    service = membership.tier.benefits.get(service__code=code).service
    services.redeem_entitlement(membership=membership, service=service, quantity=quantity,
                                actor=services.Actor.system(), idempotency_key=key, now=T0)


def snapshot(membership):
    """Everything the two paths write for one membership, with its own ids taken out."""
    m = Membership.objects.get(pk=membership.pk)
    mine = {str(m.pk): "M", str(m.member_id): "B"}

    def norm(text):
        for raw, name in mine.items():
            text = (text.replace(f"_{raw}_", f"_{name}_").replace(f":{raw}:", f":{name}:")
                    .replace(f"-{raw}-", f"-{name}-"))
        return text

    lots = list(CreditLot.objects.filter(membership=m).order_by("cycle_number", "service_id").values_list(
        "service__code", "source", "cycle_number", "granted", "remaining", "expires_at_cycle", "period_start"))
    lot_ids = {pk: i for i, pk in enumerate(CreditLot.objects.filter(membership=m).order_by(
        "cycle_number", "service_id").values_list("pk", flat=True))}
    def key(entry):            # an expiry's key ends with its lot's id: name the lot by its place instead
        text = norm(entry.idempotency_key)
        return f"{text.rsplit(':', 1)[0]}:lot{lot_ids.get(entry.lot_id)}" if entry.kind == "expire" else text

    entries = sorted((e.kind, e.service.code, e.quantity, e.balance_after, e.source, lot_ids.get(e.lot_id),
                      key(e), norm(e.cycle_key), e.reason, e.actor_type, e.actor_label)
                     for e in LedgerEntry.objects.filter(membership=m).select_related("service"))
    events = [(e.kind, e.summary, e.actor_type,
               sorted((k, "-" if k in ("invoice_id", "entry_id") else norm(v) if isinstance(v, str) else v)
                      for k, v in e.payload.items() if k != "granted"),
               [(g["quantity"], g["balance_after"]) for g in e.payload.get("granted", [])])
              for e in Event.objects.filter(membership=m).order_by("id")]
    invoices = list(Invoice.objects.filter(membership=m).order_by("period_start").values_list(
        "status", "amount_cents", "amount_paid_cents", "period_start", "period_end", "opened_cycle",
        "processor_created", "last_event_created", "attempt_count"))
    operations = sorted(norm(k) for k in Operation.objects.filter(idempotency_key__contains=f":{m.pk}:")
                        .values_list("idempotency_key", flat=True))
    return {
        "membership": (m.status, m.cycle_number, m.current_period_start, m.current_period_end),
        "balances": sorted(EntitlementBalance.objects.filter(membership=m).values_list(
            "service__code", "balance", "reserved")),
        "lots": lots, "entries": entries, "events": events, "invoices": invoices, "operations": operations,
    }


def test_bulk_renewals_write_what_the_invoice_by_invoice_path_writes(tier):
    assert connection.vendor == "postgresql"
    bulk = [enrolled(tier, i) for i in range(4)]
    single = [enrolled(tier, i) for i in range(4)]
    # Different use in cycle 1 per pair: nothing used, the facial used, everything used, credit part-used.
    uses = [[], [("hydrafacial", 1, "a")], [("hydrafacial", 1, "b"), ("toxin", 20, "c"), ("product-credit", 5000, "d")],
            [("product-credit", 1234, "e")]]
    for cycle in (1, 2, 3, 4):
        for i, (b, s) in enumerate(zip(bulk, single)):
            for code, quantity, key in uses[i] if cycle in (1, 3) else []:
                spend(b, code, quantity, f"use-{b.pk}-{cycle}-{key}")
                spend(s, code, quantity, f"use-{s.pk}-{cycle}-{key}")
        now = T0 + cycle * PERIOD
        with transaction.atomic():
            recorded, rest = renewals.record_renewals(
                charges=[paid(Membership.objects.get(pk=m.pk), cycle) for m in bulk], now=now)
        assert len(recorded) == len(bulk) and rest == []          # every one a plain renewal
        for m in single:
            billing.record_charge_succeeded(charge=paid(Membership.objects.get(pk=m.pk), cycle), now=now)

    for b, s in zip(bulk, single):
        got, expected = snapshot(b), snapshot(s)
        for key in expected:
            assert got[key] == expected[key], key
    # and what a member is told: 2 facials carried at most plus this cycle's, this cycle's credit only,
    # the toxin of this cycle and the one before
    assert snapshot(bulk[0])["balances"] == [("hydrafacial", 3, 0), ("product-credit", 5000, 0), ("toxin", 40, 0)]


def test_a_replayed_or_unusual_renewal_is_left_to_the_rule_book(tier):
    """Not new (already mirrored), a scheduled tier change, a past-due member, a period that does not
    follow on: `record_renewals` hands each back untouched, for `record_charge_succeeded`."""
    plain, replayed, scheduled, past_due = (enrolled(tier, i) for i in range(4))
    billing.record_charge_succeeded(charge=paid(replayed, 1), now=T0 + PERIOD)
    other_tier = TierFactory(practice=tier.practice, code="luxe", name="Luxe")
    services.change_tier(membership=scheduled, new_tier=other_tier, effective="next_cycle",
                         actor=services.Actor.system(), idempotency_key="tc", now=T0)
    services.mark_past_due(membership=past_due, actor=services.Actor.system(), idempotency_key="pd", now=T0)
    charges = [paid(Membership.objects.get(pk=m.pk), 1) for m in (plain, replayed, scheduled, past_due)]
    charges.append(paid(Membership.objects.get(pk=plain.pk), 3))        # a second charge of one membership
    with transaction.atomic():
        recorded, rest = renewals.record_renewals(charges=charges, now=T0 + PERIOD)
    assert set(recorded) == {charges[0].invoice_ref}
    assert [c.invoice_ref for c in rest] == [c.invoice_ref for c in charges[1:]]
    assert Membership.objects.get(pk=scheduled.pk).cycle_number == 1
    assert Membership.objects.get(pk=past_due.pk).cycle_number == 1
