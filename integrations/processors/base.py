"""What every processor adapter speaks: normalized facts about money (dataclasses), our own errors,
and the protocol of the outbound calls. `billing` services consume these dataclasses and know no
vendor; adapters build them from vendor payloads. The dataclasses live in `billing.facts` (billing
may not import the edges) and are re-exported here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, Union


# --- errors ---------------------------------------------------------------------------------------

class ProcessorError(Exception):
    """Base of the processor errors the rest of the system sees (never a vendor exception)."""


class ProcessorUnavailable(ProcessorError):
    """The processor could not be reached, timed out, rate-limited us or failed (5xx): retry later."""


class PaymentDeclined(ProcessorError):
    """The card was declined: a business outcome. `hard` declines (lost/stolen card, wrong number,
    authorization revoked, authentication required…) must not be retried automatically."""

    def __init__(self, message: str = "The card was declined.", *, hard: bool = False,
                 failure_code: str = "", decline_code: str = ""):
        super().__init__(message)
        self.hard = hard
        self.failure_code = failure_code
        self.decline_code = decline_code


class ProcessorRejected(ProcessorError):
    """The processor refused the request itself (invalid parameters, missing object): a bug or a
    configuration problem, not worth retrying unchanged."""


from billing.dunning.declines import HARD_DECLINE_CODES, is_hard_decline  # noqa: E402  (the one list)
from billing.facts import (  # noqa: E402  (re-exported: the adapters' vocabulary)
    ChargeActionRequired,
    ChargeFailed,
    ChargeSucceeded,
    InvoiceFacts,
    SubscriptionChanged,
)

__all__ = [
    "HARD_DECLINE_CODES", "ChargeActionRequired", "ChargeFailed", "ChargeSucceeded", "InvoiceFacts",
    "SubscriptionChanged", "is_hard_decline", "CardSaved", "CheckoutCompleted", "DefaultCardChanged", "JoinCheckout", "IgnoredEvent", "InboundFact", "PaymentDeclined",
    "Processor", "ProcessorError", "ProcessorRejected", "ProcessorUnavailable", "SubscriptionRef",
]


@dataclass(frozen=True)
class IgnoredEvent:
    """An event we store but do not act on."""

    reason: str = "not an event we act on"


@dataclass(frozen=True)
class CardSaved:
    """The member saved a card on the processor's hosted page (for an existing subscription): it
    becomes the default for the customer and the subscription."""

    processor: str
    customer_ref: str
    membership_ref: str
    setup_ref: str                        # the processor's setup intent
    event_created: int


@dataclass(frozen=True)
class CheckoutCompleted:
    """The member paid on the processor's hosted join page (a checkout in subscription mode): the
    subscription exists at the processor. `join_ref` is our join's opaque id (its metadata)."""

    processor: str
    checkout_ref: str                     # the processor's checkout session
    join_ref: str
    customer_ref: str
    subscription_ref: str
    event_created: int


@dataclass(frozen=True)
class JoinCheckout:
    """A hosted join page the processor opened: where to send the member, and its id."""

    checkout_ref: str
    url: str


@dataclass(frozen=True)
class DefaultCardChanged:
    """The processor reports a new default card for the customer (e.g. saved on its hosted
    card-update page). Only this, never the member's return to our page, retries an open invoice."""

    processor: str
    customer_ref: str
    payment_method_ref: str               # the new default card
    event_created: int


@dataclass(frozen=True)
class InboundFact:
    """The envelope of one verified webhook: its id, type, emission time, and what it means."""

    event_ref: str
    event_type: str
    created: int
    fact: Union[ChargeSucceeded, ChargeFailed, ChargeActionRequired, SubscriptionChanged, CardSaved, DefaultCardChanged,
                 CheckoutCompleted, IgnoredEvent]


# --- outbound -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SubscriptionRef:
    customer_ref: str
    subscription_ref: str = ""
    status: str = ""
    price_ref: str = ""
    created: bool = False                 # False: found an existing one (check-before-create)
    extra: dict = field(default_factory=dict)


class Processor(Protocol):
    """The outbound calls the outbox's `processor` destination makes. Every call is idempotent:
    it takes our idempotency key and also looks before it creates."""

    name: str

    def ensure_customer(self, *, member_ref: str, existing_ref: str, idempotency_key: str) -> str: ...

    def ensure_subscription(self, *, customer_ref: str, membership_ref: str, price_ref: str,
                            metadata: dict, idempotency_key: str) -> SubscriptionRef: ...

    def change_price(self, *, subscription_ref: str, price_ref: str, idempotency_key: str) -> SubscriptionRef: ...

    def pause_collection(self, *, subscription_ref: str, resumes_at: datetime | None,
                         idempotency_key: str) -> SubscriptionRef: ...

    def resume_collection(self, *, subscription_ref: str, idempotency_key: str) -> SubscriptionRef: ...

    def cancel_subscription(self, *, subscription_ref: str, idempotency_key: str) -> SubscriptionRef: ...

    def join_checkout(self, *, join_ref: str, price_ref: str, email: str, success_url: str, cancel_url: str,
                      expires_at: datetime, idempotency_key: str) -> JoinCheckout:
        """A hosted page where a new member enters a card and the subscription starts (our join's id
        in its metadata, and in the subscription's); the card never reaches us."""
        ...
