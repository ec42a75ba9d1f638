"""Keep the processor's subscription in step with the ledger: the outbox's `processor` destination.

Stage rule (the practice's automation stage, enforced by the outbox):

| ledger event                          | processor effect                                      | needs       |
|---------------------------------------|-------------------------------------------------------|-------------|
| enrolled                              | customer (+ plan) and subscription at the tier price  | `tier_sync` |
| tier changed (now)                    | subscription price, proration per setting (none)      | `tier_sync` |
| tier change scheduled (next cycle)    | subscription price, no proration (applies at renewal) | `tier_sync` |
| paused / resumed                      | `pause_collection` set / cleared                      | `tier_sync` |
| cancelled                             | subscription cancelled                                | `tier_sync` |

Below `tier_sync` nothing is sent: the delivery is recorded as "shadowed — would have …" and the
practice keeps running its subscriptions at the processor by hand (the ledger mirrors them from the
webhooks). Payment retries belong to `dunning` (see `StripeProcessor.retry_invoice`).

Each delivery converges the subscription to the membership's *current* state (tier, paused or not,
cancelled or not) rather than replaying the event's payload, so deliveries that arrive late or out
of order still end in the right place. Events the processor itself caused (actor = processor) are
not echoed back.
"""

from __future__ import annotations

from datetime import datetime, time

from django.conf import settings
from django.db import connection

from integrations.outbox import PermanentDeliveryError, RetryableDeliveryError
from memberships.models import (
    ActorType,
    AutomationStage,
    Event,
    EventKind,
    Member,
    Membership,
    MembershipStatus,
    Tier,
    TierLocationPrice,
)
from memberships.models.catalogue import clinical_terms_in

from .base import PaymentDeclined, ProcessorRejected, ProcessorUnavailable

WANTED = frozenset({EventKind.ENROLLED, EventKind.TIER_CHANGED, EventKind.TIER_CHANGE_SCHEDULED,
                    EventKind.PAUSED, EventKind.RESUMED, EventKind.CANCELLED})


def member_ref(member: Member) -> str:
    return f"mb_{member.pk}"


def membership_ref(membership: Membership) -> str:
    return f"ms_{membership.pk}"


def practice_ref(practice_id: int) -> str:
    return f"pr_{practice_id}"


def plan_id_for(tier: Tier) -> str:
    return f"{settings.STRIPE_PLAN_ID_PREFIX}{tier.pk}"


def get_processor():
    from . import get_processor as factory

    return factory("stripe")


def processor_for(practice):
    """The practice's own processor (`Practice.processor`): Stripe's through `get_processor`."""
    from . import get_processor as factory

    return get_processor() if practice.processor == "stripe" else factory(practice.processor)


def ensure_price(processor, tier: Tier, *, idempotency_key: str, location_id: int | None = None) -> str:
    """The tier's processor price (created once, stored on the tier) — or, for a membership priced at
    a location with its own price for the tier (`location_id`), that location's price (created once,
    stored on the `TierLocationPrice`: its own plan, the same neutral processor name)."""
    own = (TierLocationPrice.objects.filter(tier=tier, location_id=location_id).first()
           if location_id is not None else None)
    stored = own.processor_price_id if own is not None else tier.processor_price_id
    if stored:
        return stored
    found = clinical_terms_in(tier.processor_name or "", practice_id=tier.practice_id)
    if found:  # saved before a treatment of that name existed, or written without the form
        raise ProcessorRejected(f"Tier {tier.pk}: its processor name would put a treatment ({', '.join(found)}) on "
                                "card statements and receipts; rename it in the admin, then retry.")
    suffix = f"_l{own.location_id}" if own is not None else ""
    price_ref = processor.ensure_price(
        tier_ref=f"tr_{tier.pk}{suffix}", plan_id=f"{plan_id_for(tier)}{suffix}", product_name=tier.processor_name,
        amount_cents=own.price_cents if own is not None else tier.price_cents, currency=tier.currency,
        interval=tier.interval, idempotency_key=f"{idempotency_key}:tier{tier.pk}{suffix}")
    if own is not None:
        TierLocationPrice.objects.filter(pk=own.pk).update(processor_price_id=price_ref)
        return price_ref
    Tier.objects.filter(pk=tier.pk).update(processor_price_id=price_ref)
    tier.processor_price_id = price_ref
    return price_ref


def ensure_customer(processor, member: Member, *, idempotency_key: str) -> str:
    # Square refuses a customer with neither name nor email (Stripe's carries our ref alone)
    contact = ({"given_name": member.first_name, "family_name": member.last_name, "email": member.email}
               if getattr(processor, "name", "") == "square" else {})
    customer_ref = processor.ensure_customer(member_ref=member_ref(member), existing_ref=member.processor_customer_id,
                                             idempotency_key=idempotency_key, **contact)
    if customer_ref != member.processor_customer_id:
        Member.objects.filter(pk=member.pk).update(processor_customer_id=customer_ref)
        member.processor_customer_id = customer_ref
    return customer_ref


def _store_subscription(membership: Membership, subscription_ref: str) -> None:
    if subscription_ref and membership.processor_subscription_id != subscription_ref:
        Membership.objects.filter(pk=membership.pk).update(processor_subscription_id=subscription_ref)
        membership.processor_subscription_id = subscription_ref


def sync_enrollment(processor, membership: Membership, *, idempotency_key: str) -> dict:
    member = membership.member
    if membership.status == MembershipStatus.CANCELLED and not membership.processor_subscription_id:
        return _end_unstored(processor, membership, idempotency_key=idempotency_key)
    customer_ref = ensure_customer(processor, member, idempotency_key=idempotency_key)
    if membership.processor_subscription_id:
        return {"customer": customer_ref, "subscription": membership.processor_subscription_id, "existing": True}
    found = processor.find_subscription(customer_ref=customer_ref, membership_ref=membership_ref(membership))
    if found is None and not processor.default_payment_method(customer_ref=customer_ref):
        # No card on file: the front desk sends the hosted card page (card_link), which starts it.
        return {"customer": customer_ref, "awaiting_card": True}
    price_ref = ensure_price(processor, membership.tier, idempotency_key=idempotency_key,
                             location_id=membership.price_location_id)
    sub = processor.ensure_subscription(
        customer_ref=customer_ref, membership_ref=membership_ref(membership), price_ref=price_ref,
        metadata={"member_ref": member_ref(member), "practice_ref": practice_ref(member.practice_id)},
        idempotency_key=idempotency_key)
    _store_subscription(membership, sub.subscription_ref)
    return {"customer": customer_ref, "subscription": sub.subscription_ref, "status": sub.status,
            "created": sub.created}


def _end_unstored(processor, membership: Membership, *, idempotency_key: str) -> dict:
    """Cancelled before a subscription was stored: an earlier attempt may have made one whose answer
    was lost (a timeout), which the cancellation could not see. It is cancelled too, unless another
    membership holds it."""
    customer_ref = membership.member.processor_customer_id
    found = processor.find_subscription(customer_ref=customer_ref, membership_ref=membership_ref(membership)) \
        if customer_ref else None
    if found is None or Membership.objects.filter(processor_subscription_id=str(found["id"])).exists():
        return {"skipped": "cancelled before a subscription was created"}
    sub = processor.cancel_subscription(subscription_ref=str(found["id"]), idempotency_key=idempotency_key)
    return {"subscription": sub.subscription_ref, "status": sub.status, "cancelled": "made before the cancellation"}


def _require_subscription(membership: Membership) -> str:
    if not membership.processor_subscription_id:
        raise RetryableDeliveryError("the processor subscription does not exist yet (enrollment not delivered)")
    return membership.processor_subscription_id


def sync_tier(processor, membership: Membership, *, scheduled: bool, idempotency_key: str,
              now: datetime | None = None) -> dict:
    if membership.status == MembershipStatus.CANCELLED:
        return {"skipped": "membership cancelled"}
    sub_ref = _require_subscription(membership)
    tier = membership.pending_tier or membership.tier      # the price the next invoice must carry
    price_ref = ensure_price(processor, tier, idempotency_key=idempotency_key, location_id=membership.price_location_id)
    if getattr(processor, "name", "") == "square":
        from django.utils import timezone

        from . import square_tier_change as square

        moment = now or timezone.now()
        old = square.current(processor, sub_ref)
        today = square.square_today(old, moment, fallback=membership.member.practice.zone)
        # Square: "now" is a cancellation and a new subscription; so is "next cycle" on a subscription
        # that has not started (a swap would wait out its first cycle at the old price)
        if not scheduled or square.not_started(old, today=today):
            done = square.replace_subscription(processor, membership, membership_ref=membership_ref(membership),
                                               price_ref=price_ref, today=today, old=old)
            if membership.status == MembershipStatus.PAUSED:   # the new subscription waits out the pause too
                done["pause"] = sync_pause(processor, membership, idempotency_key=idempotency_key)
            return done
    sub = processor.change_price(subscription_ref=sub_ref, price_ref=price_ref, idempotency_key=idempotency_key,
                                 proration_behavior="none" if scheduled else None)
    return {"subscription": sub.subscription_ref, "price": sub.price_ref}


def sync_pause(processor, membership: Membership, *, idempotency_key: str) -> dict:
    if membership.status == MembershipStatus.CANCELLED:
        return {"skipped": "membership cancelled"}
    sub_ref = _require_subscription(membership)
    if membership.status == MembershipStatus.PAUSED:
        until = membership.paused_until
        # Midnight at the start of the end date where the practice is (not in UTC: that is the
        # afternoon before on the west coast).
        resumes_at = datetime.combine(until, time.min, tzinfo=membership.member.practice.zone) if until else None
        sub = processor.pause_collection(subscription_ref=sub_ref, resumes_at=resumes_at,
                                         idempotency_key=idempotency_key)
    else:
        sub = processor.resume_collection(subscription_ref=sub_ref, idempotency_key=idempotency_key)
    return {"subscription": sub.subscription_ref, "collection_paused": sub.extra.get("collection_paused")}


def sync_cancel(processor, membership: Membership, *, idempotency_key: str) -> dict:
    if not membership.processor_subscription_id:
        return {"skipped": "no processor subscription"}
    sub = processor.cancel_subscription(subscription_ref=membership.processor_subscription_id,
                                        idempotency_key=idempotency_key)
    done = {"subscription": sub.subscription_ref, "status": sub.status}
    if sub.extra.get("cancel_refused"):        # Square's deactivated subscription: reconciliation shows it
        done["cancel_refused"] = sub.extra["cancel_refused"]
    return done


_LOCK_SPACE = 0x5C1A  # this destination's advisory locks, apart from any other's


def one_at_a_time(membership_id: int) -> None:
    """The processor deliveries of one membership wait for each other until the delivery's transaction
    ends, so each reads the membership as the last one left it: a cancellation delivered while a tier
    change "now" replaces a Square subscription reaches the new one, not only the one it replaced.
    A transaction-scoped advisory lock on PostgreSQL (the membership's row stays free for the desk
    while the processor answers); SQLite's transactions already take its one write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_SPACE, membership_id])


class ProcessorDestination:
    name = "processor"
    repeatable = True   # every call carries the delivery's idempotency key: a repeat changes nothing

    def wants(self, event: Event) -> bool:
        return event.kind in WANTED and event.membership_id is not None and event.actor_type != ActorType.PROCESSOR

    def required_stage(self, event: Event) -> str:
        return AutomationStage.TIER_SYNC

    def describe(self, event: Event) -> str:
        payload = event.payload or {}
        price = payload.get("price_cents")
        amount = f" at ${price / 100:,.2f}" if isinstance(price, int) else ""
        return {
            EventKind.ENROLLED: f"create the processor customer and subscription{amount}",
            EventKind.TIER_CHANGED: f"change the subscription price{amount}",
            EventKind.TIER_CHANGE_SCHEDULED: f"change the subscription price{amount} from the next invoice",
            EventKind.PAUSED: f"pause collection until {payload.get('until', '?')}",
            EventKind.RESUMED: "resume collection",
            EventKind.CANCELLED: "cancel the subscription",
        }.get(event.kind, f"sync the subscription ({event.kind})")

    def deliver(self, event: Event, *, delivery, now: datetime) -> dict:
        one_at_a_time(event.membership_id)
        membership = Membership.objects.select_related("member", "tier", "pending_tier").get(pk=event.membership_id)
        key = delivery.idempotency_key
        try:
            processor = processor_for(membership.member.practice)
            if event.kind == EventKind.ENROLLED:
                return sync_enrollment(processor, membership, idempotency_key=key)
            if event.kind in (EventKind.TIER_CHANGED, EventKind.TIER_CHANGE_SCHEDULED):
                return sync_tier(processor, membership, idempotency_key=key, now=now,
                                 scheduled=event.kind == EventKind.TIER_CHANGE_SCHEDULED)
            if event.kind in (EventKind.PAUSED, EventKind.RESUMED):
                return sync_pause(processor, membership, idempotency_key=key)
            if event.kind == EventKind.CANCELLED:
                return sync_cancel(processor, membership, idempotency_key=key)
        except ProcessorUnavailable as exc:
            raise RetryableDeliveryError(str(exc)) from None
        except PaymentDeclined as exc:
            kind = "hard" if exc.hard else "soft"
            raise PermanentDeliveryError(f"declined ({kind}): {exc.failure_code} {exc.decline_code}".strip()) from None
        except ProcessorRejected as exc:
            raise PermanentDeliveryError(f"rejected: {exc}") from None
        return {}


destination = ProcessorDestination()
