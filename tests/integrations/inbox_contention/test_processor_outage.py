"""While Stripe is unreachable, current-shape failures wait with backoff; a short outage never ends
one `failed`, however many of them are in the inbox: the batch asks Stripe once, and the failures it
did not ask about wait without spending an attempt."""

from __future__ import annotations

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

FAILURES = 30


def test_a_two_minute_stripe_outage_fails_no_waiting_failure_event(glow, monkeypatch, settings):
    tier, _, _ = glow
    start = timezone.now()
    for n in range(FAILURES):
        m = active_membership(tier=tier)
        Membership.objects.filter(pk=m.pk).update(processor_subscription_id=f"sub_out_{n}")
        event = load_event("invoice_payment_failed_renewal.json", membership=m, subscription_ref=f"sub_out_{n}",
                           event_suffix=f"_out{n}")
        event["data"]["object"]["id"] = f"in_out_{n}"
        inbox.store_event(source=inbox.SOURCE_STRIPE, event=event, handled=True, now=start)

    def refused(self, *, invoice):
        raise ProcessorUnavailable("APIConnectionError: processor unreachable or rate-limited")

    monkeypatch.setattr(stripe_adapter.StripeProcessor, "invoice_decline", refused)
    for second in range(0, 120, 2):                 # the sweeps of a two-minute outage
        inbox.process_due(now=start + timedelta(seconds=second))

    statuses = list(InboundEvent.objects.values_list("status", flat=True))
    assert statuses.count(InboundStatus.FAILED) == 0, (
        f"{statuses.count(InboundStatus.FAILED)} failure events ended failed after a two-minute Stripe outage")
