"""The dunning run's sweep reads the failed invoices without a case, then opens their cases under the
memberships' locks. An invoice the practice voids or writes off in between (the webhook lands after
the sweep's read, before its locks) is owed by nobody: no case, no 'card declined' flag, no message —
as when the void comes before the read. And a void racing the run's own steps on PostgreSQL (real
threads: the webhook's worker and the dunning run's) leaves the case ended, the flag off and nothing
failed, whichever takes the lock first."""

from datetime import timedelta

import pytest

from billing import dunning
from billing.facts import InvoiceForgiven
from billing.forgiveness import record_invoice_forgiven
from billing.models import DunningCase, DunningCaseStatus, Invoice, InvoiceStatus
from integrations import outbox
from memberships import selectors
from memberships.models import Membership, MembershipStatus
from tests.memberships.ledger_checks import hammer
from tests.support.dunning_race import run_with_a_webhook_between_read_and_lock, webhook_after_the_sweeps_read

from .conftest import T0, emails_to, sms_to
from .test_dunning_sweep import failed_invoice

pytestmark = pytest.mark.django_db


def _forgive(membership, ref, at, *, written_off=False):
    return record_invoice_forgiven(fact=InvoiceForgiven(
        processor="stripe", invoice_ref=ref, subscription_ref="", customer_ref="cus_test",
        membership_ref=f"ms_{membership.pk}", amount_cents=19900, currency="usd", attempt_count=1,
        period_start=None, period_end=None, created=int((at - timedelta(hours=1)).timestamp()),
        event_created=int(at.timestamp()), written_off=written_off,
        how="marked uncollectible" if written_off else "voided", forgiven_at=at), now=at)


@pytest.mark.parametrize("written_off", [False, True])
def test_an_invoice_forgiven_while_the_sweep_runs_gets_no_case(member_factory, monkeypatch, written_off):
    membership = member_factory()
    failed_invoice(membership, "in_forgiven_meanwhile")
    webhook_after_the_sweeps_read(
        lambda: _forgive(membership, "in_forgiven_meanwhile", T0, written_off=written_off), monkeypatch)
    assert dunning.run_dunning(now=T0).get("opened", 0) == 0
    outbox.dispatch_due(now=T0)

    assert not DunningCase.objects.exists()
    assert list(selectors.open_chart_flags(member=membership.member)) == []
    assert sms_to(membership.member) == [] and emails_to(membership.member) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_void_between_the_sweeps_read_and_lock_opens_nothing(member_factory, monkeypatch):
    membership = member_factory()
    failed_invoice(membership, "in_forgiven_meanwhile")
    run_with_a_webhook_between_read_and_lock(lambda: _forgive(membership, "in_forgiven_meanwhile", T0), monkeypatch,
                                             now=T0)
    outbox.dispatch_due(now=T0)
    assert Invoice.objects.get(processor_invoice_id="in_forgiven_meanwhile").status == InvoiceStatus.VOID
    assert not DunningCase.objects.exists()
    assert list(selectors.open_chart_flags(member=membership.member)) == []
    assert sms_to(membership.member) == [] and emails_to(membership.member) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_on_postgresql_a_void_racing_the_dunning_run_ends_the_case(member_factory, round_):
    """Ten members' cases are due their retry and messages; the practice voids every invoice while the
    run works them off. Whichever worker locks a case first, each case ends forgiven, no flag stays up,
    and nothing raised."""
    memberships = [member_factory() for _ in range(10)]
    for n, membership in enumerate(memberships):
        failed_invoice(membership, f"in_race_{n}")
    assert dunning.run_dunning(now=T0)["opened"] == 10
    later = T0 + timedelta(days=3, hours=1)                 # the day-3 retry and its messages are due

    def worker(i):
        if i == 0:
            return dunning.run_dunning(now=later)
        return [_forgive(m, f"in_race_{n}", later) for n, m in enumerate(memberships)]

    results, errors = hammer(worker, 2)
    assert errors == []
    dunning.run_dunning(now=later + timedelta(minutes=1))   # what met the other worker's lock
    outbox.dispatch_due(now=later + timedelta(minutes=1))

    assert set(DunningCase.objects.values_list("status", flat=True)) == {DunningCaseStatus.FORGIVEN}
    assert all(not selectors.open_chart_flags(member=m.member) for m in memberships)
    assert set(Invoice.objects.values_list("status", flat=True)) == {InvoiceStatus.VOID}
    assert Membership.objects.filter(status=MembershipStatus.PAST_DUE).count() == 10   # Stripe's event still to come
