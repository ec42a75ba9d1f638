"""Which processors cannot be asked to pay an open invoice again (a payment retry), and why in words
for the policy page. The edges (`integrations`) register them at start-up; billing names no
processor. A practice whose processor is one of them has its dunning policy leave retries to the
processor (`use_processor_retries`): its cases plan messages only, and the policy page says why."""

from __future__ import annotations

from memberships.models import Practice

_NO_PAYMENT_RETRY: dict[str, str] = {}


def register_no_payment_retry(processor: str, why: str) -> None:
    """`processor` (a `Practice.processor` value) takes no payment retry from us; `why` is shown."""
    _NO_PAYMENT_RETRY[processor] = why


def no_payment_retry(practice: Practice) -> str:
    """Why the practice's processor takes no payment retry from us, or "" when it does."""
    return _NO_PAYMENT_RETRY.get(getattr(practice, "processor", ""), "")
