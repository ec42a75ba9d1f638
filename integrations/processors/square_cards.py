"""A card on file at Square, entered on a page we serve with Square's Web Payments SDK: the SDK draws
the card fields in Square's own frames and turns the card into a single-use token (`cnon:…`) in the
member's browser; our page posts only that token. The card number never reaches us (SAQ-A, as on
Stripe's hosted page).

The same link serves the three ways in (the staff card link, the member page's "update my card",
a dunning card-update link), so the three stay one flow:

- `card_page_url`: a signed link to the page (the membership's id, where "back" goes), valid
  `SQUARE_CARD_PAGE_DAYS`;
- `save_card_on_file`: the token → Square `CreateCard` for the subscription's own Square customer
  (else the member's; idempotency key from our member ref and the token: a double submit saves one
  card) → then either the
  subscription's card is replaced (`UpdateSubscription` with `card_id`: Square charges it from the
  next invoice) or, when the membership has no subscription yet (a staff enrollment waiting for its
  card), the subscription starts at the tier's plan with that card — as the outbox's enrollment
  would (`sync.ensure_customer`, `sync.ensure_price`, the adapter's search-then-create), only at
  the `tier_sync` automation stage, and its id is kept on the membership at once (Square's
  subscriptions carry no metadata of ours to match a webhook by).

Square's own docs for the SDK: `Square.payments(appId, locationId)`, `payments.card()`,
`card.attach('#card-container')`, `card.tokenize()` → `{status: "OK", token}`; the script comes
from `https://sandbox.web.squarecdn.com/v1/square.js` (sandbox) or `https://web.squarecdn.com/v1/square.js`
(production), and its Content-Security-Policy page lists that origin for script-src, frame-src and
connect-src (`csp_sources`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import reverse

from memberships.errors import IllegalTransition, NotAllowed
from memberships.models import AutomationStage, Membership, MembershipStatus
from memberships.services.stages import stage_at_least_for

from . import sync

logger = logging.getLogger(__name__)

SDK_URLS = {"sandbox": "https://sandbox.web.squarecdn.com/v1/square.js",
            "production": "https://web.squarecdn.com/v1/square.js"}
# Where the SDK's frames send the card (Square's forum, "Whitelisted Square Domains for Content
# Security Policy & Web Payments SDK"): connect-src beside the SDK's own origin.
PCI_CONNECT = {"sandbox": "https://pci-connect.squareupsandbox.com", "production": "https://pci-connect.squareup.com"}
_SALT = "square-card-page-v1"
_TOKEN = re.compile(r"cnon:[A-Za-z0-9_:-]{1,200}")


class CardTokenInvalid(IllegalTransition):
    code = "card_token_invalid"
    http_status = 400


@dataclass(frozen=True)
class SavedCard:
    card_ref: str
    subscription_ref: str
    started: bool                       # True: the subscription started with this card


def sdk_url() -> str:
    return settings.SQUARE_WEB_SDK_URL or SDK_URLS[settings.SQUARE_ENVIRONMENT]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def csp_sources() -> dict[str, list[str]]:
    """What the card page adds to its Content-Security-Policy: the SDK's origin, and nothing else
    (Square's card frames post to its PCI host, allowed for connect-src with Square's own SDK)."""
    origin = _origin(sdk_url())
    connect = [origin] if settings.SQUARE_WEB_SDK_URL else [origin, PCI_CONNECT[settings.SQUARE_ENVIRONMENT]]
    return {"script-src": [origin], "frame-src": [origin], "style-src": [origin], "connect-src": connect}


def is_square(practice) -> bool:
    return getattr(practice, "processor", "") == "square"


def card_page_url(*, membership: Membership, back_url: str = "") -> str:
    """The signed link to the card page of this membership (absolute: it is sent to the member)."""
    token = signing.dumps({"m": membership.pk, "b": back_url}, salt=_SALT, compress=True)
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("square_card:page", args=[token])


def read_card_page_token(token: str) -> tuple[int, str] | None:
    """(membership id, back URL) of a link that is ours and not older than SQUARE_CARD_PAGE_DAYS."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=settings.SQUARE_CARD_PAGE_DAYS * 86400)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), int):
        return None
    return data["m"], str(data.get("b") or "")


def open_membership(membership_id: int) -> Membership | None:
    membership = (Membership.objects.select_related("member__practice", "member__home_location", "tier")
                  .filter(pk=membership_id).first())
    if membership is None or membership.status == MembershipStatus.CANCELLED or not is_square(membership.member.practice):
        return None
    return membership


def check_can_start(membership: Membership) -> None:
    """A membership without a subscription may start one here only where the ledger owns
    subscriptions (the `tier_sync` stage of the member's home location, else the practice's), as the
    staff card link says."""
    if not membership.processor_subscription_id and not stage_at_least_for(membership, AutomationStage.TIER_SYNC):
        raise NotAllowed("Automatic subscription changes are off for this practice, so a subscription is not "
                         "started from here: the clinic starts it in Square's dashboard.")


def save_card_on_file(*, membership: Membership, source_token: str, now: datetime) -> SavedCard:
    """The Web Payments SDK's token → a card on file for the member's Square customer → the
    subscription's card (or the subscription started with it). Every call is idempotent: the same
    token saves one card; a subscription is searched before one is created. Raises CardTokenInvalid,
    NotAllowed, IllegalTransition and the processor errors of `base`."""
    if not _TOKEN.fullmatch(source_token or ""):
        raise CardTokenInvalid("The card could not be read; please enter it again.")
    membership = open_membership(membership.pk)
    if membership is None:
        raise IllegalTransition("This membership is not open at a Square practice.")
    check_can_start(membership)
    processor = sync.processor_for(membership.member.practice)
    key = f"square-card-page:{membership.pk}"
    member = membership.member
    if membership.processor_subscription_id:
        # Square charges a subscription only to a card of its own customer, which is not always the one
        # kept on the member (a join on Square's page makes its own customer for someone who was one)
        sub = processor._call(processor.client.subscriptions.get,
                              subscription_id=membership.processor_subscription_id)["subscription"]
        owner = str(sub.get("customer_id") or "") or sync.ensure_customer(processor, member, idempotency_key=key)
        card_ref = processor.save_card(customer_ref=owner, source_token=source_token,
                                       member_ref=sync.member_ref(member))
        update_subscription_card(processor, subscription=sub, card_ref=card_ref)
        logger.info("square card saved for membership %s (subscription card replaced)", membership.pk)
        return SavedCard(card_ref=card_ref, subscription_ref=membership.processor_subscription_id, started=False)
    customer_ref = sync.ensure_customer(processor, member, idempotency_key=key)
    card_ref = processor.save_card(customer_ref=customer_ref, source_token=source_token,
                                   member_ref=sync.member_ref(member))
    price_ref = sync.ensure_price(processor, membership.tier, idempotency_key=key,
                                  location_id=membership.price_location_id)
    sub = processor.ensure_subscription(customer_ref=customer_ref, membership_ref=sync.membership_ref(membership),
                                        price_ref=price_ref, metadata={"card_ref": card_ref}, idempotency_key=key)
    Membership.objects.filter(pk=membership.pk, processor_subscription_id="").update(
        processor_subscription_id=sub.subscription_ref)
    logger.info("square card saved for membership %s; subscription %s", membership.pk, sub.subscription_ref)
    return SavedCard(card_ref=card_ref, subscription_ref=sub.subscription_ref, started=True)


def update_subscription_card(processor, *, subscription: dict, card_ref: str) -> None:
    """Square's UpdateSubscription with the new `card_id` (the next invoice charges it). Nothing sent
    when the subscription already uses it (a retry)."""
    if subscription.get("card_id") == card_ref:
        return
    processor._call(processor.client.subscriptions.update, subscription_id=str(subscription["id"]),
                    subscription={"card_id": card_ref})
