"""The inbox applies a batch of the record's webhooks together, with the outcome of applying them one
by one: each treatment spent once whoever delivers it how often, what the balance cannot cover filed
as a record exception, bookings, unknown patients and services as before — and with two workers
sweeping the same backlog at once (PostgreSQL), nothing spent twice and nothing failed."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus, RecordException
from integrations.records import get_adapter
from integrations.records.inbound import process_inbound_event, receive_webhook
from memberships.models import AutomationStage, EntitlementBalance, EntryKind, LedgerEntry
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier
from tests.memberships.ledger_checks import hammer
from tests.support.waiting import PATIENCE

# (patient, type, appointment, service code, quantity), in arrival order.
BACKLOG = [
    ("P-0", "treatment.completed", "A0", "hydrafacial", 1),
    ("P-1", "treatment.completed", "A1", "hydrafacial", 1),
    ("P-1", "treatment.completed", "A1", "hydrafacial", 1),        # the same treatment again: spent once
    ("P-1", "treatment.completed", "A1b", "hydrafacial", 1),       # a second facial: no balance left
    ("P-2", "appointment.booked", "B2", "hydrafacial", 1),         # held ...
    ("P-2", "treatment.completed", "B2", "hydrafacial", 1),        # ... and committed
    ("P-2", "treatment.completed", "C2", "product-credit", 1000),  # the booked member's other treatment
    ("P-3", "treatment.completed", "A3", "product-credit", 6000),  # more credit than there is
    ("P-9", "treatment.completed", "A9", "hydrafacial", 1),        # no such patient
    ("P-4", "treatment.completed", "A4", "laser", 1),              # no such service
    ("P-5", "treatment.completed", "A5", "hydrafacial", 2),        # two of one
    ("P-0", "treatment.completed", "A0", "hydrafacial", 1),        # A0 again, later
]


def clinic(slug, patients=("P-0", "P-1", "P-2", "P-3", "P-4", "P-5")):
    practice = PracticeFactory(slug=slug, record_adapter="webhook", record_webhook_secret="s" * 20,
                               automation_stage=AutomationStage.REDEMPTIONS,
                               record_config={"outbound_url": "https://record.example/hook"})
    tier, facial, credit = glow_tier(practice)
    now = timezone.now()
    memberships = {p: active_membership(tier=tier, member=MemberFactory(practice=practice, record_patient_id=p),
                                        now=now) for p in patients}
    return practice, memberships


def store(practice, backlog, *, prefix=""):
    adapter, now = get_adapter(practice), timezone.now() - timedelta(seconds=5)
    rows = []
    for i, (patient, kind, appointment, code, quantity) in enumerate(backlog):
        payload = {"id": f"{prefix}evt_{i}", "type": kind,
                   "data": {"appointment_id": appointment, "patient_id": patient, "service_code": code,
                            "quantity": quantity}}
        row, _ = receive_webhook(webhook=adapter.inbound_webhook(event_id=f"{prefix}evt_{i}", event_type=kind,
                                                                 payload=payload), adapter_name="webhook", now=now)
        rows.append(row.pk)
    return rows


def state(practice, memberships, rows):
    """What staff see: each webhook's outcome, each member's balances and spends, the exceptions."""
    outcomes = [tuple(InboundEvent.objects.filter(pk=pk).values_list("status", "error").get()) for pk in rows]
    balances = {p: sorted(EntitlementBalance.objects.filter(membership=m).values_list("service__code", "balance",
                                                                                     "reserved"))
                for p, m in memberships.items()}
    spends = {p: sorted(LedgerEntry.objects.filter(membership=m, kind=EntryKind.REDEEM)
                        .values_list("service__code", "quantity", "balance_after", "idempotency_key"))
              for p, m in memberships.items()}
    spends = {p: [(code, q, after, key.split(":", 2)[2]) for code, q, after, key in s] for p, s in spends.items()}
    exceptions = sorted(RecordException.objects.filter(practice=practice)
                        .values_list("appointment_ref", "event_type", "kind", "patient_ref", "quantity"))
    return outcomes, balances, spends, exceptions


@pytest.mark.django_db
def test_a_sweep_applies_the_records_webhooks_as_one_by_one_would(settings):
    settings.INBOX_BATCH_SIZE = 100
    alone, alone_memberships = clinic("alone")
    alone_rows = store(alone, BACKLOG, prefix="a")
    later = timezone.now()
    for pk in alone_rows:
        process_inbound_event(inbound_id=pk, now=later)
    swept, swept_memberships = clinic("swept")
    swept_rows = store(swept, BACKLOG, prefix="s")

    assert inbox.process_due(now=later) == {InboundStatus.PROCESSED: len(BACKLOG)}

    expected = state(alone, alone_memberships, alone_rows)
    assert state(swept, swept_memberships, swept_rows) == expected
    outcomes, balances, spends, exceptions = expected
    assert [error for _, error in outcomes] == [
        "redeemed", "redeemed", "already_spent", "exception:no_balance", "held", "committed", "redeemed",
        "exception:no_balance", "exception:unknown_patient", "exception:unknown_service", "exception:no_balance",
        "already_spent"]
    assert balances["P-1"] == [("hydrafacial", 0, 0), ("product-credit", 5000, 0)]
    assert [(ref, kind) for ref, _, kind, _, _ in exceptions] == [
        ("A1b", "no_balance"), ("A3", "no_balance"), ("A4", "unknown_service"), ("A5", "no_balance"),
        ("A9", "unknown_patient")]


@pytest.mark.django_db
def test_a_sweep_of_treatments_costs_the_same_queries_for_ten_or_forty(settings, django_assert_max_num_queries):
    """Set-based: a batch's treatments are resolved, spent and written in a fixed number of statements."""
    settings.INBOX_BATCH_SIZE = 100
    practice, memberships = clinic("many", patients=[f"P-{i}" for i in range(50)])
    store(practice, [(f"P-{i}", "treatment.completed", f"A{i}", "hydrafacial", 1) for i in range(10)], prefix="x")
    with django_assert_max_num_queries(30) as ten:
        assert inbox.process_due(now=timezone.now()) == {InboundStatus.PROCESSED: 10}
    store(practice, [(f"P-{i}", "treatment.completed", f"A{i}", "hydrafacial", 1) for i in range(10, 50)],
          prefix="y")
    with django_assert_max_num_queries(len(ten.captured_queries)):
        assert inbox.process_due(now=timezone.now()) == {InboundStatus.PROCESSED: 40}
    assert EntitlementBalance.objects.filter(service__code="hydrafacial", balance=0).count() == 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_sweeping_one_backlog_spend_each_treatment_once_and_fail_nothing(settings):
    """60 members with one facial each; each member's treatment delivered twice or three times (new
    event ids: the record retried), and a second treatment for every third member that the balance
    cannot cover; two workers sweep the shuffled backlog in small batches at the same moment."""
    settings.INBOX_BATCH_SIZE = 7
    practice, memberships = clinic("pair", patients=[f"P-{i}" for i in range(60)])
    backlog = []
    for i in range(60):
        backlog += [(f"P-{i}", "treatment.completed", f"A{i}", "hydrafacial", 1)] * (2 + i % 2)
        if i % 3 == 0:        # whichever of the two comes first is spent, the other refused
            backlog.append((f"P-{i}", "treatment.completed", f"extra{i}", "hydrafacial", 1))
    import random

    random.Random(16).shuffle(backlog)
    store(practice, backlog)
    connection.close()

    def sweep(_):
        deadline, counts = time.monotonic() + PATIENCE, {}
        while time.monotonic() < deadline:
            done = inbox.process_due(now=timezone.now())
            for status, n in done.items():
                counts[status] = counts.get(status, 0) + n
            if not done:
                if not InboundEvent.objects.filter(status=InboundStatus.RECEIVED).exists():
                    return counts
                time.sleep(0.05)
        return counts

    results, errors = hammer(sweep, 2)

    assert errors == []
    # Each event processed once, by one worker or the other (under load one may have swept it all).
    assert sum(counts.get(InboundStatus.PROCESSED, 0) for counts in results) == len(backlog)
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}
    spent = [key.rsplit(":", 2)[1] for key in
             LedgerEntry.objects.filter(kind=EntryKind.REDEEM).values_list("idempotency_key", flat=True)]
    refused = list(RecordException.objects.values_list("appointment_ref", "kind"))
    assert len(spent) == len(set(spent)) == 60                               # one spend per member, never two
    assert EntitlementBalance.objects.filter(service__code="hydrafacial").exclude(balance=0).count() == 0
    for i in range(60):
        mine = {f"A{i}", f"extra{i}"}
        assert len(mine & set(spent)) == 1
        expected = sorted(mine - set(spent)) if i % 3 == 0 else []
        assert sorted(ref for ref, kind in refused if ref in mine and kind == "no_balance") == expected
    assert len(refused) == 20
