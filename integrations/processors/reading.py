"""Reconciliation's processor side for a practice: its own processor, read (`stripe_read` for a
Stripe practice, `square_read` for a Square one), in the rows `billing.reconciliation` compares."""

from __future__ import annotations

from billing.reconciliation.compare import LedgerRow, ProcessorRow
from memberships.models import Practice


def processor_source(*, practice: Practice, ledger: list[LedgerRow]) -> list[ProcessorRow]:
    if practice.processor == "square":
        from .square_read import processor_source as read
    else:
        from .stripe_read import processor_source as read
    return read(practice=practice, ledger=ledger)
