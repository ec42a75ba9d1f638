"""Joining online at the processor: the hosted page a join pays on (`open_join_checkout`), and the
processor's confirmation turned into the ledger's enrollment (`confirm_join`, from the inbox).

The events that follow a join at the processor (the subscription created, its first invoice paid)
may arrive before the confirmation: they wait in the inbox for a membership that does not exist
yet. Once the join enrolls, the ones naming its subscription are made due at once, so the first
paid invoice seeds the balance in the same sweep instead of after its retry delay."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from memberships.models import JoinAttempt, Membership
from memberships.services.common import Actor
from memberships.services.joining import enroll_online, note_checkout

from . import sync
from .base import CheckoutCompleted, JoinCheckout


# Where Stripe serves Checkout: the join form's redirect goes there, so the join page's
# Content-Security-Policy `form-action` must allow it (a browser enforces it on the redirect too).
STRIPE_CHECKOUT_ORIGIN = "https://checkout.stripe.com"


def hosted_page_origins() -> list[str]:
    """The origins the join form may end up on: Stripe's Checkout, or the local Stripe-compatible
    server STRIPE_API_BASE points at (it serves its own hosted page)."""
    from urllib.parse import urlsplit

    base = urlsplit(settings.STRIPE_API_BASE or "")
    if base.scheme and base.netloc and base.netloc != "api.stripe.com":
        return [f"{base.scheme}://{base.netloc}"]
    return [STRIPE_CHECKOUT_ORIGIN]


def join_key(checkout_ref: str) -> str:
    """One enrollment per hosted checkout, whoever reports it and however often."""
    return f"join-online:{checkout_ref}"


def open_join_checkout(*, attempt: JoinAttempt, success_url: str, cancel_url: str, now: datetime) -> JoinCheckout:
    """The processor's hosted page for this join (its tier's price created once if missing). Raises
    the processor errors of `base` (unavailable, rejected)."""
    processor = sync.get_processor()
    key = f"join:{attempt.ref}"
    price_ref = sync.ensure_price(processor, attempt.tier, idempotency_key=key)
    minutes = max(30, min(settings.JOIN_CHECKOUT_MINUTES, 24 * 60))   # Stripe's bounds for expires_at
    checkout = processor.join_checkout(join_ref=attempt.ref, price_ref=price_ref, email=attempt.email,
                                       success_url=success_url, cancel_url=cancel_url,
                                       expires_at=now + timedelta(minutes=minutes), idempotency_key=key)
    note_checkout(attempt=attempt, checkout_ref=checkout.checkout_ref)
    return checkout


def confirm_join(fact: CheckoutCompleted, *, now: datetime) -> Membership:
    """The processor says the join is paid: enroll (once per checkout), then wake the events of its
    subscription that were waiting for the membership."""
    membership = enroll_online(join_ref=fact.join_ref, checkout_ref=fact.checkout_ref, customer_ref=fact.customer_ref,
                               subscription_ref=fact.subscription_ref, actor=Actor.system("member joined online"),
                               idempotency_key=join_key(fact.checkout_ref), now=now)
    from integrations.intake import SOURCE_STRIPE

    wake_waiting_events(source=SOURCE_STRIPE, subscription_ref=fact.subscription_ref, now=now)
    return membership


def wake_waiting_events(*, source: str, subscription_ref: str, now: datetime) -> int:
    """`source`'s events still waiting because no membership had this subscription (their error
    names it): due now."""
    from integrations.models import InboundEvent, InboundStatus

    if not subscription_ref:
        return 0
    return (InboundEvent.objects.filter(source=source, status=InboundStatus.RECEIVED,
                                        error__contains=f"subscription {subscription_ref} ")
            .update(next_attempt_at=now))
