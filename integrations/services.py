"""What the staff pages and billing call at the edges (processor-neutral)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from memberships.errors import IllegalTransition, NotAllowed
from memberships.models import AutomationStage, Membership, MembershipStatus
from memberships.services.stages import stage_at_least_for

from .processors import sync
from .processors.base import PaymentDeclined, ProcessorError, ProcessorUnavailable


class ProcessorUnavailableError(IllegalTransition):
    code = "processor_unavailable"
    http_status = 503


def card_link(*, membership: Membership, now: datetime) -> str:
    """A processor-hosted page where the member enters a card (card numbers never reach us), for the
    front desk to open or send.

    - no subscription yet → the page starts the subscription at the tier's price (needs the
      `tier_sync` stage, like every subscription the ledger creates);
    - a subscription exists → the page saves a new card (for a declined one; any stage).
    The subscription id arrives back through the webhooks (`membership_ref` metadata)."""
    membership = Membership.objects.select_related("member__practice", "member__home_location", "tier").get(
        pk=membership.pk)
    if membership.status == MembershipStatus.CANCELLED:
        raise IllegalTransition("The membership is cancelled.")
    starting = not membership.processor_subscription_id
    if starting and not stage_at_least_for(membership, AutomationStage.TIER_SYNC):
        raise NotAllowed("Automatic subscription changes are off for this practice, so a subscription is not "
                         "started from here: start it in the processor's dashboard.")
    if membership.member.practice.processor == "square":   # our page with Square's card fields
        from .processors.square_cards import card_page_url

        return card_page_url(membership=membership)
    processor = sync.get_processor()
    key = f"card-link:{membership.pk}:{int(now.timestamp())}"
    try:
        customer_ref = sync.ensure_customer(processor, membership.member, idempotency_key=key)
        price_ref = sync.ensure_price(processor, membership.tier, idempotency_key=key,
                                      location_id=membership.price_location_id) if starting else None
        base = settings.PUBLIC_BASE_URL.rstrip("/")
        return processor.checkout_url(customer_ref=customer_ref, membership_ref=sync.membership_ref(membership),
                                      price_ref=price_ref, success_url=base + settings.STRIPE_CHECKOUT_SUCCESS_PATH,
                                      cancel_url=base + settings.STRIPE_CHECKOUT_CANCEL_PATH, idempotency_key=key)
    except ProcessorUnavailable:
        raise ProcessorUnavailableError("The payment processor is not reachable; try again in a minute.") from None
    except (PaymentDeclined, ProcessorError) as exc:
        raise IllegalTransition(f"The payment processor refused the request: {exc}") from None
