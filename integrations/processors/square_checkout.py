"""Joining online at a Square practice: Square's hosted checkout page (the Checkout API's payment
link) in place of Stripe Checkout, and Square's confirmation turned into the same enrollment
(`memberships.services.joining.enroll_online`, once per payment link).

- `open_square_join`: `CreatePaymentLink` with `quick_pay` (the tier's neutral processor name, its
  price, our location) and `checkout_options.subscription_plan_id` = the tier's plan variation
  (Square, "Subscription Plan Checkout": a Square-hosted page where the buyer pays and subscribes to a
  plan variation with one paid phase — ours have one), `redirect_url` = our "done" page, the email
  prefilled; the idempotency key is the join's own ref (a reload makes no second link). Nothing about
  the person but the email goes to Square; the link's id is kept on the join.
- What confirms it: when the buyer pays, Square makes the customer (the email typed there), saves the
  card on file and creates the subscription; it sends `subscription.created` for it (Square's
  forum, "Confirming a customer completed Subscription checkout": "you can subscribe to subscription
  webhooks to get notified when a subscription has been created") and `invoice.payment_made` for the
  first invoice. Neither names the payment link, and a subscription carries no metadata of ours, so
  `confirm_square_join` (on a subscription fact naming no membership yet) reads the subscription's
  customer from Square and takes the newest open join on that plan variation with that email whose
  payment link Square marks paid by that customer (the link's order is DRAFT until paid, then OPEN;
  its payment names the customer): a subscription the clinic made in Square's dashboard is no join,
  and of two joins with one email each payer gets their own. A buyer who types another email on
  Square's page matches no join: the event waits, then fails visibly in the inbox for a manager (the
  join, paid, stays on file while the event is unprocessed: below).
- The first invoice's `invoice.payment_made` may come first: it waits for the membership; once the
  join enrolls, the Square events waiting for its subscription are made due at once.
- A payment link never expires (Stripe's Checkout does, within a day): before an abandoned join is
  purged its link is deleted at Square (`close_abandoned_links`, `DeletePaymentLink`), so nobody pays
  a join we no longer have. A join paid on Square's page is not abandoned: while a subscription event
  of a customer who paid its link waits or failed in the inbox (Square down, or she already has a
  membership: a manager's), the join, its signed agreement and its link stay, so the confirmation can
  still find it once it goes through."""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings

from memberships.models import JoinAttempt, Membership
from memberships.services.common import Actor
from memberships.services.joining import enroll_online, note_checkout

from . import sync
from .base import JoinCheckout, ProcessorError, ProcessorRejected, SubscriptionChanged
from .joining import join_key, wake_waiting_events
from .square import NotFound
from .square_events import SOURCE

logger = logging.getLogger(__name__)

# Where a payment link's page lives (the link's short `url` redirects to its `long_url`): the join
# form's redirect must be allowed by the page's form-action, hop by hop. The sandbox hosts are those of
# Square's own examples (quick pay checkout: `https://sandbox.square.link/u/…`; a forum answer's
# `long_url` on connect.squareupsandbox.com); production's short host follows the same pattern, and
# `checkout.square.site` (the page's host) is not confirmed by the reference: check the browser console
# on the first production join.
HOSTED_ORIGINS = {"sandbox": ["https://sandbox.square.link", "https://connect.squareupsandbox.com"],
                  "production": ["https://square.link", "https://checkout.square.site"]}


def hosted_page_origins() -> list[str]:
    """Square's checkout origins, or the local fake SQUARE_API_BASE points at (it serves the page)."""
    if settings.SQUARE_API_BASE:
        base = urlsplit(settings.SQUARE_API_BASE)
        return [f"{base.scheme}://{base.netloc}"]
    return HOSTED_ORIGINS[settings.SQUARE_ENVIRONMENT]


def open_square_join(*, attempt: JoinAttempt, success_url: str, now: datetime) -> JoinCheckout:
    """Square's hosted page for this join (the tier's plan created once if missing). Raises the
    processor errors of `base`. (A payment link does not expire; an abandoned join is purged here.)"""
    processor = sync.processor_for(attempt.practice)
    tier = attempt.tier
    price_ref = sync.ensure_price(processor, tier, idempotency_key=f"join:{attempt.ref}")
    answer = processor._call(
        processor.client.checkout.payment_links.create, idempotency_key=f"square-join:{attempt.ref}",
        description=attempt.ref,
        quick_pay={"name": tier.processor_name, "location_id": processor.location_id,
                   "price_money": {"amount": tier.price_cents, "currency": tier.currency.upper()}},
        checkout_options={"subscription_plan_id": price_ref, "redirect_url": success_url,
                          "ask_for_shipping_address": False},
        pre_populated_data={"buyer_email": attempt.email})
    link = answer["payment_link"]
    note_checkout(attempt=attempt, checkout_ref=str(link["id"]))
    return JoinCheckout(checkout_ref=str(link["id"]), url=str(link["url"]))


def close_abandoned_links(*, before: datetime) -> tuple[int, ...]:
    """Delete at Square the payment links of the joins started before `before` and never paid (the
    purge deletes those joins next). Returns the joins to keep: those whose link is still open —
    Square could not be reached, or refused the call (an expired token) — logged by id, tried again at
    the next run (only a link Square does not know, 404, is closed already); and those paid on
    Square's page whose confirmation is not processed yet (`_paid_and_awaited`), whose link stays:
    the confirmation reads it to find the join."""
    keep = []
    for attempt in (JoinAttempt.objects.filter(created_at__lt=before, practice__processor="square")
                    .exclude(checkout_ref="").select_related("practice", "tier")):
        processor = sync.processor_for(attempt.practice)
        try:
            if _paid_and_awaited(processor, attempt):
                keep.append(attempt.pk)
                continue
            processor._call(processor.client.checkout.payment_links.delete, id=attempt.checkout_ref)
        except NotFound:
            continue                            # not found at Square: nothing left to pay there
        except ProcessorError as exc:           # unreachable, or refused (an expired token): still open
            logger.warning("join %s: its Square payment link was not deleted (%s)", attempt.pk, type(exc).__name__)
            keep.append(attempt.pk)
    return tuple(keep)


def confirmation_failed(attempt: JoinAttempt) -> bool:
    """Whether the join was paid on Square's page and its confirmation failed, waiting for a manager
    (she already has a membership, say). False when Square cannot tell now."""
    from integrations.models import InboundStatus

    try:
        return _paid_and_awaited(sync.processor_for(attempt.practice), attempt, statuses=(InboundStatus.FAILED,))
    except ProcessorError as exc:
        logger.warning("join %s: Square could not say whether it was paid (%s)", attempt.pk, type(exc).__name__)
        return False


def _paid_and_awaited(processor, attempt: JoinAttempt, *, statuses: tuple[str, ...] | None = None) -> bool:
    """Whether the join was paid on Square's page and its confirmation is not processed yet: a
    subscription event on its tier's plan variation waits or failed in the inbox (`statuses`, both by
    default) for a customer who paid its link (any customer, when the link's payment names none).
    Square is asked about the link only when such an event is there."""
    from integrations.models import InboundEvent, InboundStatus

    from .square_events import SUBSCRIPTION

    plan = attempt.tier.processor_price_id
    unprocessed = InboundEvent.objects.filter(
        source=SOURCE, event_type__in=SUBSCRIPTION,
        status__in=list(statuses or (InboundStatus.RECEIVED, InboundStatus.FAILED)),
        payload__data__object__subscription__plan_variation_id=plan)
    if not plan or not unprocessed.exists():
        return False
    payers = _link_payers(processor, attempt.checkout_ref)
    if payers is None:
        return False                            # not paid (a DRAFT order) or gone
    return not payers or unprocessed.filter(payload__data__object__subscription__customer_id__in=payers).exists()


def _join_for(fact: SubscriptionChanged) -> JoinAttempt | None:
    """The open join this subscription paid: among the joins on its plan variation whose email is the
    customer's, newest first, the one whose payment link's order Square marks paid (no longer DRAFT)
    by a payment of this customer (or by a payment naming no customer). A subscription made any other
    way (the clinic's, in Square's dashboard) pays no join's link; of two joins with one email, each
    payer gets their own."""
    open_joins = (JoinAttempt.objects.filter(tier__processor_price_id=fact.price_ref).exclude(checkout_ref="")
                  .select_related("practice"))
    if not fact.price_ref or not open_joins.exists():
        return None
    first = open_joins.first()
    processor = sync.processor_for(first.practice)
    customer = processor._call(processor.client.customers.get, customer_id=fact.customer_ref)["customer"]
    email = str(customer.get("email_address") or "").strip().lower()
    if not email:
        return None
    for attempt in open_joins.filter(email=email).order_by("-created_at", "-pk"):
        payers = _link_payers(processor, attempt.checkout_ref)
        if payers is not None and (not payers or fact.customer_ref in payers):
            return attempt                      # paid; by this customer (or its tender names nobody)
    return None


def _link_payers(processor, link_id: str) -> set[str] | None:
    """The customers whose payments paid this payment link's order; None while it is not paid (a
    DRAFT). Square's quick pay checkout: the order is DRAFT until the buyer pays, then OPEN; an order
    from a payment link names no customer, its payment does (`Payment.customer_id`)."""
    try:
        link = processor._call(processor.client.checkout.payment_links.get, id=link_id)["payment_link"]
        order = processor._call(processor.client.orders.get, order_id=str(link.get("order_id") or ""))["order"]
    except ProcessorRejected:
        return None                             # the link or its order is gone: nothing paid it
    if order.get("state") in (None, "DRAFT", "CANCELED"):
        return None
    payers = set()
    for tender in order.get("tenders") or []:
        if tender.get("customer_id"):
            payers.add(str(tender["customer_id"]))
        elif tender.get("payment_id"):
            payment = processor._call(processor.client.payments.get, payment_id=str(tender["payment_id"]))["payment"]
            if payment.get("customer_id"):
                payers.add(str(payment["customer_id"]))
    return payers


def confirm_square_join(fact: SubscriptionChanged, *, now: datetime) -> Membership | None:
    """A Square subscription no membership has yet: when it is a join paid on Square's page, enroll
    (once per payment link) and wake the events waiting for it. Anything else: None, nothing done."""
    if fact.processor != "square" or not fact.subscription_ref or not fact.customer_ref:
        return None
    if Membership.objects.filter(processor_subscription_id=fact.subscription_ref).exists():
        return None
    attempt = _join_for(fact)
    if attempt is None:
        return None
    membership = enroll_online(join_ref=attempt.ref, checkout_ref=attempt.checkout_ref,
                               customer_ref=fact.customer_ref, subscription_ref=fact.subscription_ref,
                               actor=Actor.system("member joined online"),
                               idempotency_key=join_key(attempt.checkout_ref), now=now)
    wake_waiting_events(source=SOURCE, subscription_ref=fact.subscription_ref, now=now)
    return membership

