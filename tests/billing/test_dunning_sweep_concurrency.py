"""On PostgreSQL, with real threads: two workers running the dunning run at the same moment over the
same failed invoices — both having read the same new failures before either writes — open each case
once and queue each day-0 message once; so does the sweep racing the webhook's one-at-a-time path."""

import threading

import pytest
from django.db.models import Count

from billing import dunning
from billing.dunning import sweep
from billing.dunning.opening import failure_of_invoice, open_case_for_failure
from billing.models import DunningCase, DunningMessage, DunningStep, Invoice
from memberships.models import ChartFlag, Event, EventKind
from tests.memberships.ledger_checks import hammer
from tests.support.waiting import PATIENCE

from .conftest import T0
from .test_dunning_sweep import failed_invoice

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MEMBERS = 40


@pytest.fixture
def failures(member_factory):
    return [failed_invoice(member_factory(), f"in_race_{i}") for i in range(MEMBERS)]


def _assert_each_once():
    assert DunningCase.objects.count() == MEMBERS
    assert not DunningCase.objects.values("practice_id", "invoice_ref").annotate(n=Count("id")).filter(n__gt=1)
    assert ChartFlag.objects.count() == MEMBERS
    assert Event.objects.filter(kind=EventKind.DUNNING_OPENED).count() == MEMBERS
    assert DunningStep.objects.count() == MEMBERS * 10               # the default policy's plan, once per case
    # Day 0 (SMS and email) queued exactly once per case and step.
    assert DunningMessage.objects.count() == MEMBERS * 2
    assert not DunningMessage.objects.values("step_id").annotate(n=Count("id")).filter(n__gt=1)
    assert Event.objects.filter(kind=EventKind.DUNNING_MESSAGE).count() == MEMBERS * 2


def test_two_workers_running_the_sweep_at_once_open_each_case_once(failures, monkeypatch):
    both_read = threading.Barrier(2)
    real = sweep.failures_without_case

    def read_then_wait(**kwargs):
        found = real(**kwargs)
        if len(found) == MEMBERS:                    # the first read of each worker: both see every failure
            both_read.wait(timeout=PATIENCE)
        return found

    monkeypatch.setattr(sweep, "failures_without_case", read_then_wait)
    results, errors = hammer(n=2, fn=lambda i: dunning.run_dunning(now=T0))
    assert not errors, errors
    assert sum(r.get("opened", 0) for r in results) == MEMBERS
    _assert_each_once()
    assert DunningCase.objects.filter(failure_count=1).count() == MEMBERS


def test_the_sweep_racing_the_webhook_path_opens_each_case_once(failures):
    def webhook_path():
        for invoice in Invoice.objects.select_related("membership__member").order_by("-id"):
            item = failure_of_invoice(invoice, mark_past_due=False, now=T0)
            open_case_for_failure(membership=invoice.membership, invoice_ref=item.invoice_ref,
                                  amount_cents=item.amount_cents, decline_code=item.decline_code, hard=item.hard,
                                  failed_at=item.failed_at, mark_past_due=False, now=T0)

    results, errors = hammer(n=2, fn=lambda i: dunning.run_dunning(now=T0) if i == 0 else webhook_path())
    assert not errors, errors
    dunning.run_dunning(now=T0)                      # the day-0 messages of the cases the webhook path opened
    _assert_each_once()
