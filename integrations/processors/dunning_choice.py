"""Dunning's processor, per practice: the one to ask for a payment retry, and the page a dunning
message's link opens. Apart from `dunning` (the protocol), which the adapters import."""

from __future__ import annotations

from .dunning import DunningProcessor, get_dunning_processor


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
