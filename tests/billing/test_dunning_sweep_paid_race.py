"""The dunning run's sweep reads the failed invoices without a case, then opens their cases under the
memberships' locks. A member who pays in between (the paid webhook lands after the sweep's read,
before its locks) owes nothing: no case, no 'card declined' flag on the chart, no card-update SMS or
email — the same as when the payment comes before the read."""

from datetime import timedelta

import pytest

from billing import dunning
from billing import services as billing_services
from billing.facts import ChargeSucceeded
from billing.models import DunningCase, DunningCaseStatus, DunningMessage, Invoice, InvoiceStatus, MessageStatus
from integrations import outbox
from memberships import selectors
from memberships.models import Event, EventKind, Membership, MembershipStatus
from tests.support.dunning_race import run_with_a_webhook_between_read_and_lock, webhook_after_the_sweeps_read

from .conftest import T0, emails_to, sms_to
from .test_dunning_sweep import failed_invoice

pytestmark = pytest.mark.django_db


def _pay(membership, ref, at):
    return billing_services.record_charge_succeeded(
        charge=ChargeSucceeded(processor="stripe", invoice_ref=ref, subscription_ref="",
                               customer_ref="cus_test", membership_ref=f"ms_{membership.pk}", amount_cents=19900,
                               currency="usd", attempt_count=2, period_start=None, period_end=None,
                               created=int((at - timedelta(hours=1)).timestamp()),
                               event_created=int(at.timestamp()), amount_paid_cents=19900, paid_at=at),
        now=at)


def test_a_member_who_pays_while_the_sweep_runs_gets_no_case_and_no_card_declined_message(member_factory,
                                                                                          monkeypatch):
    paying, owing = member_factory(), member_factory()
    failed_invoice(paying, "in_paid_meanwhile")
    failed_invoice(owing, "in_still_owed")
    webhook_after_the_sweeps_read(lambda: _pay(paying, "in_paid_meanwhile", T0), monkeypatch)
    counts = dunning.run_dunning(now=T0)
    outbox.dispatch_due(now=T0)

    assert Invoice.objects.get(processor_invoice_id="in_paid_meanwhile").status == InvoiceStatus.PAID
    assert Membership.objects.get(pk=paying.pk).status == MembershipStatus.ACTIVE
    assert not DunningCase.objects.filter(invoice_ref="in_paid_meanwhile").exists()
    assert list(selectors.open_chart_flags(member=paying.member)) == []
    assert sms_to(paying.member) == [] and emails_to(paying.member) == []
    # The member who still owes is chased as before.
    assert counts["opened"] == 1
    assert DunningCase.objects.filter(invoice_ref="in_still_owed").exists()
    assert [f.text for f in selectors.open_chart_flags(member=owing.member)] == [
        "Card declined — update card before treatment"]
    assert len(sms_to(owing.member)) == 1 and len(emails_to(owing.member)) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_paid_webhook_in_another_worker_between_read_and_lock_opens_nothing(member_factory,
                                                                                             monkeypatch):
    """Real threads: the sweep's worker has read the failure; the webhook's worker records the
    payment and commits; then the sweep locks and opens."""
    paying = member_factory()
    failed_invoice(paying, "in_paid_meanwhile")
    run_with_a_webhook_between_read_and_lock(lambda: _pay(paying, "in_paid_meanwhile", T0), monkeypatch, now=T0)
    outbox.dispatch_due(now=T0)
    assert Invoice.objects.get(processor_invoice_id="in_paid_meanwhile").status == InvoiceStatus.PAID
    assert not DunningCase.objects.filter(invoice_ref="in_paid_meanwhile").exists()
    assert list(selectors.open_chart_flags(member=paying.member)) == []
    assert sms_to(paying.member) == [] and emails_to(paying.member) == []


def test_a_card_declined_message_still_in_the_outbox_when_the_member_pays_is_not_sent(member_factory):
    """The run queued the day-0 SMS and email; the member paid before the outbox sent them (the
    outbox runs after the run, retries a provider that was down, waits out an SMS hold): the member
    does not get 'your card was declined' after paying, and the timeline says they were not sent."""
    membership = member_factory()
    failed_invoice(membership, "in_paid_before_sending")
    assert dunning.run_dunning(now=T0)["opened"] == 1
    assert DunningMessage.objects.filter(case__invoice_ref="in_paid_before_sending").count() == 2

    _pay(membership, "in_paid_before_sending", T0 + timedelta(minutes=1))
    outbox.dispatch_due(now=T0 + timedelta(minutes=2))

    assert DunningCase.objects.get(invoice_ref="in_paid_before_sending").status == DunningCaseStatus.RECOVERED
    assert sms_to(membership.member) == [] and emails_to(membership.member) == []
    assert set(DunningMessage.objects.values_list("status", flat=True)) == {MessageStatus.SKIPPED}
    notes = list(Event.objects.filter(member=membership.member, kind=EventKind.DUNNING)
                 .values_list("summary", flat=True))
    assert sum("not sent" in note and "payment follow-up ended" in note for note in notes) == 2
    outbox.dispatch_due(now=T0 + timedelta(days=1))
    assert sms_to(membership.member) == [] and emails_to(membership.member) == []
