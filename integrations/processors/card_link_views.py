"""The member's card-update link (from an SMS or email): a signed link to us that asks the processor
for a fresh hosted card-update page and redirects there; the page sends the member back to `done`,
which only says thank you. A link refused (its case closed, older than 7 days, or already used to
save a card: `billing.dunning.links`) gets a plain page saying whom to call. Loading a page never
charges: the open invoice is retried when the processor reports the new default card (its webhook;
see `integrations.inbox`). No login: the signed
token is the key (the return page has a token of its own), and the pages show nothing but the
practice's name."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from billing.dunning import links
from billing.dunning.selectors import case_for_card_link
from billing.models import DunningCaseStatus

from .dunning import ProcessorRejected, ProcessorUnavailable
from .dunning_choice import payment_page_url

logger = logging.getLogger(__name__)

REFUSED_TITLES = {links.EXPIRED: "This link has expired", links.USED: "This link has been used",
                  links.CLOSED: "Nothing to update"}


def _page(request, *, title: str, text: str, status: int = 200, practice=None) -> HttpResponse:
    return render(request, "billing/card_link.html",
                  {"title": title, "text": text, "practice_name": practice.name if practice else "",
                   "practice_phone": getattr(practice, "phone", "") if practice else ""},
                  status=status)


def _refused(request, case, why: str) -> HttpResponse:
    """A plain page for a link that may not open the card page, with whom to call."""
    if why == links.CLOSED:
        return _page(request, title=REFUSED_TITLES[why], practice=case.practice,
                     text="Your membership payment needs nothing from you now. Thank you!")
    text = ("This link was already used to save a card. If the payment still needs attention we will send you a "
            "new link; or call the clinic." if why == links.USED else
            "Card-update links work for 7 days. Please call the clinic for a new one.")
    return _page(request, title=REFUSED_TITLES[why], text=text, status=410, practice=case.practice)


@require_GET
def card_update(request: HttpRequest, token: str) -> HttpResponse:
    now = timezone.now()
    link = links.read_card_link(token)
    case = case_for_card_link(link.case_id) if link is not None else None
    if case is None:
        return _page(request, title="This link has expired",
                     text="Please call the clinic for a new card-update link.", status=404)
    why = links.card_link_refusal(case, link, now=now)
    if why is not None:
        logger.info("card-update link for case %s refused: %s", case.pk, why)
        return _refused(request, case, why)
    if not case.member.processor_customer_id:
        return _page(request, title="Please contact us", practice=case.practice,
                     text="We could not open the card-update page; please call the clinic.", status=409)
    if case.practice.processor == "square":          # our page with Square's card fields
        return HttpResponseRedirect(_square_card_page(case))
    try:
        url = payment_page_url(case, return_url=links.card_update_return_link(case.pk))
    except (ProcessorUnavailable, ProcessorRejected):
        logger.warning("card-update page for case %s could not be opened", case.pk)
        return _page(request, title="Please try again in a few minutes", practice=case.practice,
                     text="The card-update page is not available right now.", status=503)
    return HttpResponseRedirect(url)


def _square_card_page(case) -> str:
    """At Square the member needs both pages: ours to put the card Square charges from now on (no
    API pays an open invoice, and Square does not charge it again with a new card), then Square's
    page for the open invoice, where it is paid (`invoice.payment_made` settles the case) — the card
    page leads on to it. Square out of reach: the card page alone."""
    from .square_cards import card_page_url

    try:
        pay = payment_page_url(case, return_url="")
    except (ProcessorUnavailable, ProcessorRejected):
        logger.warning("the open invoice's page for case %s could not be read", case.pk)
        pay = ""
    return card_page_url(membership=case.membership, back_url=pay)


@require_GET
def card_update_done(request: HttpRequest, token: str) -> HttpResponse:
    """Changes nothing (a reload, a shared link or a crawler must not charge anyone): the retry
    follows the processor's report of the new default card."""
    case_id = links.case_id_from_return_token(token, now=timezone.now())
    case = case_for_card_link(case_id) if case_id is not None else None
    if case is None:
        return _page(request, title="This link has expired",
                     text="Please call the clinic if your payment still needs attention.", status=404)
    if case.status == DunningCaseStatus.OPEN:
        return _page(request, title="Thank you", practice=case.practice,
                     text="Once our payment processor confirms your new card, we will charge it for the open "
                          "payment. If you did not save a new card, please use the link in our message again.")
    return _page(request, title="Thank you", practice=case.practice, text="Your membership payment is settled.")
