"""What a Stripe webhook leaves out and Stripe knows, read before the inbox applies it: a current-shape
`invoice.payment_failed` carries no decline code, a dispute names only its charge (whose customer says
whose payment it was). `read_event()` parses an event (`stripe_events`) and completes it;
`complete_event()` completes an already parsed one; `needs_read()` says whether it would ask Stripe."""

from __future__ import annotations

import dataclasses
import logging

from .base import ChargeFailed, InboundFact, ProcessorRejected, is_hard_decline
from .stripe import StripeProcessor
from .stripe_events import parse_event
from .stripe_reversals import needs_charge, with_charge

logger = logging.getLogger(__name__)


def read_event(event: dict, *, processor: "StripeProcessor | None" = None) -> InboundFact:
    """`parse_event`, completed with what the event leaves out and the processor knows: a current-shape
    `invoice.payment_failed` carries no decline code (the invoice lost its `charge` and
    `payment_intent` in API 2025-03-31), so a stolen card would look like a soft decline. The codes
    are then read from the invoice's PaymentIntent (`last_payment_error`) or its Charge (`outcome`,
    `failure_code`). Raises ProcessorUnavailable (the inbox retries the event later); a refused read
    leaves the failure without a code (soft), logged."""
    return complete_event(event, parse_event(event), processor=processor)


def needs_read(parsed: InboundFact) -> bool:
    """Whether `complete_event` would ask Stripe: a failure that carries no decline code, a dispute (its charge)."""
    fact = parsed.fact
    return isinstance(fact, ChargeFailed) and not (fact.failure_code or fact.decline_code) or needs_charge(fact)


def complete_event(event: dict, parsed: InboundFact, *, processor: "StripeProcessor | None" = None) -> InboundFact:
    """The reads `read_event` adds to a parsed event: a failure's decline code, a dispute's charge (most: none)."""
    fact = parsed.fact
    if needs_charge(fact):                      # a dispute: whose charge it was (a refused read: no one's)
        processor = processor or StripeProcessor.from_settings()
        try:
            return dataclasses.replace(parsed, fact=with_charge(fact, processor._call(
                processor.client.v1.charges.retrieve, fact.charge_ref)))
        except ProcessorRejected:
            return parsed
    if not isinstance(fact, ChargeFailed) or fact.failure_code or fact.decline_code:
        return parsed
    invoice = (event.get("data") or {}).get("object") or {}
    processor = processor or StripeProcessor.from_settings()
    try:
        code, decline = processor.invoice_decline(invoice=invoice)
    except ProcessorRejected as exc:
        logger.warning("decline code of invoice %s not readable: %s", fact.invoice_ref, exc)
        return parsed
    if not (code or decline):
        return parsed
    fact = dataclasses.replace(fact, failure_code=code, decline_code=decline, hard=is_hard_decline(code, decline))
    return dataclasses.replace(parsed, fact=fact)
