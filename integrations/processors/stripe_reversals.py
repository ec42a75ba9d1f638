"""A payment given back at Stripe: refunded by the practice (`charge.refunded`, once per refund, the
charge's `amount_refunded` growing with each) or disputed by the member's bank (`charge.dispute.created`,
a chargeback). The ledger changes no balance for either — whether a refunded or disputed month's
benefits should go is the practice's call — but it says so on the member's timeline, in plain words,
for the desk and the manager to see before the next treatment ("Payment of $199.00 disputed at Stripe
on Jan 12, 2026 (fraudulent): …"). The member is found by the charge's customer; a dispute names only
its charge, so the charge is read from Stripe first (the inbox's read-ahead). Only amounts, dates and
Stripe's reason code are written: nothing clinical."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone as dt_timezone

from memberships import selectors as ledger
from memberships.models import Event, EventKind, Member
from memberships.services import Actor, record_event

PAYMENT_REVERSED = {"charge.refunded": "refunded", "charge.dispute.created": "disputed"}


@dataclass(frozen=True)
class PaymentReversed:
    processor: str
    how: str                    # "refunded" or "disputed"
    charge_ref: str
    customer_ref: str           # "" on a dispute until its charge is read
    amount_cents: int           # refunded so far, or disputed
    charged_cents: int          # the charge's own amount (0: not known)
    currency: str
    reason: str                 # a dispute's reason code ("fraudulent", "duplicate"…); "" for a refund
    event_ref: str
    event_created: int


def _id(value) -> str:
    return str(value.get("id") or "") if isinstance(value, dict) else str(value or "")


def reversal_fact(event: dict, obj: dict) -> PaymentReversed:
    """The fact of a `charge.refunded` (a Charge) or a `charge.dispute.created` (a Dispute)."""
    how = PAYMENT_REVERSED[str(event.get("type"))]
    charge = obj if how == "refunded" else (obj.get("charge") if isinstance(obj.get("charge"), dict) else {})
    amount = obj.get("amount_refunded") if how == "refunded" else obj.get("amount")
    return PaymentReversed(
        processor="stripe", how=how, charge_ref=_id(obj) if how == "refunded" else _id(obj.get("charge")),
        customer_ref=_id(charge.get("customer")), amount_cents=int(amount or 0),
        charged_cents=int(charge.get("amount") or 0), currency=str(obj.get("currency") or "usd"),
        reason=str(obj.get("reason") or "") if how == "disputed" else "", event_ref=str(event.get("id") or ""),
        event_created=int(event.get("created") or 0))


def needs_charge(fact) -> bool:
    """A dispute that does not carry its charge's customer: Stripe is asked for the charge."""
    return isinstance(fact, PaymentReversed) and not fact.customer_ref and bool(fact.charge_ref)


def with_charge(fact: PaymentReversed, charge: dict) -> PaymentReversed:
    return replace(fact, customer_ref=_id(charge.get("customer")),
                   charged_cents=int(charge.get("amount") or 0) or fact.charged_cents)


def _money(cents: int, currency: str) -> str:
    return f"${cents / 100:,.2f}" if currency.lower() == "usd" else f"{cents / 100:,.2f} {currency.upper()}"


def reversal_summary(fact: PaymentReversed, *, practice) -> str:
    day = practice.local_date(datetime.fromtimestamp(fact.event_created, tz=dt_timezone.utc)) \
        if fact.event_created else None
    on = f" on {day:%b} {day.day}, {day.year}" if day else ""
    amount = _money(fact.amount_cents, fact.currency)
    if fact.how == "refunded":
        # `amount_refunded` is the charge's total so far: a second partial refund reports both together.
        of = (f" of {_money(fact.charged_cents, fact.currency)} refunded so far"
              if 0 < fact.amount_cents < fact.charged_cents else "")
        return (f"Payment refunded at Stripe{on}: {amount}{of} — balances unchanged; a manager adjusts them if "
                f"the refunded benefits should not stay")
    why = f" ({fact.reason.replace('_', ' ')})" if fact.reason else ""
    return (f"Payment of {amount} disputed at Stripe{on}{why} — balances unchanged until the practice "
            f"decides; the bank holds the money while the dispute is open")


def record_payment_reversed(fact: PaymentReversed, *, member: Member, now: datetime) -> Member:
    """The note on the timeline of the charge's member (`processor_facts` finds her by the customer), on
    her current membership, once per Stripe event."""
    if Event.objects.filter(member=member, kind=EventKind.NOTE, payload__reversal_event=fact.event_ref).exists():
        return member                                          # the same Stripe event applied again
    record_event(member=member, membership=ledger.current_membership(member=member), kind=EventKind.NOTE,
                 summary=reversal_summary(fact, practice=member.practice),
                 payload={"reversal_event": fact.event_ref, "charge_ref": fact.charge_ref, "how": fact.how,
                          "amount_cents": fact.amount_cents, "currency": fact.currency},
                 actor=Actor.processor(fact.processor), now=now)
    return member
