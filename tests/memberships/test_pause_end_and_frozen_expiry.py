"""A pause ends by itself on its end date (in the practice's time zone), a charge after the pause
refills, and frozen credit of a cancelled membership expires once the paid period is over."""

from datetime import date, datetime, timedelta, timezone as dt_timezone

from billing import services as billing_services
from billing.facts import ChargeSucceeded
from memberships import services
from memberships.models import EntitlementBalance, EntryKind, EventKind, LedgerEntry, MembershipStatus
from memberships.tasks import ledger_housekeeping
from tests.factories import active_membership

UTC = dt_timezone.utc
START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)          # 10:00 in Los Angeles


def _pause(m, until: date):
    return services.pause_membership(membership=m, until=until, actor=services.Actor.system(),
                                     idempotency_key=f"pause:{m.pk}", now=START)


def test_a_pause_ends_on_its_end_date_in_the_practice_time_zone(glow, monkeypatch):
    m = active_membership(tier=glow[0], now=START)
    _pause(m, until=date(2026, 3, 20))
    # 2026-03-20 05:00 UTC is still March 19 in Los Angeles: not yet.
    monkeypatch.setattr("django.utils.timezone.now", lambda: datetime(2026, 3, 20, 5, 0, tzinfo=UTC))
    assert ledger_housekeeping()["resumed"] == 0
    m.refresh_from_db()
    assert m.status == MembershipStatus.PAUSED
    # 08:00 UTC is 01:00 on March 20 in Los Angeles: the pause is over.
    monkeypatch.setattr("django.utils.timezone.now", lambda: datetime(2026, 3, 20, 8, 0, tzinfo=UTC))
    assert ledger_housekeeping()["resumed"] == 1
    assert ledger_housekeeping()["resumed"] == 0
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE and m.paused_until is None
    assert m.events.filter(kind=EventKind.RESUMED).count() == 1


def _paid(m, *, ref: str, paid_at: datetime):
    return billing_services.record_charge_succeeded(
        charge=ChargeSucceeded(processor="stripe", invoice_ref=ref, subscription_ref=m.processor_subscription_id,
                               customer_ref="cus_1", membership_ref=f"ms_{m.pk}", amount_cents=19900,
                               currency="usd", attempt_count=1, period_start=paid_at, period_end=paid_at + timedelta(days=30),
                               created=int(paid_at.timestamp()), event_created=int(paid_at.timestamp()),
                               amount_paid_cents=19900, paid_at=paid_at, billing_reason="subscription_cycle"),
        now=paid_at)


def test_the_first_charge_after_a_pause_resumes_and_refills_once(glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier, now=START)
    m.processor_subscription_id = "sub_pause"
    m.save(update_fields=["processor_subscription_id"])
    _pause(m, until=date(2026, 3, 12))
    later = START + timedelta(days=40)                  # nobody ran the hourly job
    _paid(m, ref="in_after_pause", paid_at=later)
    _paid(m, ref="in_after_pause", paid_at=later)       # the webhook again
    m.refresh_from_db()
    assert m.status == MembershipStatus.ACTIVE
    assert LedgerEntry.objects.filter(membership=m, kind=EntryKind.GRANT, cycle_key="in_after_pause").exists()
    assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 2   # 1 carried over + 1


def test_a_charge_during_a_pause_refills_nothing_and_says_so_on_the_timeline(glow):
    m = active_membership(tier=glow[0], now=START)
    m.processor_subscription_id = "sub_pause2"
    m.save(update_fields=["processor_subscription_id"])
    _pause(m, until=date(2026, 5, 1))
    _paid(m, ref="in_during_pause", paid_at=START + timedelta(days=5))
    m.refresh_from_db()
    assert m.status == MembershipStatus.PAUSED
    assert not LedgerEntry.objects.filter(membership=m, cycle_key="in_during_pause").exists()
    assert m.events.filter(kind=EventKind.NOTE, summary__startswith="Charge received while paused").exists()


def test_frozen_credit_expires_after_the_paid_period_once(glow, monkeypatch):
    tier, facial, credit = glow
    m = active_membership(tier=tier, now=START)
    m.current_period_end = START + timedelta(days=10)
    m.save(update_fields=["current_period_end"])
    services.cancel_membership(membership=m, actor=services.Actor.system(), idempotency_key="c", now=START)
    monkeypatch.setattr("django.utils.timezone.now", lambda: START + timedelta(days=5))
    assert ledger_housekeeping()["frozen_expired"] == 0            # still inside the paid period
    monkeypatch.setattr("django.utils.timezone.now", lambda: START + timedelta(days=11))
    assert ledger_housekeeping()["frozen_expired"] == 1 + 5000      # the facial and $50.00 of credit
    assert ledger_housekeeping()["frozen_expired"] == 0
    assert EntitlementBalance.objects.get(membership=m, service=credit).balance == 0
    assert LedgerEntry.objects.filter(membership=m, kind=EntryKind.EXPIRE).count() == 2


def test_a_membership_whose_resume_fails_does_not_stop_the_others(glow, monkeypatch, caplog):
    """A database error while resuming one membership (a bug we do not know yet: here a statement
    the database refuses, integer out of range) is undone, logged by its id, and left for the next
    run; the other pauses that ended are resumed in the same run."""
    from django.db.models.signals import post_save

    from memberships.models import Event

    broken, fine = (active_membership(tier=glow[0], now=START) for _ in range(2))
    for m in (broken, fine):
        _pause(m, until=date(2026, 3, 20))

    def overflow(sender, instance, created, **kwargs):
        if created and instance.kind == EventKind.RESUMED and instance.membership_id == broken.pk:
            Event.objects.filter(pk=instance.pk).update(membership_id=2**63)

    monkeypatch.setattr("django.utils.timezone.now", lambda: datetime(2026, 3, 20, 20, 0, tzinfo=UTC))
    post_save.connect(overflow, sender=Event, dispatch_uid="test-overflow")
    try:
        assert ledger_housekeeping()["resumed"] == 1
    finally:
        post_save.disconnect(sender=Event, dispatch_uid="test-overflow")
    broken.refresh_from_db()
    fine.refresh_from_db()
    assert fine.status == MembershipStatus.ACTIVE
    assert broken.status == MembershipStatus.PAUSED and not broken.events.filter(kind=EventKind.RESUMED).exists()
    assert f"could not resume membership {broken.pk}" in caplog.text
    assert ledger_housekeeping()["resumed"] == 1          # the next run resumes it
    broken.refresh_from_db()
    assert broken.status == MembershipStatus.ACTIVE
