"""An invoice the processor will not collect any more — voided or cancelled (forgiven), or marked
uncollectible (written off) — and what it means here: no payment is expected.

- The invoice is mirrored as void / uncollectible (a void after a write-off is void; a paid invoice
  stays paid; a failure heard of after it changes nothing: `services._record_failure`).
- Its dunning case ends forgiven or written off — never "recovered": nothing was paid and nothing is
  refilled (no benefits for a month nobody paid) — its pending steps are skipped, messages not yet
  sent are withdrawn, the chart flag comes off through the outbox as on recovery
  (`dunning.cases.forgive_case_for_invoice`). The timeline says it in plain words: "Invoice voided
  at Stripe on Dec 6, 2026 — no payment expected".
- An invoice that never failed changes nothing: it is mirrored and noted on the timeline.
- The membership's status follows the processor's subscription, never a guess: where the processor
  reports its subscription's standing in events of its own (Stripe moves a past-due subscription to
  active once its latest invoice is voided or written off), a past-due or lapsed membership comes
  back when that event says active and no failed invoice is still owed (`standing`: whichever of the
  two facts is applied last); where the subscription has no past-due state (Square: ACTIVE
  throughout), it comes back once nothing failed is owed.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from memberships import services as ledger
from memberships.models import EventKind, Membership

from . import dunning_hooks
from .facts import InvoiceForgiven
from .models import Invoice, InvoiceStatus, ProcessorSubscription
from .services import _lock_invoice, _require_membership  # the one lock order of every invoice fact
from .standing import GOOD_STANDING, back_in_good_standing

PROCESSOR_NAMES = {"stripe": "Stripe", "square": "Square"}


def processor_name(processor: str) -> str:
    return PROCESSOR_NAMES.get(processor, processor.capitalize())


def forgiven_summary(*, fact: InvoiceForgiven, practice, now: datetime) -> str:
    """The timeline's words: "Invoice voided at Stripe on Dec 6, 2026 — no payment expected"."""
    day = practice.local_date(fact.forgiven_at or now)
    what = "written off" if fact.written_off else fact.how
    detail = f" ({fact.how})" if fact.written_off else ""
    return (f"Invoice {what} at {processor_name(fact.processor)} on {day:%b} {day.day}, {day.year}{detail} "
            f"— no payment expected")


@transaction.atomic
def record_invoice_forgiven(*, fact: InvoiceForgiven, now: datetime) -> Invoice:
    """Mirror the forgiven invoice, end its dunning case forgiven (or written off), and bring the
    membership back when the processor's standing says so. Idempotent: a replay changes nothing."""
    membership = _require_membership(fact)
    invoice, _ = _lock_invoice(fact=fact, membership=membership, now=now)
    status = InvoiceStatus.UNCOLLECTIBLE if fact.written_off else InvoiceStatus.VOID
    if invoice.status in (InvoiceStatus.PAID, InvoiceStatus.VOID) or invoice.status == status:
        return invoice                      # paid stays paid; void is final; a replay
    failure_watermark = invoice.last_event_created if invoice.failed_at else 0
    invoice.status = status
    invoice.attempt_count = max(invoice.attempt_count, fact.attempt_count)
    invoice.next_payment_attempt = None
    invoice.processor_created = fact.created or invoice.processor_created
    invoice.last_event_created = max(invoice.last_event_created, fact.event_created)
    invoice.updated_at = now
    invoice.save()

    practice = membership.member.practice
    summary = forgiven_summary(fact=fact, practice=practice, now=now)
    case = dunning_hooks.invoice_forgiven(invoice=invoice, written_off=fact.written_off, summary=summary, now=now)
    if case is None:
        ledger.record_event(
            membership=membership, kind=EventKind.NOTE, summary=summary,
            payload={"invoice_id": invoice.pk, "invoice_ref": invoice.processor_invoice_id,
                     "forgiven": status, "failed": invoice.failed_at is not None},
            actor=ledger.Actor.processor(fact.processor), now=now)
    if invoice.failed_at is not None and _standing_reported_good(fact=fact, membership=membership,
                                                                 since=failure_watermark):
        back_in_good_standing(membership=membership, processor=fact.processor, now=now,
                              key=f"forgiven:{invoice.processor_invoice_id}", invoice_ref=invoice.processor_invoice_id)
    return invoice


def _standing_reported_good(*, fact: InvoiceForgiven, membership: Membership, since: int) -> bool:
    """Whether the processor's subscription is in good standing now: a processor without a past-due
    state always is; otherwise its own latest subscription event, if it came after the failure (an
    "active" from before the failure says nothing about it)."""
    if not fact.standing_reported:
        return True
    sub = (ProcessorSubscription.objects.filter(processor=fact.processor, membership=membership,
                                                processor_subscription_id=fact.subscription_ref)
           .values("status", "last_event_created").first())
    return bool(sub) and sub["status"] in GOOD_STANDING and sub["last_event_created"] > since
