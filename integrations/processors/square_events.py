"""Square's webhooks, read: `verify()` checks `x-square-hmacsha256-signature` — base64 HMAC-SHA256
over the notification URL configured at Square (settings, never rebuilt from the request) + the raw
body, compared in constant time by the SDK's `verify_signature` — and `parse_event()` turns a Square
event into the normalized fact it states. Pure: no call to Square.

| Square event                        | fact                  | ordered by                                 |
|-------------------------------------|-----------------------|--------------------------------------------|
| `invoice.payment_made`              | `ChargeSucceeded`     | the invoice's `created_at` / `updated_at`  |
| `invoice.scheduled_charge_failed`   | `ChargeFailed` (soft) | the invoice's `created_at`, the event's    |
| `invoice.canceled`                  | `InvoiceForgiven`     | the invoice's `created_at`, the event's    |
| `invoice.updated` (CANCELED, FAILED)| `InvoiceForgiven`     | the invoice's `created_at`, the event's    |
| `subscription.updated` (CANCELED…)  | `SubscriptionChanged` | the event's `created_at`                   |

Square's invoice names no billing reason: the period decides (`billing.services.opens_cycle`), the
cycle being the one its payment request is due on (`due_date`), a month long, or a year for a yearly
tier (the invoice does not say: `square_inbound` asks the ledger which tier it sold). Square's
invoice event carries no decline code: a failed scheduled charge is a soft failure unless the
adapter learns a code (`is_hard_decline`, Square's payment error codes). A subscription's invoice the
seller cancels (Square's CancelInvoice, or the Seller Dashboard: only a SCHEDULED, UNPAID or
PARTIALLY_PAID one; Square stops charging it, sets status CANCELED and sends `invoice.canceled`) is
forgiven: no payment is expected. So is one Square cancels itself for suspicious activity (status
FAILED, "Square canceled the invoice due to suspicious activity"), which no `invoice.canceled` reports:
only `invoice.updated`, Square's event for any change of an invoice, whose other statuses are left to
the events that say them (`invoice.payment_made`, `invoice.scheduled_charge_failed`). Square's
subscription has no past-due state (it stays ACTIVE whatever its invoices), so nothing failed left
owed is good standing (`standing_reported=False`).

Dates. A subscription's `charged_through_date` is read as the day its next cycle starts (the paid
period's end, exclusive): Square's reference words it "the last day of the billing period" (May 1
billed → May 31), but every payload Square shows says otherwise — a sandbox subscription started
2024-06-26 and cancelled reads `charged_through_date` and `canceled_date` 2024-07-26, monthly anchor
26 (Square's forum, "Need help with All status related with Subscriptions API"); started 2022-12-16 →
2023-01-16 with its PAUSE effective that day, "the starting date of the next billing cycle"
(PauseSubscription); the guides' examples 2021-09-30 → 2021-10-30 with a SWAP_PLAN that day. Every
date (`charged_through_date`, `canceled_date`, an invoice's `due_date`) is a calendar day of the
object's own `timezone` (`day_start`)."""

from __future__ import annotations

import calendar
import json
from datetime import date, datetime, time, timezone as dt_timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing.facts import InvoiceForgiven

from .base import ChargeFailed, ChargeSucceeded, IgnoredEvent, InboundFact, SubscriptionChanged

PROCESSOR = "square"
SOURCE = "square"
SIGNATURE_HEADER = "x-square-hmacsha256-signature"

INVOICE_PAID = {"invoice.payment_made"}
INVOICE_FAILED = {"invoice.scheduled_charge_failed"}
INVOICE_CANCELED = {"invoice.canceled"}
INVOICE_UPDATED = {"invoice.updated"}
SUBSCRIPTION = {"subscription.updated", "subscription.created"}
HANDLED_EVENT_TYPES = frozenset(INVOICE_PAID | INVOICE_FAILED | INVOICE_CANCELED | INVOICE_UPDATED | SUBSCRIPTION)
# An invoice's statuses that end what is asked of the member, in the words of the timeline: cancelled
# by the seller, or by Square itself for suspicious activity (InvoiceStatus FAILED).
ENDED_INVOICE = {"CANCELED": "cancelled", "FAILED": "cancelled by Square (suspicious activity)"}

# Hard and soft declines in Square's words: the `Error.code` of a card declined (category
# PAYMENT_METHOD_ERROR) on CreatePayment, CreateCard or a subscription's first charge. Source: Square's
# ErrorCode reference (developer.squareup.com/reference/square/enums/ErrorCode) and "Payments API
# error codes" (developer.squareup.com/docs/payments-api/error-codes); every code below is one of the
# SDK's `ErrorCode` values (a test holds it). Square does not sort them into hard and soft: the sort
# is ours, by the rule of `billing.dunning.declines` (Stripe's words) — hard when no retry of the same
# card can pass (the card or its data is wrong or gone, the issuer wants the member present or on the
# phone, the card may never take this charge), soft when a later try may (funds, limits, a decline
# with no reason). An unknown code is soft. A failed scheduled charge (`invoice.scheduled_charge_failed`)
# names no code at all: soft (`FAILED_CHARGE`).
#
# | Square code                                         | why                                        | kind |
# |-----------------------------------------------------|--------------------------------------------|------|
# | CARD_EXPIRED, INVALID_EXPIRATION(_YEAR/_DATE),      | the card or its expiry is no longer good   | hard |
# |   BAD_EXPIRATION, EXPIRATION_FAILURE, SOURCE_EXPIRED |                                            |      |
# | INVALID_ACCOUNT, ACCOUNT_UNUSABLE, INVALID_CARD,    | the card or account is wrong or closed     | hard |
# |   INVALID_CARD_DATA, INVALID_ENCRYPTED_CARD, PAN_FAILURE, CARD_MISMATCH |                 |      |
# | CVV_FAILURE, VERIFY_CVV_FAILURE, ADDRESS_VERIFICATION_FAILURE, VERIFY_AVS_FAILURE,       |      |
# |   INVALID_POSTAL_CODE                               | the card's data does not match             | hard |
# | CARD_NOT_SUPPORTED, UNSUPPORTED_CARD_BRAND, CARDHOLDER_INSUFFICIENT_PERMISSIONS          |      |
# |                                                     | the card may never take this charge        | hard |
# | CARD_DECLINED_VERIFICATION_REQUIRED, CARD_PRESENCE_REQUIRED, CARD_DECLINED_CALL_ISSUER,  |      |
# |   VOICE_FAILURE                                     | the member must act (verify, call the bank) | hard |
# | CARD_TOKEN_EXPIRED, CARD_TOKEN_USED                 | the single-use token is spent: a new entry  | hard |
# | GENERIC_DECLINE, CARD_DECLINED                      | no reason given (Square's catch-all)       | soft |
# | INSUFFICIENT_FUNDS, TRANSACTION_LIMIT, PAYMENT_LIMIT_EXCEEDED, GIFT_CARD_AVAILABLE_AMOUNT |     |
# |                                                     | money or a limit: may pass later           | soft |
# | TEMPORARY_ERROR, CARD_PROCESSING_NOT_ENABLED        | Square's or the seller's side, not the card | soft |
HARD_DECLINES = frozenset({
    "CARD_EXPIRED", "INVALID_EXPIRATION", "INVALID_EXPIRATION_YEAR", "INVALID_EXPIRATION_DATE", "BAD_EXPIRATION",
    "EXPIRATION_FAILURE", "SOURCE_EXPIRED",
    "INVALID_ACCOUNT", "ACCOUNT_UNUSABLE", "INVALID_CARD", "INVALID_CARD_DATA", "INVALID_ENCRYPTED_CARD",
    "PAN_FAILURE", "CARD_MISMATCH",
    "CVV_FAILURE", "VERIFY_CVV_FAILURE", "ADDRESS_VERIFICATION_FAILURE", "VERIFY_AVS_FAILURE", "INVALID_POSTAL_CODE",
    "CARD_NOT_SUPPORTED", "UNSUPPORTED_CARD_BRAND", "CARDHOLDER_INSUFFICIENT_PERMISSIONS",
    "CARD_DECLINED_VERIFICATION_REQUIRED", "CARD_PRESENCE_REQUIRED", "CARD_DECLINED_CALL_ISSUER", "VOICE_FAILURE",
    "CARD_TOKEN_EXPIRED", "CARD_TOKEN_USED",
})
SOFT_DECLINES = frozenset({
    "GENERIC_DECLINE", "CARD_DECLINED", "INSUFFICIENT_FUNDS", "TRANSACTION_LIMIT", "PAYMENT_LIMIT_EXCEEDED",
    "GIFT_CARD_AVAILABLE_AMOUNT", "TEMPORARY_ERROR", "CARD_PROCESSING_NOT_ENABLED",
})

# Square's subscription status → the words billing reads (Stripe's): an ended one is "canceled".
_STATUS = {"ACTIVE": "active", "PENDING": "pending", "PAUSED": "paused", "CANCELED": "canceled",
           "DEACTIVATED": "canceled", "COMPLETED": "canceled"}


FAILED_CHARGE = "scheduled_charge_failed"
# Invoice statuses (Square's `InvoiceStatus`) of an `invoice.payment_made` that does not settle the
# invoice (a part paid, the rest owed), and those of an invoice paid in full (later refunded or not).
PART_PAID = frozenset({"PARTIALLY_PAID"})
SETTLED = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})

# Shown on a Square practice's dunning policy page, where the processor's retries stay chosen.
# Sources: developer.squareup.com/docs/invoices-api/pay-refund-invoices ("Square APIs cannot be used
# to pay for invoices"); …/docs/subscriptions-api/subscription-billing (a failed card-on-file charge
# is emailed to the customer as an invoice with a link for making a payment). Unsure, from Square's
# forum: a staff-reviewed answer says a failed subscription payment is not retried automatically,
# while a 2026 thread shows three failed attempts three days apart on one subscription invoice, all
# on the card the invoice was made with — either way no new card is tried and we can ask for nothing.
NO_PAYMENT_RETRY = ("Square decides itself whether a failed membership charge is tried again (on the same card), "
                    "and no one can retry a Square invoice through its API: the messages lead to the invoice's "
                    "payment page at Square, where the member pays it (with another card if need be); Square "
                    "reports the payment and the follow-up ends.")


class InvalidSignature(Exception):
    pass


def is_hard_decline(code: str) -> bool:
    return (code or "").upper() in HARD_DECLINES


def our_status(status) -> str:
    return _STATUS.get(str(status or ""), str(status or "").lower())


def verify(*, body: bytes, signature_header: str, signature_key: str, notification_url: str) -> dict:
    """The verified event as a dict. Raises InvalidSignature (nothing is stored then)."""
    from square.utils.webhooks_helper import verify_signature

    if not signature_header or not signature_key or not notification_url:
        raise InvalidSignature("missing signature, signature key or notification URL")
    try:
        valid = verify_signature(request_body=body.decode("utf-8"), signature_header=signature_header,
                                 signature_key=signature_key, notification_url=notification_url)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidSignature(str(exc)) from None
    if not valid:
        raise InvalidSignature("signature mismatch")
    try:
        event = json.loads(body)
    except ValueError:
        raise InvalidSignature("body is not JSON") from None
    if not isinstance(event, dict) or not event.get("event_id") or not event.get("type"):
        raise InvalidSignature("not a Square event")
    return event


def moment(value) -> datetime | None:
    """An RFC 3339 time (Square's `created_at`) → an aware datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)


def moment_of_seconds(value: int) -> datetime | None:
    return datetime.fromtimestamp(value, tz=dt_timezone.utc) if value else None


def seconds(value) -> int:
    found = moment(value)
    return int(found.timestamp()) if found else 0


def zone_of(name) -> tzinfo:
    """The time zone a Square object's dates are in: its own `timezone` (an IANA name; Square sets
    the location's on every subscription and invoice), UTC when it names none Python knows."""
    try:
        return ZoneInfo(str(name)) if name else dt_timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return dt_timezone.utc


def day_start(value, zone=None) -> datetime | None:
    """A `YYYY-MM-DD` date → its midnight where the object's dates are (`zone`: its `timezone` field).
    Square's dates are calendar days of the subscription's or invoice's time zone — a `due_date` of
    2021-03-09 in America/Los_Angeles "becomes overdue at midnight on March 9 in America/Los_Angeles
    (which equals a UTC timestamp of 2021-03-10T08:00:00Z)" (Invoice.timezone, Square's API reference)
    — so the day's midnight in UTC would be the afternoon before on the west coast: a renewal shown a
    day early, a paid period ending hours before the last day paid for."""
    return datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone_of(zone)) if value else None


def next_month(start: datetime) -> datetime:
    return add_months(start, 1)


def add_months(start: datetime, months: int) -> datetime:
    """`start` moved on by whole months, on the same day of the month or the month's last day."""
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


# Our tiers' billing intervals → Square's plan variation cadence, and back (a cadence → months).
CADENCE = {"month": "MONTHLY", "year": "ANNUAL"}
CADENCE_MONTHS = {"MONTHLY": 1, "EVERY_TWO_MONTHS": 2, "QUARTERLY": 3, "EVERY_FOUR_MONTHS": 4,
                  "EVERY_SIX_MONTHS": 6, "ANNUAL": 12, "EVERY_TWO_YEARS": 24}
INTERVAL_MONTHS = {"month": 1, "year": 12}


def cycle_end(start: datetime, interval: str = "month") -> datetime:
    """The end of the billing cycle that starts at `start`: a month on, a year for a yearly tier."""
    return add_months(start, INTERVAL_MONTHS.get(interval, 1))


def envelope_of(event: dict) -> dict:
    """What the inbox stores beside the raw body: id, type and the emission time (unix seconds)."""
    return {"id": str(event["event_id"]), "type": str(event["type"]), "created": seconds(event.get("created_at"))}


def is_handled(event_type: str) -> bool:
    return event_type in HANDLED_EVENT_TYPES


def parse_event(payload, *, interval_of=None) -> InboundFact:
    """A stored Square event (dict or JSON text) → its envelope and fact. Square's invoice does not
    say how long the cycle it bills is: `interval_of(subscription_ref, period_start)` answers
    "month" or "year" (`square_inbound`: the tier the ledger sold); a month without it."""
    event = json.loads(payload) if isinstance(payload, (str, bytes)) else payload
    kind = str(event.get("type") or "")
    obj = ((event.get("data") or {}).get("object")) or {}
    created = seconds(event.get("created_at"))
    if kind in INVOICE_PAID | INVOICE_FAILED | INVOICE_CANCELED | INVOICE_UPDATED:
        fact = _invoice_fact(obj["invoice"], kind=kind, event_created=created, event_ref=str(event["event_id"]),
                             interval_of=interval_of)
    elif kind in SUBSCRIPTION:
        fact = _subscription_fact(obj["subscription"], event_created=created, event_ref=str(event["event_id"]))
    else:
        fact = IgnoredEvent(f"Square event {kind} is not one we act on")
    return InboundFact(event_ref=str(event.get("event_id") or ""), event_type=kind, created=created, fact=fact)


def _invoice_fact(inv: dict, *, kind: str, event_created: int, event_ref: str, interval_of=None):
    if not inv.get("subscription_id"):
        return IgnoredEvent("not a subscription invoice")
    requests = inv.get("payment_requests") or []
    due = next((r.get("due_date") for r in requests if r.get("request_type", "BALANCE") == "BALANCE"), None)
    start = day_start(due or inv.get("sale_or_service_date"), inv.get("timezone"))
    interval = (interval_of(str(inv["subscription_id"]), start) if interval_of and start else "") or "month"
    money = [r.get("computed_amount_money") or {} for r in requests]
    paid = [r.get("total_completed_amount_money") or {} for r in requests]
    common = dict(
        processor=PROCESSOR, invoice_ref=str(inv["id"]), subscription_ref=str(inv["subscription_id"]),
        customer_ref=str((inv.get("primary_recipient") or {}).get("customer_id") or ""), membership_ref="",
        amount_cents=sum(int(m.get("amount") or 0) for m in money),
        currency=str((money[0] if money else {}).get("currency") or "USD").lower(), attempt_count=1,
        period_start=start, period_end=cycle_end(start, interval) if start else None,
        created=seconds(inv.get("created_at")), event_created=event_created, event_ref=event_ref,
    )
    if kind in INVOICE_PAID:
        paid_cents = sum(int(m.get("amount") or 0) for m in paid)
        if str(inv.get("status") or "") in PART_PAID or (paid and paid_cents < common["amount_cents"]
                                                          and str(inv.get("status") or "") not in SETTLED):
            # Square sends this event for every payment completed on an invoice: a part of it leaves
            # the rest owed (the case stays open, nothing is refilled) until the payment that settles it.
            return IgnoredEvent(f"invoice {inv['id']} partly paid ({paid_cents} of {common['amount_cents']} "
                                f"cents): the rest is still owed")
        return ChargeSucceeded(**common, amount_paid_cents=paid_cents,
                               paid_at=moment(inv.get("updated_at")))
    if kind in INVOICE_CANCELED | INVOICE_UPDATED:
        status = str(inv.get("status") or "")
        if status not in ENDED_INVOICE or (kind in INVOICE_CANCELED and status != "CANCELED"):
            return IgnoredEvent(f"{kind} of an invoice whose status is {inv.get('status')}")
        return InvoiceForgiven(**common, how=ENDED_INVOICE[status], standing_reported=False,
                               forgiven_at=moment(inv.get("updated_at")) or moment_of_seconds(event_created))
    # The event names no decline code; it says what failed, so the inbox does not wait for a read.
    return ChargeFailed(**common, hard=False, failure_code=FAILED_CHARGE, decline_code="")


def _subscription_fact(sub: dict, *, event_created: int, event_ref: str) -> SubscriptionChanged:
    # DEACTIVATED: Square stopped billing what it cannot bill (the location cannot take payments, the
    # customer was deleted or has no name or email: the SDK's `SubscriptionEventInfoCode`), and
    # ResumeSubscription "resume[s] a paused or a deactivated subscription": not an end, so the
    # membership is not cancelled for it (reconciliation shows the subscription not billing)
    status = "deactivated" if sub.get("status") == "DEACTIVATED" else our_status(sub.get("status"))
    through = day_start(sub.get("charged_through_date"), sub.get("timezone"))
    money = sub.get("price_override_money") or {}
    return SubscriptionChanged(
        processor=PROCESSOR, subscription_ref=str(sub["id"]), customer_ref=str(sub.get("customer_id") or ""),
        membership_ref="", status=status, price_ref=str(sub.get("plan_variation_id") or ""),
        amount_cents=money.get("amount"), cancel_at_period_end=bool(sub.get("canceled_date")) and status != "canceled",
        collection_paused=status == "paused", current_period_start=None, current_period_end=through,
        event_created=event_created, event_ref=event_ref)
