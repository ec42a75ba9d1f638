"""Who marked an invoice uncollectible at Stripe: the practice (a write-off in its Dashboard or by the
API) or Stripe itself, its failed-payment settings acting after the last retry. Stripe's Event object:
`request.id` is the "ID of the API request that caused the event. If null, the event was automatic
(e.g., Stripe's automatic subscription handling)". The invoice itself is the same either way. The
recorded `invoice.marked_uncollectible` (tests/fixtures/stripe) carries the practice's request; Stripe's
own marking is that event with `request.id` null, read back with the SDK's `stripe.Event`."""

import copy

import pytest
import stripe
from django.urls import reverse

from billing.models import DunningCase, DunningCaseStatus
from integrations import inbox
from integrations.processors.stripe_events import parse_event
from memberships import selectors
from tests.billing.conftest import T0, dunning_practice, fake_processor, member_factory, membership  # noqa: F401
from tests.support.stripe_events import load_event, post_event, serve_stripe_reads

pytestmark = pytest.mark.django_db

INVOICE = "in_1SXfixtureRenew01"


@pytest.fixture
def on_stripe(membership, settings, httpserver):  # noqa: F811
    serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_insufficient_funds.json")
    membership.processor_subscription_id = "sub_1SXfixtureGlow0001"
    membership.save(update_fields=["processor_subscription_id"])
    return membership


def marked_uncollectible(membership, *, by_stripe: bool) -> dict:
    event = load_event("invoice_marked_uncollectible_renewal.json", membership=membership)
    if by_stripe:
        event["request"] = {"id": None, "idempotency_key": None}
    read = stripe.Event.construct_from(copy.deepcopy(event), "sk_test")
    assert read.type == "invoice.marked_uncollectible" and read.data.object.status == "uncollectible"
    assert (read.request.id is None) == by_stripe
    return event


def fail_then_mark(client, membership, *, by_stripe: bool) -> DunningCase:
    from datetime import timedelta

    post_event(client, load_event("invoice_payment_failed_renewal.json", membership=membership))
    inbox.process_due(now=T0)
    post_event(client, marked_uncollectible(membership, by_stripe=by_stripe))
    inbox.process_due(now=T0 + timedelta(days=1))
    return DunningCase.objects.get(invoice_ref=INVOICE)


def test_stripes_own_marking_after_its_last_retry_says_so(client, on_stripe, front_desk):
    case = fail_then_mark(client, on_stripe, by_stripe=True)
    assert case.status == DunningCaseStatus.WRITTEN_OFF
    words = ("Invoice written off at Stripe on Dec 26, 2025 (marked uncollectible by Stripe after its last "
             "retry) — no payment expected")
    assert case.close_reason == words
    assert list(selectors.open_chart_flags(member=on_stripe.member)) == []
    client.force_login(front_desk)
    assert words in client.get(reverse("memberships:chart", args=[on_stripe.member_id])).content.decode()


def test_the_practices_write_off_is_told_apart(client, on_stripe):
    case = fail_then_mark(client, on_stripe, by_stripe=False)
    assert case.status == DunningCaseStatus.WRITTEN_OFF
    assert case.close_reason == ("Invoice written off at Stripe on Dec 26, 2025 (marked uncollectible) "
                                 "— no payment expected")


def test_only_a_missing_request_is_stripes_own_act(membership):  # noqa: F811
    event = marked_uncollectible(membership, by_stripe=False)
    assert parse_event(event).fact.how == "marked uncollectible"
    assert parse_event(marked_uncollectible(membership, by_stripe=True)).fact.how == \
        "marked uncollectible by Stripe after its last retry"
    del event["request"]                 # not said (a test server's event): not taken for Stripe's own
    assert parse_event(event).fact.how == "marked uncollectible"
