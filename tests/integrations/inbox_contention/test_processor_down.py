"""A hanging or unreachable Stripe costs a batch one read, not one per failure: the decline codes are
read before the batch's transaction, and after the first read Stripe does not answer, the other
failures wait (so a batch never outlives the cluster's task timeout, and paid renewals and record
treatments behind them go on)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from integrations.processors import stripe as stripe_adapter
from integrations.processors.base import ProcessorUnavailable
from memberships.models import Membership
from tests.factories import active_membership
from tests.support.stripe_events import load_event

pytestmark = pytest.mark.django_db

TIMEOUT = 1.0


def test_one_unreachable_stripe_costs_a_batch_one_timeout_not_one_per_failure(glow, monkeypatch):
    tier, _, _ = glow
    at = timezone.now() - timedelta(minutes=1)
    for n in range(4):
        m = active_membership(tier=tier)
        Membership.objects.filter(pk=m.pk).update(processor_subscription_id=f"sub_hang_{n}")
        event = load_event("invoice_payment_failed_renewal.json", membership=m, subscription_ref=f"sub_hang_{n}",
                           event_suffix=f"_hang{n}")
        event["data"]["object"]["id"] = f"in_hang_{n}"
        inbox.store_event(source=inbox.SOURCE_STRIPE, event=event, handled=True, now=at)

    calls = []

    def hanging(self, *, invoice):
        calls.append(invoice.get("id"))
        time.sleep(TIMEOUT)
        raise ProcessorUnavailable("APIConnectionError: processor unreachable or rate-limited")

    monkeypatch.setattr(stripe_adapter.StripeProcessor, "invoice_decline", hanging)
    started = time.monotonic()
    counts = inbox.process_due(now=timezone.now())
    held = time.monotonic() - started

    assert counts == {InboundStatus.RECEIVED: 4}                       # all wait, as they should
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.RECEIVED}
    assert len(calls) <= 1, (f"the batch waited on a hanging Stripe {len(calls)} times ({held:.1f} s with a "
                             f"{TIMEOUT:.0f} s timeout; 80-160 s each in production) inside one transaction")
