"""The Square card page (`square_cards`): GET draws the page — Square's Web Payments SDK puts the
card fields in Square's frames, `static/js/square_card.js` tokenizes and posts the token; POST saves
the card through `save_card_on_file`. No login: the signed link is the key (from the staff card
link, the member page, a dunning message); the page shows only the practice's name and, when the
card starts the membership, its price. Its Content-Security-Policy adds Square's SDK origin, on this
page only."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from memberships.errors import LedgerError
from memberships.services.location_prices import membership_price

from .base import PaymentDeclined, ProcessorRejected, ProcessorUnavailable
from .square_cards import (
    card_page_url,
    check_can_start,
    csp_sources,
    open_membership,
    read_card_page_token,
    save_card_on_file,
    sdk_url,
)

logger = logging.getLogger(__name__)


def _render(request, context: dict, *, status: int = 200) -> HttpResponse:
    response = render(request, "integrations/square_card.html", context, status=status)
    response._csp_update = csp_sources() if context.get("form") else {}
    return response


def _message(request, membership, *, title: str, text: str, status: int, back: str = "") -> HttpResponse:
    practice = membership.member.practice if membership is not None else None
    return _render(request, {"title": title, "text": text, "practice": practice, "back": back}, status=status)


@require_http_methods(["GET", "POST"])
def card_page(request: HttpRequest, token: str) -> HttpResponse:
    read = read_card_page_token(token)
    membership = open_membership(read[0]) if read is not None else None
    if membership is None:
        return _message(request, None, title="This link has expired", status=404,
                        text="Please ask the clinic for a new card link.")
    back = read[1]
    try:
        check_can_start(membership)
    except LedgerError as exc:
        return _message(request, membership, title="Please contact the clinic", text=exc.message, status=409)
    if request.method == "POST":
        return _save(request, membership, back=back)
    return _form(request, membership)


def _form(request, membership, *, error: str = "", status: int = 200) -> HttpResponse:
    starting = not membership.processor_subscription_id
    return _render(request, {
        "form": True, "practice": membership.member.practice, "starting": starting, "error": error,
        "price": membership_price(membership).display if starting else "",   # the member's location's
        "application_id": settings.SQUARE_APPLICATION_ID, "location_id": settings.SQUARE_LOCATION_ID,
        "sdk_url": sdk_url()}, status=status)


def _save(request, membership, *, back: str) -> HttpResponse:
    try:
        saved = save_card_on_file(membership=membership, source_token=request.POST.get("source_token", ""),
                                  now=timezone.now())
    except PaymentDeclined:
        return _form(request, membership, status=402,
                     error="The card was declined. Please try another card, or call the clinic.")
    except ProcessorUnavailable:
        logger.warning("square card page for membership %s: Square unavailable", membership.pk)
        return _form(request, membership, status=503,
                     error="The card could not be saved right now; nothing was charged. Please try again in a few minutes.")
    except ProcessorRejected:
        logger.warning("square card page for membership %s: Square refused the card", membership.pk)
        return _form(request, membership, status=400,
                     error="Square could not save this card; nothing was charged. Please enter it again.")
    except LedgerError as exc:
        return _form(request, membership, error=exc.message, status=exc.http_status)
    text = ("Your card is saved and your membership has started: the first payment is being taken now."
            if saved.started else "Your card is saved: the next payment of your membership will be charged to it.")
    return _message(request, membership, title="Thank you", text=text, status=200, back=back)


__all__ = ["card_page", "card_page_url"]
