"""The small processor protocol dunning needs: pay an open invoice again (a retry), and a hosted
page where the member puts a new card on file. Vendor adapters implement it; the setting
DUNNING_PROCESSOR names the one in use (tests point it at a fake or at localstripe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


class ProcessorUnavailable(Exception):
    """The processor could not be reached or failed (timeout, 5xx, rate limit): try again later."""


class ProcessorRejected(Exception):
    """The processor refused the request itself (unknown invoice, bad key): retrying will not help."""


@dataclass(frozen=True)
class RetryOutcome:
    paid: bool
    decline_code: str = ""

    @classmethod
    def succeeded(cls) -> "RetryOutcome":
        return cls(paid=True)

    @classmethod
    def failed(cls, decline_code: str) -> "RetryOutcome":
        return cls(paid=False, decline_code=decline_code or "card_declined")


class DunningProcessor(Protocol):
    def retry_invoice_payment(self, invoice_id: str, idempotency_key: str) -> RetryOutcome:
        """Pay the open invoice with the customer's current default card. The same key never
        charges twice. Raises ProcessorUnavailable / ProcessorRejected."""

    def card_update_url(self, *, customer_id: str, return_url: str) -> str:
        """A fresh processor-hosted page where the customer updates their card."""


def get_dunning_processor() -> DunningProcessor:
    return import_string(settings.DUNNING_PROCESSOR)()
