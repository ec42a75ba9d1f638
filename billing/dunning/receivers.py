"""Dunning listens to the processor path's hand-offs (billing.signals), sent inside the transaction
that recorded the outcome: a failed charge opens (or folds into) the invoice's case; a paid invoice
closes it."""

from __future__ import annotations

import logging

from .declines import is_hard_decline
from .services import close_case_for_payment, open_case_for_failure

logger = logging.getLogger(__name__)


def on_charge_failed(sender, *, invoice, membership, hard, failure_code, decline_code, now, **kwargs):
    code = decline_code or failure_code or ""
    open_case_for_failure(
        membership=membership, invoice_ref=invoice.processor_invoice_id, amount_cents=invoice.amount_cents,
        currency=invoice.currency, decline_code=code, hard=bool(hard) or is_hard_decline(decline_code, failure_code), now=now,
        failed_at=invoice.failed_at or now,
    )


def on_charge_succeeded(sender, *, invoice, membership, now, **kwargs):
    close_case_for_payment(invoice_ref=invoice.processor_invoice_id, practice_id=invoice.practice_id, now=now,
                           source="processor")
