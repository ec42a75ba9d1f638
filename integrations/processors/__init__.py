"""Payment processors: a small protocol and normalized dataclasses (`base`), one adapter per vendor.

`get_processor()` returns the configured adapter; only this package talks to the vendor's SDK."""

from __future__ import annotations

from .base import (
    ChargeActionRequired,
    ChargeFailed,
    ChargeSucceeded,
    IgnoredEvent,
    PaymentDeclined,
    ProcessorError,
    ProcessorUnavailable,
    SubscriptionChanged,
)

__all__ = [
    "ChargeActionRequired",
    "ChargeFailed",
    "ChargeSucceeded",
    "IgnoredEvent",
    "PaymentDeclined",
    "ProcessorError",
    "ProcessorUnavailable",
    "SubscriptionChanged",
    "get_processor",
]


def get_processor(name: str = "stripe"):
    if name == "stripe":
        from .stripe import StripeProcessor

        return StripeProcessor.from_settings()
    if name == "square":
        from .square import SquareProcessor

        return SquareProcessor.from_settings()
    raise LookupError(f"unknown processor {name!r}")
