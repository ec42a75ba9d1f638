"""Payback metrics week by week (billing.metrics.payback_weeks): failed payments addressed and how
fast, reconciliation work, entitlement disputes, tier-change billing errors, in the practice's weeks."""

from datetime import datetime, timedelta, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest

from billing import services as billing
from billing.facts import ChargeFailed, ChargeSucceeded
from billing.metrics import payback_weeks
from billing.models import Discrepancy
from billing.reconciliation.runs import resolve_discrepancy, run_reconciliation
from memberships import services
from tests.factories import PracticeFactory, TierBenefitFactory, TierFactory, active_membership

from .test_import import GOOD_CSV, run
from .test_reconciliation_scenario import import_csv, make_sub

UTC = dt_timezone.utc
HOUR = timedelta(hours=1)
# Wednesday 18 November 2026, 20:00 UTC (12:00 in Los Angeles, Thursday 05:00 in Tokyo).
NOW = datetime(2026, 11, 18, 20, 0, tzinfo=UTC)


def _invoice(membership, ref, at):
    return dict(processor="stripe", invoice_ref=ref, subscription_ref="", customer_ref="",
                membership_ref=billing.membership_ref_for(membership), amount_cents=19900, currency="usd",
                attempt_count=1, period_start=None, period_end=None, created=int(at.timestamp()),
                event_created=int(at.timestamp()), billing_reason="subscription_cycle")


def fail(membership, ref, at):
    billing.record_charge_failed(charge=ChargeFailed(**_invoice(membership, ref, at), decline_code="insufficient_funds"),
                                 now=at)


def pay(membership, ref, at):
    facts = _invoice(membership, ref, at) | {"event_created": int(at.timestamp()) + 1}
    billing.record_charge_succeeded(charge=ChargeSucceeded(**facts, amount_paid_cents=19900, paid_at=at), now=at)


def by_week(weeks):
    return {w.starts_on.isoformat(): w for w in weeks}


def test_cases_opened_addressed_and_recovered_in_their_week(glow, practice):
    tier = glow[0]
    a, b, c = (active_membership(tier=tier, now=NOW - timedelta(days=60)) for _ in range(3))
    monday = datetime(2026, 11, 9, 0, 0, tzinfo=ZoneInfo("America/Los_Angeles"))   # last week
    fail(a, "in_a", monday + 10 * HOUR)
    fail(b, "in_b", monday + 20 * HOUR)
    fail(c, "in_c", monday + 30 * HOUR)
    pay(a, "in_a", monday + 34 * HOUR)               # 24 hours after its failure
    pay(b, "in_b", monday + 68 * HOUR)               # 48 hours after
    weeks = by_week(payback_weeks(practice_id=practice.pk, now=NOW))
    last = weeks["2026-11-09"]
    assert (last.failed_payments, last.failed_addressed, last.failed_recovered) == (3, 2, 2)
    assert last.hours_to_address == 36.0
    assert sum(w.failed_payments for w in weeks.values()) == 3   # each case once
    assert weeks["2026-11-16"].failed_payments == 0 and weeks["2026-11-16"].hours_to_address is None


def test_weeks_start_on_monday_in_the_practice_time_zone(glow, practice):
    practice.timezone = "Asia/Tokyo"
    practice.save(update_fields=["timezone"])
    membership = active_membership(tier=glow[0], now=NOW - timedelta(days=60))
    # Sunday 15 November 20:30 UTC is already Monday 16 November, 05:30, in Tokyo.
    fail(membership, "in_sunday", datetime(2026, 11, 15, 20, 30, tzinfo=UTC))
    weeks = payback_weeks(practice_id=practice.pk, now=NOW)
    assert weeks[-1].week_start == datetime(2026, 11, 16, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert [w.failed_payments for w in weeks[-2:]] == [0, 1]
    # The same moment in Los Angeles is Sunday: last week.
    in_la = payback_weeks(practice_id=practice.pk, now=NOW, zone=ZoneInfo("America/Los_Angeles"))
    assert [w.failed_payments for w in in_la[-2:]] == [1, 0]


def test_weeks_stay_monday_midnight_across_daylight_saving(glow, practice):
    practice.timezone = "America/New_York"                       # clocks go back on 1 November 2026
    practice.save(update_fields=["timezone"])
    membership = active_membership(tier=glow[0], now=NOW - timedelta(days=90))
    # Monday 2 November 00:30 in New York (EST) is 05:30 UTC: the first week after the change.
    fail(membership, "in_dst", datetime(2026, 11, 2, 5, 30, tzinfo=UTC))
    weeks = payback_weeks(practice_id=practice.pk, now=NOW)
    assert [w.starts_on.isoformat() for w in weeks] == [
        "2026-09-28", "2026-10-05", "2026-10-12", "2026-10-19", "2026-10-26", "2026-11-02", "2026-11-09", "2026-11-16"]
    assert all(w.week_start.weekday() == 0 and (w.week_start.hour, w.week_start.minute) == (0, 0) for w in weeks)
    assert by_week(weeks)["2026-11-02"].failed_payments == 1
    assert by_week(weeks)["2026-10-26"].failed_payments == 0


def test_reconciliation_work_disputes_and_price_mismatches(glow, practice, manager):
    tier, facial, _ = glow
    run(practice, GOOD_CSV.replace("Glow,2024-03-05,$199.00", "Glow,2024-03-05,$179.00").encode())
    found_at = datetime(2026, 11, 10, 11, 0, tzinfo=UTC)
    run_reconciliation(practice=practice, now=found_at, trigger="test")
    mismatch = Discrepancy.objects.get(practice=practice)
    assert mismatch.kind == "price_mismatch"
    resolve_discrepancy(discrepancy=mismatch, actor=services.Actor.staff(manager), note="Promo rate ended", now=found_at + 30 * HOUR)
    membership = active_membership(tier=tier, now=NOW - timedelta(days=30))
    entry = services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                        idempotency_key="r1", now=NOW - 2 * HOUR)
    services.reverse_entry(entry=entry, actor=services.Actor.staff(manager), reason="Member disputes it",
                           idempotency_key="rv1", now=NOW - HOUR, dispute=True)
    services.reverse_entry(  # an ordinary correction is not a dispute
        entry=services.redeem_entitlement(membership=membership, service=glow[2], quantity=500,
                                          actor=services.Actor.system(), idempotency_key="r2", now=NOW - HOUR),
        actor=services.Actor.staff(manager), reason="Wrong amount", idempotency_key="rv2", now=NOW - HOUR)
    weeks = by_week(payback_weeks(practice_id=practice.pk, now=NOW))
    last, this = weeks["2026-11-09"], weeks["2026-11-16"]
    assert (last.discrepancies_found, last.discrepancies_resolved, last.hours_to_resolve) == (1, 1, 30.0)
    assert last.tier_billing_errors == 1
    assert (this.disputes, last.disputes, this.tier_billing_errors) == (1, 0, 0)


@pytest.mark.localstripe
def test_downgraded_member_still_billed_the_old_rate_is_a_tier_change_billing_error(stripe_env, glow, practice):
    """The ledger moves the member to a cheaper tier; the processor keeps charging the old price (the
    change never reached it). Reconciliation finds it; the week counts one billing error for the
    member, though two sides show it (the spreadsheet still has the old tier and price too)."""
    tier, facial, _ = glow
    lite = TierFactory(practice=practice, code="lite", name="Lite", price_cents=9900)
    TierBenefitFactory(tier=lite, service=facial)
    client = stripe_env.make_client()
    product = client.v1.products.create({"name": "Membership"})
    client.v1.plans.create({"id": "glow", "product": product.id, "amount": 19900, "currency": "usd",
                            "interval": "month"})
    customer, subscription = make_sub(client, "glow")
    import_csv(practice, [f"M1,Ana,Silva,Glow,2024-03-05,$199.00,1,{customer},{subscription},active"])
    from memberships.models import Membership

    membership = Membership.objects.get(member__member_number="M1")
    services.change_tier(membership=membership, new_tier=lite, effective="now", actor=services.Actor.system(),
                         idempotency_key="down", now=NOW - 8 * 24 * HOUR)
    run_reconciliation(practice=practice, now=NOW - 3 * HOUR, trigger="test")
    kinds = sorted(Discrepancy.objects.values_list("kind", "values__sides"))
    assert ("price_mismatch", "ledger/processor") in kinds and ("price_mismatch", "sheet/ledger") in kinds
    this_week = payback_weeks(practice_id=practice.pk, now=NOW)[-1]
    assert this_week.tier_billing_errors == 1
    assert this_week.discrepancies_found == len(kinds)


# --- staff hours saved, month by month (billing.metrics.payback.staff_time_saved) --------------------

def _page_view(member, at):
    """What the member's own page writes each time it is shown (portal/me/views.py)."""
    from memberships.services.common import write_view_audit

    write_view_audit(actor=services.Actor.member(member), action="member_page_view", members=[member], now=at)


def _gone_discrepancy(practice, n, at, *, resolved_by=None):
    from billing.models import ReconciliationRun

    run = ReconciliationRun.objects.create(practice=practice, started_at=at - 24 * HOUR)
    return Discrepancy.objects.create(
        practice=practice, fingerprint=f"{n:064d}", kind="balance_mismatch", message="balance differs",
        first_seen_run=run, last_seen_run=run, first_seen_at=at - 24 * HOUR, last_seen_at=at - 24 * HOUR,
        gone_at=at, resolved_at=at - HOUR if resolved_by else None, resolved_by=resolved_by)


def _request(membership, at, *, self_serve):
    from memberships.services.member_requests import file_member_request

    practice = membership.member.practice
    practice.member_requests_self_serve = self_serve
    practice.automation_stage = "tier_sync"          # self-serve applies where the processor is told
    practice.save(update_fields=["member_requests_self_serve", "automation_stage"])
    return file_member_request(membership=membership, kind="cancel", reason="price",
                               actor=services.Actor.member(membership.member),
                               idempotency_key=f"req:{membership.pk}:{at:%Y%m%d}", now=at)


def by_month(saved):
    return {m.month.isoformat(): m for m in saved.months}


def test_staff_time_saved_counts_what_needed_no_staff_month_by_month(glow, practice, manager):
    from billing.metrics.payback import StaffMinutes, staff_time_saved
    from memberships.services.common import write_view_audit

    la = ZoneInfo("America/Los_Angeles")
    ana, ben, cy = (active_membership(tier=glow[0], now=NOW - timedelta(days=200)) for _ in range(3))
    _page_view(ana.member, datetime(2026, 11, 2, 9, 0, tzinfo=la))
    _page_view(ana.member, datetime(2026, 11, 2, 18, 0, tzinfo=la))     # the same day again: one look-up
    _page_view(ana.member, datetime(2026, 11, 3, 9, 0, tzinfo=la))      # the next day: another
    _page_view(ben.member, datetime(2026, 11, 2, 9, 5, tzinfo=la))
    _page_view(ben.member, datetime(2026, 10, 15, 9, 0, tzinfo=la))
    write_view_audit(actor=services.Actor.staff(manager), action="chart", members=[cy.member],   # staff reading
                     now=datetime(2026, 11, 2, 9, 0, tzinfo=la))
    _gone_discrepancy(practice, 1, datetime(2026, 11, 4, 3, 0, tzinfo=la))           # the nightly run closed it
    _gone_discrepancy(practice, 2, datetime(2026, 11, 5, 3, 0, tzinfo=la), resolved_by=manager)   # staff did
    _gone_discrepancy(practice, 3, datetime(2026, 9, 5, 3, 0, tzinfo=la))
    _request(ana, datetime(2026, 11, 6, 10, 0, tzinfo=la), self_serve=True)           # applied at once
    _request(ben, datetime(2026, 11, 6, 11, 0, tzinfo=la), self_serve=False)          # waits for staff
    approved = _request(cy, datetime(2026, 11, 7, 11, 0, tzinfo=la), self_serve=False)
    from memberships.services.member_requests import approve_member_request

    approve_member_request(request_id=approved.pk, practice_id=practice.pk, actor=services.Actor.staff(manager),
                           now=datetime(2026, 11, 8, 9, 0, tzinfo=la))                   # a staff step: not counted
    other = PracticeFactory(slug="elsewhere")
    elsewhere = active_membership(tier=TierFactory(practice=other, code="x"), now=NOW - timedelta(days=30))
    _page_view(elsewhere.member, datetime(2026, 11, 2, 9, 0, tzinfo=la))
    _gone_discrepancy(other, 4, datetime(2026, 11, 4, 3, 0, tzinfo=la))

    saved = staff_time_saved(practice_id=practice.pk, now=NOW, zone=la,
                             rates=StaffMinutes(balance_lookup=4, reconciliation_item=6, self_served_request=10,
                                                hourly_cost_cents=3000))
    months = by_month(saved)
    assert len(saved.months) == 12 and saved.months[-1].month.isoformat() == "2026-11-01"
    nov, oct_, sep = months["2026-11-01"], months["2026-10-01"], months["2026-09-01"]
    assert (nov.balance_lookups, nov.reconciliation_closed, nov.self_served_requests) == (3, 1, 1)
    assert nov.minutes == 3 * 4 + 6 + 10 and nov.cost_cents == 1400 and nov.hours == 0.5
    assert (oct_.balance_lookups, oct_.reconciliation_closed, sep.reconciliation_closed) == (1, 0, 1)
    assert saved.total_minutes == 28 + 4 + 6 and saved.total_cost_cents == 1900
    everyone = staff_time_saved(practice_id=None, now=NOW, zone=la)
    assert by_month(everyone)["2026-11-01"].balance_lookups == 4 and by_month(everyone)["2026-11-01"].reconciliation_closed == 2


def test_staff_time_days_and_months_are_the_practice_time_zone(glow, practice, settings):
    from billing.metrics.payback import staff_time_saved

    settings.STAFF_MINUTES_PER_BALANCE_LOOKUP, settings.STAFF_HOURLY_COST_CENTS = 15, 6000
    practice.timezone = "Asia/Tokyo"
    practice.save(update_fields=["timezone"])
    member = active_membership(tier=glow[0], now=NOW - timedelta(days=60)).member
    # 31 October 14:30 and 16:30 UTC: the same day in Los Angeles (October), two days in Tokyo (31 Oct, 1 Nov).
    _page_view(member, datetime(2026, 10, 31, 14, 30, tzinfo=UTC))
    _page_view(member, datetime(2026, 10, 31, 16, 30, tzinfo=UTC))
    months = by_month(staff_time_saved(practice_id=practice.pk, now=NOW))
    assert (months["2026-10-01"].balance_lookups, months["2026-11-01"].balance_lookups) == (1, 1)
    assert months["2026-11-01"].minutes == 15 and months["2026-11-01"].cost_cents == 1500   # the settings' rates
    in_la = by_month(staff_time_saved(practice_id=practice.pk, now=NOW, zone=ZoneInfo("America/Los_Angeles")))
    assert (in_la["2026-10-01"].balance_lookups, in_la["2026-11-01"].balance_lookups) == (1, 0)
