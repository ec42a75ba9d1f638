"""A membership's standing after the processor stopped expecting a payment (an invoice voided,
cancelled or written off: `billing.forgiveness`): past due or lapsed → active once nothing failed is
owed and the processor's subscription is in good standing — as its own event reports it (Stripe), or
always (Square, whose subscription has no past-due state). Also what makes a past-due report stale:
it is about an invoice forgiven since."""

from __future__ import annotations

from datetime import datetime

from memberships import services as ledger
from memberships.models import Membership, MembershipStatus

from .facts import SubscriptionChanged
from .models import DunningCase, DunningCaseStatus, Invoice, InvoiceStatus

# The processor's subscription statuses that mean nothing is owed.
GOOD_STANDING = ("active", "trialing")


def subscription_in_good_standing(*, membership: Membership, change: SubscriptionChanged, now: datetime) -> None:
    """The processor reports its subscription active again (Stripe, after the past-due invoice was
    voided or written off): a past-due or lapsed membership comes back when nothing failed is owed
    any more. While a failed invoice is still open, its payment is what brings the membership back."""
    if (change.status in GOOD_STANDING and membership.processor_subscription_id == change.subscription_ref
            and membership.status in (MembershipStatus.PAST_DUE, MembershipStatus.LAPSED)):   # else: no query
        back_in_good_standing(membership=membership, processor=change.processor, now=now,
                              key=f"standing:{change.subscription_ref}:{change.event_created}")


def back_in_good_standing(*, membership: Membership, processor: str, now: datetime, key: str,
                          invoice_ref: str = "") -> None:
    """Past due or lapsed → active when no failed invoice of the membership is still owed and no
    dunning case is open. The timeline says nothing was paid (the event is marked `forgiven`: the
    dashboard does not count it as recovered)."""
    membership = Membership.objects.select_for_update(of=("self",)).get(pk=membership.pk)
    if membership.status not in (MembershipStatus.PAST_DUE, MembershipStatus.LAPSED):
        return
    owed = Invoice.objects.filter(membership=membership, status=InvoiceStatus.OPEN, failed_at__isnull=False)
    chased = DunningCase.objects.filter(membership=membership, status=DunningCaseStatus.OPEN)
    if owed.exists() or chased.exists():
        return
    ledger.mark_recovered(membership=membership, actor=ledger.Actor.processor(processor), now=now,
                          idempotency_key=key, invoice_ref=invoice_ref, forgiven=True)


def settled_by_forgiveness(*, membership: Membership, change: SubscriptionChanged) -> bool:
    """A past-due status about an invoice forgiven since (its event older than the void): stale."""
    return bool(change.latest_invoice_ref) and Invoice.objects.filter(
        membership=membership, processor=change.processor, processor_invoice_id=change.latest_invoice_ref,
        status__in=(InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)).exists()
