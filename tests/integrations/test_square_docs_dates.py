"""Square's dates, as Square's own documentation and payloads state them.

- A subscription's `charged_through_date` is the day its next cycle starts: a sandbox subscription
  started 2024-06-26 and cancelled reads `charged_through_date` and `canceled_date` 2024-07-26 with
  a monthly anchor of 26 (Square's forum, "Need help with All status related with Subscriptions
  API": the `subscription.updated` payload), a PAUSE asked without a date takes effect on it ("the
  starting date of the next billing cycle", PauseSubscription), and so does a SWAP_PLAN
  (developer.squareup.com/docs/subscriptions-api/actions-events: start 2021-09-30, charged through
  2021-10-30, SWAP_PLAN effective 2021-10-30). The reference's prose ("the last day of the billing
  period", May 1 billed → May 31) is not what Square sends.
- Those dates are calendar days of the object's own `timezone`: "a payment `due_date` of 2021-03-09
  with a `timezone` of America/Los_Angeles becomes overdue at midnight on March 9 in
  America/Los_Angeles (which equals a UTC timestamp of 2021-03-10T08:00:00Z)" (Invoice.timezone and
  InvoicePaymentRequest.due_date, Square's API reference / connect-api-specification api.json); a
  subscription's `timezone` "will be used in date calculations for the subscription" and defaults to
  the location's.

So a west-coast practice's member billed on the 5th renews on the 5th there, not on the afternoon
of the 4th."""

from datetime import date, datetime, timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse

from integrations.processors.square_events import parse_event
from integrations.processors.square_read import subscription_row
from memberships.models import Membership

from .test_square_end_to_end import at, deliver, enroll, work, world  # noqa: F401  (fixtures)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

PACIFIC = ZoneInfo("America/Los_Angeles")


def _sandbox_cancelled_subscription() -> dict:
    """The subscription of the forum's `subscription.updated` (cancelled at period end, sandbox), with
    the fields the SDK's model declares."""
    return {"canceled_date": "2024-07-26", "card_id": "ccof:CA4SEGVk8dydUu1YVrdUOknQA88oAg",
            "charged_through_date": "2024-07-26", "created_at": "2024-06-26T11:15:55Z",
            "customer_id": "98MX7M8P10JWJ18F24J1703PMW", "id": "fcdb3de3-ed1d-4d7f-b528-36d13e4445f6",
            "invoice_ids": ["inv:0-ChCeEpL756n_Uhzv4EMryuSYENkJ"], "location_id": "L655HC47K33ZY",
            "monthly_billing_anchor_date": 26, "plan_variation_id": "BC7YR4URYBJCD7RFK4PS2N2H",
            "start_date": "2024-06-26", "status": "ACTIVE", "timezone": "America/Los_Angeles", "version": 2}


def test_the_paid_period_ends_at_the_start_of_the_charged_through_day_where_the_location_is():
    event = {"merchant_id": "MLV40AZWCSJBM", "type": "subscription.updated",
             "event_id": "af95d3c7-4b69-3b2e-abf3-ec5d0d42bc29", "created_at": "2024-06-26T11:29:32.058Z",
             "data": {"type": "subscription", "id": "fcdb3de3-ed1d-4d7f-b528-36d13e4445f6",
                      "object": {"subscription": _sandbox_cancelled_subscription()}}}
    change = parse_event(event).fact
    # paid through the whole of July 25 in Los Angeles; it ends (and would renew) on July 26 there
    assert change.current_period_end == datetime(2024, 7, 26, tzinfo=PACIFIC)
    assert change.current_period_end == datetime(2024, 7, 26, 7, tzinfo=dt_timezone.utc)
    assert change.cancel_at_period_end is True


def test_reconciliation_reads_the_same_end_and_cancel_date_where_the_location_is():
    row = subscription_row(_sandbox_cancelled_subscription(), terms=(19900, "usd", "month", 1))
    assert row.current_period_end == row.cancel_at == datetime(2024, 7, 26, tzinfo=PACIFIC)


def test_a_square_invoice_due_on_a_day_opens_that_days_cycle_where_the_location_is():
    """Square's own example: due 2021-03-09 in Los Angeles is 2021-03-09T08:00Z."""
    invoice = {"id": "inv:0-ChCHu2mZEabLeeHahQnXDjZQECY", "subscription_id": "SUB1", "status": "PAID",
               "timezone": "America/Los_Angeles", "created_at": "2021-03-09T08:00:05Z",
               "updated_at": "2021-03-09T08:00:09Z", "primary_recipient": {"customer_id": "CUST1"},
               "payment_requests": [{"request_type": "BALANCE", "due_date": "2021-03-09",
                                     "computed_amount_money": {"amount": 19900, "currency": "USD"},
                                     "total_completed_amount_money": {"amount": 19900, "currency": "USD"}}]}
    event = {"type": "invoice.payment_made", "event_id": "e1", "created_at": "2021-03-09T08:00:10Z",
             "data": {"type": "invoice", "id": invoice["id"], "object": {"invoice": invoice}}}
    charge = parse_event(event).fact
    assert charge.period_start == datetime(2021, 3, 9, 8, tzinfo=dt_timezone.utc)
    assert charge.period_end == datetime(2021, 4, 9, tzinfo=PACIFIC)


def test_a_west_coast_member_is_told_the_day_square_charges_her_next(world, square, square_fake, client,  # noqa: F811
                                                                     front_desk):
    """Enrolled at 10am on Jan 5 in Los Angeles: Square charges her that day and next on Feb 5 (its
    `charged_through_date`), and the chart says Feb 5 — not Feb 4, the day UTC's midnight falls on there."""
    square_fake.timezone = "America/Los_Angeles"
    square_fake.now = at("2026-01-05", 18)                  # 10:00 in Los Angeles
    member, membership, sub_id = enroll(square, square_fake, world["tier"])
    deliver(square_fake, client)
    work(square_fake.now)
    membership = Membership.objects.get(pk=membership.pk)
    through = square_fake.subscriptions[sub_id]["charged_through_date"]
    assert through == "2026-02-05"
    assert membership.current_period_start == datetime(2026, 1, 5, tzinfo=PACIFIC)
    assert membership.current_period_end == datetime(2026, 2, 5, tzinfo=PACIFIC)
    assert membership.current_period_end.astimezone(PACIFIC).date() == date.fromisoformat(through)

    client.force_login(front_desk)
    page = client.get(reverse("memberships:chart", args=[member.pk])).content.decode()
    assert "on Feb 5, 2026" in page and "on Feb 4, 2026" not in page
