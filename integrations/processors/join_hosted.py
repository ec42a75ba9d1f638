"""The hosted page a join pays on, whichever processor the practice has: Stripe Checkout
(`joining.open_join_checkout`) or a Square payment link (`square_checkout.open_square_join`). The
join page asks here, so it names no processor."""

from __future__ import annotations

from datetime import datetime

from memberships.models import JoinAttempt, Practice
from memberships.models.practice import Processor

from . import joining, square_checkout
from .base import JoinCheckout


def open_hosted_page(*, attempt: JoinAttempt, success_url: str, cancel_url: str, now: datetime) -> JoinCheckout:
    """The processor's hosted page for this join (Square's has no way back: no `cancel_url`). Raises
    the processor errors of `base` (unavailable, rejected)."""
    if attempt.practice.processor == Processor.SQUARE:
        return square_checkout.open_square_join(attempt=attempt, success_url=success_url, now=now)
    return joining.open_join_checkout(attempt=attempt, success_url=success_url, cancel_url=cancel_url, now=now)


def hosted_page_origins(practice: Practice | None) -> list[str]:
    """The origins the join form of this practice may end up on (its Content-Security-Policy's
    `form-action`)."""
    if practice is not None and practice.processor == Processor.SQUARE:
        return square_checkout.hosted_page_origins()
    return joining.hosted_page_origins()
