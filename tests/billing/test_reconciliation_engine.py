"""The reconciliation engine as a pure function: each kind of discrepancy, and nothing else."""

from datetime import datetime, timezone

from billing.reconciliation.compare import (
    LedgerRow,
    ProcessorRow,
    RecordRow,
    SheetSnapshot,
    reconcile,
)


def ledger(n, **kw):
    base = dict(member_id=n, member_number=f"M{n}", tier_code="glow", tier_name="Glow", status="active",
                price_cents=19900, balances={"hydrafacial": 1}, processor_subscription_id=f"sub_{n}",
                processor_customer_id=f"cus_{n}")
    return LedgerRow(**{**base, **kw})


def sheet(n, **kw):
    base = dict(member_number=f"M{n}", tier_code="glow", status="active", price_cents=19900,
                balances={"hydrafacial": 1}, processor_subscription_id=f"sub_{n}")
    return SheetSnapshot(**{**base, **kw})


def sub(n, **kw):
    base = dict(subscription_id=f"sub_{n}", customer_id=f"cus_{n}", status="active", price_cents=19900,
                latest_invoice_status="paid")
    return ProcessorRow(**{**base, **kw})


def kinds(found):
    return sorted((d.member_number, d.kind, d.sides) for d in found)


def test_agreeing_sides_have_no_discrepancy():
    assert reconcile([ledger(1)], [sheet(1)], [sub(1)], [RecordRow(member_id=1, tier="Glow", status="active")]) == []


def test_each_kind_is_found():
    found = reconcile(
        [ledger(1, tier_code="glow"), ledger(2), ledger(3), ledger(4), ledger(5), ledger(6, processor_subscription_id="")],
        [sheet(1, tier_code="radiance"), sheet(2, status="cancelled"), sheet(3, balances={"hydrafacial": 2}),
         sheet(4), sheet(5), sheet(6), sheet(9)],
        [sub(1), sub(2), sub(3, price_cents=29900), sub(4, status="past_due", latest_invoice_status="open"),
         sub(5, status="canceled"), sub(7)],
        None,
    )
    assert kinds(found) == [
        ("", "missing", "processor/ledger"),
        ("M1", "tier_mismatch", "sheet/ledger"),
        ("M2", "status_mismatch", "sheet/ledger"),
        ("M3", "balance_mismatch", "sheet/ledger"),
        ("M3", "price_mismatch", "ledger/processor"),
        ("M4", "unpaid_entitled", "ledger/processor"),
        ("M5", "status_mismatch", "ledger/processor"),
        ("M6", "missing", "ledger/processor"),
        ("M9", "missing", "sheet/ledger"),
    ]
    price = next(d for d in found if d.kind == "price_mismatch")
    assert price.message == "Pays $299.00 at the processor; the Glow tier costs $199.00"


def test_customer_fallback_and_paused_collection():
    found = reconcile([ledger(1, processor_subscription_id="", status="paused")], None,
                      [sub(1, collection_paused=True)], None)
    assert found == []


def test_record_tier_status_and_flags():
    found = reconcile([ledger(1), ledger(2, status="past_due"), ledger(3)], None, None, [
        RecordRow(member_id=1, tier="Radiance", status="active", flag_expected=""),
        RecordRow(member_id=2, tier="glow", status="past_due", flags=(), flag_expected="card_declined"),
        RecordRow(member_id=3, tier=None, status=None, found=False),
    ])
    assert kinds(found) == [("M1", "tier_mismatch", "ledger/record"),
                            ("M2", "status_mismatch", "ledger/record flag"),
                            ("M3", "missing", "ledger/record")]


def test_fingerprint_follows_the_values():
    a = reconcile([ledger(1)], [sheet(1, tier_code="radiance")], None, None)[0]
    b = reconcile([ledger(1)], [sheet(1, tier_code="radiance")], None, None)[0]
    c = reconcile([ledger(1)], [sheet(1, tier_code="luxe")], None, None)[0]
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_a_scheduled_tier_change_is_expected_at_its_new_price():
    """The processor is moved to the scheduled tier's price at once (the next invoice must carry it)."""
    scheduled = dict(pending_tier_name="Luxe", pending_price_cents=34900, pending_currency="usd")
    found = reconcile([ledger(1, **scheduled), ledger(2, **scheduled)], None,
                      [sub(1, price_cents=34900), sub(2, price_cents=19900)], None)
    assert kinds(found) == [("M2", "price_mismatch", "ledger/processor")]
    assert found[0].message == "Pays $199.00 at the processor; the Luxe tier, scheduled from the next cycle, costs $349.00"


def test_currency_and_interval_are_part_of_the_price():
    found = reconcile(
        [ledger(1), ledger(2, interval="month"), ledger(3, interval="month"), ledger(4, interval="month"),
         ledger(5, currency="cad")],
        None,
        [sub(1, currency="cad"), sub(2, interval="year"), sub(3, interval="month", interval_count=3),
         sub(4, interval=""), sub(5, currency="CAD", interval="month")],
        None)
    assert [(d.member_number, d.kind, d.message) for d in found] == [
        ("M1", "price_mismatch", "Pays CA$199.00 (CAD) at the processor; the Glow tier costs $199.00 (USD)"),
        ("M2", "price_mismatch", "Pays $199.00/year at the processor; the Glow tier costs $199.00/month"),
        ("M3", "price_mismatch", "Pays $199.00/3 month at the processor; the Glow tier costs $199.00/month"),
    ]
    assert found[0].values == {"ledger": 19900, "processor": 19900, "ledger_currency": "usd",
                               "processor_currency": "cad"}


def test_a_subscription_ending_at_the_period_end_matches_a_cancelled_ledger_only():
    """Cancelled at the processor "at period end": still active there until then. That is what a
    cancelled ledger expects; against an active one the member is about to lose the subscription."""
    ends = datetime(2026, 12, 20, tzinfo=timezone.utc)
    found = reconcile(
        [ledger(1, status="cancelled"), ledger(2), ledger(3, status="cancelled"), ledger(4),
         ledger(5, status="cancelled")],
        None,
        [sub(1, cancel_at_period_end=True), sub(2, cancel_at_period_end=True, current_period_end=ends),
         sub(3), sub(4, cancel_at=ends), sub(5, cancel_at_period_end=True, price_cents=29900)],
        None)
    assert [(d.member_number, d.kind, d.message) for d in found] == [
        ("M2", "status_mismatch", "Status is active in the ledger, but the processor ends the subscription on "
                                  "2026-12-20 (active, cancelled at the processor)"),
        ("M3", "status_mismatch", "Status is cancelled in the ledger, active at the processor"),
        ("M4", "status_mismatch", "Status is active in the ledger, but the processor ends the subscription on "
                                  "2026-12-20 (active, cancelled at the processor)"),
    ]


def test_an_invoice_the_practice_wrote_off_or_voided_is_not_owed_one_still_open_is():
    """Stripe's `uncollectible` (marked uncollectible: written off, the dunning case closed as
    written off) and `void` ask nothing more of the member; an `open` one (a failed charge, Square's
    FAILED included) is still owed."""
    found = reconcile([ledger(1), ledger(2), ledger(3)], [sheet(1), sheet(2), sheet(3)],
                      [sub(1, latest_invoice_status="uncollectible"), sub(2, latest_invoice_status="void"),
                       sub(3, latest_invoice_status="open")], None)
    assert kinds(found) == [("M3", "unpaid_entitled", "ledger/processor")]


def test_a_square_invoice_whose_charge_failed_is_still_owed():
    from integrations.processors.square_read import INVOICE_STATUS

    assert INVOICE_STATUS["FAILED"] == "open" and INVOICE_STATUS["CANCELED"] == "void"
