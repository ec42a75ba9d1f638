"""The small processor protocol dunning needs: pay an open invoice again (a retry), and a hosted
page where the member puts a new card on file. `StripeProcessor` implements it; the setting
DUNNING_PROCESSOR names the class in use (tests point it at a scripted fake or at localstripe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from .base import ChargeSucceeded, ProcessorRejected, ProcessorUnavailable

__all__ = ["DunningProcessor", "ProcessorRejected", "ProcessorUnavailable", "RetryOutcome", "get_dunning_processor"]


@dataclass(frozen=True)
class RetryOutcome:
    """paid, or failed with the decline code. A paid outcome may carry the paid invoice as a
    normalized fact, so the ledger can refill at once instead of waiting for the webhook."""

    paid: bool
    decline_code: str = ""
    charge: ChargeSucceeded | None = None

    @classmethod
    def succeeded(cls, charge: ChargeSucceeded | None = None) -> "RetryOutcome":
        return cls(paid=True, charge=charge)

    @classmethod
    def failed(cls, decline_code: str) -> "RetryOutcome":
        return cls(paid=False, decline_code=decline_code or "card_declined")


class DunningProcessor(Protocol):
    def retry_invoice_payment(self, invoice_id: str, idempotency_key: str) -> RetryOutcome:
        """Pay the open invoice with the customer's current default card; the same key never
        charges twice. Raises ProcessorUnavailable (try later) / ProcessorRejected (never)."""

    def card_update_url(self, *, customer_id: str, return_url: str) -> str:
        """A fresh processor-hosted page where the customer updates their card."""


def get_dunning_processor() -> DunningProcessor:
    cls = import_string(settings.DUNNING_PROCESSOR)
    return cls.from_settings() if hasattr(cls, "from_settings") else cls()


def dunning_processor_for(practice) -> DunningProcessor:
    """The practice's own processor for dunning (`Practice.processor`): Square's adapter for a Square
    practice, else the configured DUNNING_PROCESSOR (Stripe's)."""
    if getattr(practice, "processor", "") == "square":
        from .square import SquareProcessor

        return SquareProcessor.from_settings()
    return get_dunning_processor()


def payment_page_url(case, *, return_url: str) -> str:
    """Where a dunning message's link sends the member (opened fresh at each click):

    - a processor with a page to pay the open invoice (Square's invoice `public_url`) — there: no API
      pays a Square invoice and Square does not retry a failed charge, so paying that invoice is what
      settles the case (Square reports it as `invoice.payment_made`), and the member may use another
      card on that page;
    - else the processor's hosted card-update page (Stripe's): the new default card is what retries
      the open invoice at once.
    Raises ProcessorUnavailable (try later) / ProcessorRejected (no such page)."""
    processor = dunning_processor_for(case.practice)
    if hasattr(processor, "invoice_payment_url"):
        return processor.invoice_payment_url(invoice_ref=case.invoice_ref)
    return processor.card_update_url(customer_id=case.member.processor_customer_id, return_url=return_url)
