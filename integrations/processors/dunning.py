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
