"""What a payment outcome means for dunning: direct calls, made by `billing.services` inside the
transaction that recorded the outcome, once per new outcome (a replayed webhook calls nothing). Their
writes commit or roll back with the outcome's; nothing here calls the outside world (the outbox does).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from memberships.models import Membership

from .dunning.cases import cancel_cases_of_membership, close_case_for_payment, forgive_case_for_invoice
from .dunning.opening import failure_of_invoice, open_case_for_failure
from .models import Invoice


def charge_failed(*, invoice: Invoice, membership: Membership, hard: bool, failure_code: str, decline_code: str,
                  action_required: bool, attempt_count: int, superseded: bool, now: datetime) -> None:
    """A failed attempt opens (or folds into) the invoice's case at once (the chart flag shows before
    the next dunning run), read from the invoice just mirrored as the dunning run's sweep reads the
    failures it finds (`failure_of_invoice`). `superseded`: a newer cycle was paid already, so the
    case is opened for what is owed but the membership stays as it is."""
    item = failure_of_invoice(invoice, mark_past_due=not superseded, now=now)
    if hard and not item.hard:
        item = replace(item, hard=True)
    open_case_for_failure(
        membership=membership, invoice_ref=item.invoice_ref, amount_cents=item.amount_cents, currency=item.currency,
        decline_code=item.decline_code, hard=item.hard, now=now, failed_at=item.failed_at,
        mark_past_due=item.mark_past_due,
    )


def charge_succeeded(*, invoice: Invoice, membership: Membership, recovered: bool, now: datetime) -> None:
    """A paid invoice closes its own case (recovered)."""
    close_case_for_payment(invoice_ref=invoice.processor_invoice_id, practice_id=invoice.practice_id, now=now,
                           source="processor")


def invoice_forgiven(*, invoice: Invoice, written_off: bool, summary: str, now: datetime):
    """The processor will not collect the invoice: its case ends forgiven (or written off), the chart
    flag comes off. Returns the case (None: the invoice never opened one)."""
    return forgive_case_for_invoice(invoice_ref=invoice.processor_invoice_id, practice_id=invoice.practice_id,
                                    written_off=written_off, summary=summary, now=now)


def membership_ended(*, membership: Membership, now: datetime) -> None:
    """The processor ended the subscription: nothing is chased any more (its open cases are cancelled
    now rather than at the next dunning run, so the order of the webhooks does not matter)."""
    cancel_cases_of_membership(membership=membership, now=now, reason="membership cancelled")
