"""What the ledger does with a processor's normalized fact: billing's reactions to charges, invoices
forgiven (voided, cancelled, written off) and subscriptions, a join paid on the hosted page (`processors.joining`), and the two card facts (a card saved on the hosted page, a new default card) that
retry an open dunning case now. The inbox calls `apply_fact` for each processor event."""

from __future__ import annotations

from datetime import datetime

from billing import services as billing
from billing.facts import ChargeActionRequired, ChargeFailed, ChargeSucceeded, InvoiceForgiven, SubscriptionChanged
from billing.forgiveness import record_invoice_forgiven

from .processors.base import CardSaved, CheckoutCompleted, DefaultCardChanged
from .processors.stripe_reversals import PaymentReversed, record_payment_reversed


def apply_fact(fact, *, now: datetime):
    """Hand a normalized fact to billing. Returns the billing row (or None when ignored)."""
    if isinstance(fact, ChargeSucceeded):
        return billing.record_charge_succeeded(charge=fact, now=now)
    if isinstance(fact, ChargeFailed):
        return billing.record_charge_failed(charge=fact, now=now)
    if isinstance(fact, ChargeActionRequired):
        return billing.record_charge_action_required(charge=fact, now=now)
    if isinstance(fact, InvoiceForgiven):
        return record_invoice_forgiven(fact=fact, now=now)
    if isinstance(fact, SubscriptionChanged):
        if fact.processor == "square":          # a join paid on Square's page names no membership
            from .processors.square_checkout import confirm_square_join

            confirm_square_join(fact, now=now)
        return billing.record_subscription_changed(change=fact, now=now)
    if isinstance(fact, CardSaved):
        return use_saved_card(fact, now=now)
    if isinstance(fact, DefaultCardChanged):
        return retry_with_new_default_card(fact, now=now)
    if isinstance(fact, CheckoutCompleted):
        from .processors.joining import confirm_join

        return confirm_join(fact, now=now)
    if isinstance(fact, PaymentReversed):        # refunded or disputed: a note on the timeline, no balance moved
        member = member_of_customer(fact.customer_ref)
        return record_payment_reversed(fact, member=member, now=now) if member is not None else None
    return None


def use_saved_card(fact: CardSaved, *, now: datetime):
    """The member's new card (from the hosted page) becomes the default, so the next retry — ours
    or the processor's — charges it. The member's own act: allowed at every automation stage."""
    from .processors import sync

    membership = billing.find_membership(membership_ref=fact.membership_ref, subscription_ref="")
    if membership is None:
        raise billing.UnknownMembership(f"No membership {fact.membership_ref or '?'} yet.")
    processor = sync.get_processor()
    card = processor.use_saved_card(customer_ref=fact.customer_ref, setup_ref=fact.setup_ref,
                                    subscription_ref=membership.processor_subscription_id,
                                    idempotency_key=f"card-saved:{fact.setup_ref}")
    from billing import dunning

    # An open dunning case pays its invoice with the new card now (once per card, capped per case).
    dunning.retry_open_cases_after_card_update(member=membership.member, payment_method_ref=card, now=now,
                                               source="card saved")
    return membership


class AmbiguousCustomer(Exception):
    """Several members carry the processor customer id: a manager has to untangle them."""


def retry_with_new_default_card(fact: DefaultCardChanged, *, now: datetime):
    """The processor reports a new default card for a customer (the Billing Portal's card update):
    the member's open dunning cases pay their invoice with it now, once per card. A customer that is
    no member of ours is ignored; one shared by several members fails the event for a manager."""
    from billing import dunning

    member = member_of_customer(fact.customer_ref)
    if member is None:
        return None
    dunning.retry_open_cases_after_card_update(member=member, payment_method_ref=fact.payment_method_ref,
                                               now=now, source="default card changed")
    return member


def member_of_customer(customer_ref: str):
    """The member of a processor customer; None for none (no member of ours). Raises AmbiguousCustomer
    when several members carry it (a manager untangles them)."""
    from memberships.models import Member

    members = list(Member.objects.filter(processor_customer_id=customer_ref).select_related("practice")[:2]) \
        if customer_ref else []
    if len(members) > 1:
        raise AmbiguousCustomer(f"processor customer {customer_ref} belongs to several members")
    return members[0] if members else None


def _practice_of(result) -> int | None:
    if result is None:
        return None
    if getattr(result, "practice_id", None):
        return result.practice_id
    if getattr(result, "member", None) is not None:
        return result.member.practice_id
    membership = getattr(result, "membership", None)
    return membership.member.practice_id if membership is not None else None
