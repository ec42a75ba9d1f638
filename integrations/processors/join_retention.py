"""What the hourly purge of joins abandoned before paying (`portal.join.tasks`) must keep, whichever
processor the practice has: a join paid at the processor whose confirmation is not processed yet —
it waits, or it failed and waits for a manager (the person already had a membership, say) — stays
with the agreement she signed until the confirmation goes through; so does one whose hosted page
could not be closed. The join page asks the same of one join (`confirmation_held`) to tell the person
where she stands. The processor-specific part stays here: Stripe's checkout sessions in the inbox
(`awaiting_checkout_session`), Square's payment links (`square_checkout`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from integrations.intake import SOURCE_STRIPE
from integrations.models import InboundEvent, InboundStatus
from memberships.models import JoinAttempt
from memberships.models.practice import Processor

from .square_checkout import close_abandoned_links, confirmation_failed


def close_abandoned_checkouts(*, before: datetime) -> tuple[int, ...]:
    """Of the joins started before `before`, the ones the purge must keep (paid and awaiting their
    confirmation, or a hosted page still open). The hosted pages of the others are closed first
    where the processor does not expire them (Square's payment links)."""
    return tuple(close_abandoned_links(before=before)) + awaiting_checkout_session(before=before)


def awaiting_checkout_session(*, before: datetime) -> tuple[int, ...]:
    """Stripe's part: the joins that a checkout session unprocessed in the inbox (received, or
    failed for a manager) names — `client_reference_id`, `metadata.join_ref`. Stripe's Checkout
    expires within a day: nothing is left open there to close."""
    refs = list(JoinAttempt.objects.filter(created_at__lt=before).values_list("ref", flat=True))
    mentioned = _named_by_checkout_sessions(refs, statuses=[InboundStatus.RECEIVED, InboundStatus.FAILED])
    mentioned |= _settling(refs)
    return tuple(JoinAttempt.objects.filter(ref__in=mentioned).values_list("pk", flat=True)) if mentioned else ()


def _settling(refs: list[str]) -> set[str]:
    """The joins whose checkout completed "unpaid" (a bank debit settles days later; the event was done
    with, enrolling nothing) and whose delayed payment has neither failed nor been applied yet: the
    person paid and waits for `checkout.session.async_payment_succeeded`."""
    if not refs:
        return set()
    sessions = InboundEvent.objects.filter(_naming(refs), source=SOURCE_STRIPE)
    unpaid = set(sessions.filter(event_type="checkout.session.completed",
                                 payload__data__object__payment_status="unpaid")
                 .values_list("payload__data__object__id", flat=True))
    if not unpaid:
        return set()
    settled = set(sessions.filter(event_type="checkout.session.async_payment_failed")
                  .values_list("payload__data__object__id", flat=True))
    return _named(sessions.filter(payload__data__object__id__in=unpaid - settled), refs)


# How long after it came in an event of a settling join's subscription may keep waiting past its
# attempts: a SEPA debit takes up to 14 days to settle (ACH about 4 business days), with a week to spare
# for the confirmation itself. Beyond it the event fails as any other, for a manager to look at.
SETTLING_WAIT = timedelta(days=21)


def settling_subscriptions(subscription_refs: list[str]) -> set[str]:
    """Of these Stripe subscriptions, the ones made by a join still kept whose checkout completed
    "unpaid" and whose delayed payment has not failed (`_settling`): their own events (the
    subscription created, its invoices) wait for the enrollment rather than fail meanwhile."""
    refs = [ref for ref in set(subscription_refs) if ref]
    if not refs:
        return set()
    sessions = (InboundEvent.objects.filter(source=SOURCE_STRIPE, event_type="checkout.session.completed",
                                            payload__data__object__payment_status="unpaid",
                                            payload__data__object__subscription__in=refs)
                .values_list("payload__data__object__subscription", "payload__data__object__client_reference_id",
                             "payload__data__object__metadata__join_ref"))
    by_join: dict[str, set[str]] = {}
    for subscription, *joins in sessions:
        for ref in joins:
            if ref:
                by_join.setdefault(ref, set()).add(subscription)
    kept = list(JoinAttempt.objects.filter(ref__in=list(by_join)).values_list("ref", flat=True))
    return {subscription for ref in _settling(kept) for subscription in by_join[ref]}


def confirmation_held(attempt: JoinAttempt) -> bool:
    """Whether the join was paid at the processor and its confirmation failed, waiting for a manager
    (the person already has a membership, say): the join page then tells her the clinic finishes it."""
    if attempt.practice.processor == Processor.SQUARE:
        return confirmation_failed(attempt)
    return bool(_named_by_checkout_sessions([attempt.ref], statuses=[InboundStatus.FAILED]))


def payment_settling(attempt: JoinAttempt) -> bool:
    """Whether the join was paid by a method that settles days later (a bank debit) and is waiting
    for it: the join page then tells her it takes a few business days, not minutes."""
    return attempt.practice.processor != Processor.SQUARE and bool(_settling([attempt.ref]))


def _named_by_checkout_sessions(refs: list[str], *, statuses: list[str]) -> set[str]:
    """Which of these joins a Stripe checkout session in the inbox with one of `statuses` names."""
    if not refs:
        return set()
    return _named(InboundEvent.objects.filter(_naming(refs), source=SOURCE_STRIPE, status__in=statuses), refs)


def _naming(refs: list[str]) -> Q:
    """Checkout sessions naming one of these joins: `client_reference_id` or `metadata.join_ref`."""
    return (Q(payload__data__object__client_reference_id__in=refs)
            | Q(payload__data__object__metadata__join_ref__in=refs))


def _named(sessions, refs: list[str]) -> set[str]:
    """Which of these joins the sessions name."""
    wanted = set(refs)
    pairs = sessions.values_list("payload__data__object__client_reference_id",
                                 "payload__data__object__metadata__join_ref")
    return {ref for pair in pairs for ref in pair if ref in wanted}
