"""A current-shape `invoice.payment_failed` names no decline code (API 2025-03-31 took `charge` and
`payment_intent` off the invoice): the adapter reads it from the processor — the invoice's payments
with the PaymentIntent's `last_payment_error`, or the Charge's `outcome` — before billing sees the
failure, so a stolen card is a hard decline. Recorded Stripe bodies at the HTTP boundary (localstripe
has no invoice payments and no decline codes; its PaymentIntent read is covered in
test_dunning_end_to_end)."""

from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import stripe
from django.utils import timezone

from billing.models import Invoice
from integrations.models import InboundEvent, InboundStatus
from integrations.processors.base import PaymentDeclined
from integrations.processors.stripe import translate_error
from memberships.models import MembershipStatus
from tests.integrations.test_stripe_webhooks import failure_codes, handoffs, membership, process_all  # noqa: F401
from tests.support.stripe_events import load_event, post_event, serve_stripe_reads

pytestmark = pytest.mark.django_db


def test_current_shape_failure_reads_the_stolen_card_from_the_payment_intent(client, settings, httpserver,
                                                                            membership, handoffs):  # noqa: F811
    serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_stolen_card.json")
    post_event(client, load_event("invoice_paid_first.json", membership=membership))
    post_event(client, load_event("invoice_payment_failed_renewal.json", membership=membership))
    process_all()
    assert failure_codes() == ("card_declined", "stolen_card", True)
    assert handoffs[-1][0] == "failed" and handoffs[-1][2]["hard"] is True
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAST_DUE
    (request, _), = httpserver.log
    query = parse_qs(request.query_string.decode())
    assert query["invoice"] == ["in_1SXfixtureRenew01"]
    assert query["expand[0]"] == ["data.payment.payment_intent"]
    assert request.headers["Stripe-Version"] == "2025-10-29.clover"


def test_a_soft_decline_read_stays_soft(client, settings, httpserver, membership, handoffs):  # noqa: F811
    serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_insufficient_funds.json")
    post_event(client, load_event("invoice_payment_failed_renewal.json", membership=membership))
    process_all()
    assert failure_codes() == ("card_declined", "insufficient_funds", False)


def test_an_invoice_naming_only_its_charge_is_classified_by_the_charge_outcome(client, settings, httpserver,
                                                                             membership, handoffs):  # noqa: F811
    """Older API versions put the charge's id on the invoice: its `outcome.reason` is the decline."""
    serve_stripe_reads(settings, httpserver, charge="charge_failed_pickup_card.json")
    event = load_event("invoice_payment_failed_legacy_hard.json", membership=membership)
    event["data"]["object"].update(charge="ch_1SXfixtureLegacy2", payment_intent=None)
    post_event(client, event)
    process_all()
    assert failure_codes() == ("card_declined", "pickup_card", True)


def test_processor_unreachable_the_failure_waits_and_is_applied_later(client, settings, httpserver,
                                                                     membership, handoffs):  # noqa: F811
    # the test settings point the SDK at a port nothing listens on
    post_event(client, load_event("invoice_payment_failed_renewal.json", membership=membership))
    now = timezone.now()
    assert process_all(now) == {"received": 1}
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.RECEIVED and row.error.startswith("waiting") and row.next_attempt_at > now
    assert handoffs == [] and not Invoice.objects.exists()
    serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_stolen_card.json")
    assert process_all(now + timedelta(hours=13)) == {"processed": 1}
    assert Invoice.objects.get().hard_decline is True and handoffs[-1][2]["decline_code"] == "stolen_card"


def test_a_refused_read_leaves_a_soft_failure_without_a_code(client, settings, httpserver,
                                                             membership, handoffs):  # noqa: F811
    serve_stripe_reads(settings, httpserver)
    httpserver.expect_request("/v1/invoice_payments").respond_with_json(
        {"error": {"type": "invalid_request_error", "message": "No such invoice"}}, status=404)
    post_event(client, load_event("invoice_payment_failed_renewal.json", membership=membership))
    assert process_all() == {"processed": 1}
    assert failure_codes() == ("", "", False)
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAST_DUE


@pytest.mark.parametrize("decline", ["incorrect_cvc", "expired_card", "currency_not_supported"])
def test_the_adapter_and_dunning_share_one_list_of_hard_declines(decline):
    error = stripe.CardError("Your card was declined.", param=None, code="card_declined",
                             json_body={"error": {"code": "card_declined", "decline_code": decline}})
    declined = translate_error(error)
    assert isinstance(declined, PaymentDeclined) and declined.hard and declined.decline_code == decline
