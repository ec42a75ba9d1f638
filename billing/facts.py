"""Normalized facts about money, as every processor adapter reports them. `billing` services consume
these and know no vendor; `integrations.processors` builds them from vendor payloads (and
re-exports them from `integrations.processors.base`).

References (`*_ref`) are the processor's own ids (`in_…`, `sub_…`, `cus_…`); `membership_ref` is the
opaque id we put in the processor's metadata (`ms_<pk>`), so an event can be matched before the
subscription id is stored on our side."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class InvoiceFacts:
    """What every charge outcome says about the processor's invoice. `period_start`/`period_end` are
    the period of the invoice's subscription line (the plan's own line, not a proration); None when
    the invoice bills no such line (a manual invoice, prorations only)."""

    processor: str
    invoice_ref: str
    subscription_ref: str
    customer_ref: str
    membership_ref: str
    amount_cents: int
    currency: str
    attempt_count: int
    period_start: datetime | None
    period_end: datetime | None
    created: int                          # the invoice's own `created` (unix seconds)
    event_created: int                    # when the processor emitted this fact (unix seconds)
    event_ref: str = ""
    # Why the processor made the invoice, in its own words (Stripe's `billing_reason`):
    # subscription_create, subscription_cycle, subscription_update, manual… ("" when it did not say).
    billing_reason: str = ""


@dataclass(frozen=True)
class ChargeSucceeded(InvoiceFacts):
    amount_paid_cents: int = 0
    paid_at: datetime | None = None
    trial: bool = False                   # the invoice starts a free trial (nothing due before discounts)


@dataclass(frozen=True)
class ChargeFailed(InvoiceFacts):
    hard: bool = False
    failure_code: str = ""                # e.g. card_declined
    decline_code: str = ""                # e.g. insufficient_funds (when the processor says)
    next_payment_attempt: datetime | None = None


@dataclass(frozen=True)
class ChargeActionRequired(InvoiceFacts):
    """The charge needs the member (3-D Secure): treated as a hard failure until they act."""

    next_payment_attempt: datetime | None = None


@dataclass(frozen=True)
class InvoiceForgiven(InvoiceFacts):
    """The processor will not collect the invoice any more: no payment is expected. Voided (Stripe's
    `invoice.voided`) or cancelled (Square's `invoice.canceled`) is forgiven; marked uncollectible
    (Stripe's `invoice.marked_uncollectible`) is a debt written off. `how` is the processor's act in
    words for staff ("voided", "cancelled", "marked uncollectible"); `forgiven_at` when it happened.
    `standing_reported`: the processor reports its subscription's standing in events of its own
    (Stripe: past_due → active), so the membership follows that event; False where the subscription
    has no past-due state at all (Square stays ACTIVE), so nothing left owed is good standing."""

    written_off: bool = False
    how: str = "voided"
    forgiven_at: datetime | None = None
    standing_reported: bool = True


@dataclass(frozen=True)
class SubscriptionChanged:
    processor: str
    subscription_ref: str
    customer_ref: str
    membership_ref: str
    status: str                           # active, past_due, unpaid, canceled, incomplete, paused…
    price_ref: str
    amount_cents: int | None
    cancel_at_period_end: bool
    collection_paused: bool
    current_period_start: datetime | None
    current_period_end: datetime | None
    event_created: int
    deleted: bool = False
    event_ref: str = ""
    latest_invoice_ref: str = ""          # the invoice the status is about, when the processor says


@dataclass(frozen=True)
class InvoiceReasons:
    """A processor's words for why it made an invoice (Stripe's `billing_reason`), as its adapter
    registers them: which open a billing cycle, which say nothing (the period decides), and how the
    others read on the member's timeline."""

    opens_cycle: frozenset[str] = frozenset()
    unstated: frozenset[str] = frozenset({""})
    words: dict[str, str] = field(default_factory=dict)


_INVOICE_REASONS: dict[str, InvoiceReasons] = {}


def register_invoice_reasons(processor: str, reasons: InvoiceReasons) -> None:
    _INVOICE_REASONS[processor] = reasons


def invoice_reasons(processor: str) -> InvoiceReasons:
    """The processor's vocabulary; one that registered none states no reason (the period decides)."""
    return _INVOICE_REASONS.get(processor) or InvoiceReasons()
