"""The member's card-update link (from an SMS or email): a signed link to us that asks the processor
for a fresh hosted card-update page and redirects there; the page sends the member back to `done`,
which only says thank you. Loading a page never charges: the open invoice is retried when the
processor reports the new default card (its webhook; see `integrations.inbox`). No login: the signed
token is the key (the return page has a token of its own), and the pages show nothing but the
practice's name."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing.dunning.links import card_update_return_link, case_id_from_return_token, case_id_from_token
from billing.dunning.selectors import case_for_card_link
from billing.models import DunningCaseStatus

from .dunning import ProcessorRejected, ProcessorUnavailable, get_dunning_processor

logger = logging.getLogger(__name__)


def _page(request, *, title: str, text: str, status: int = 200, practice_name: str = "") -> HttpResponse:
    return render(request, "billing/card_link.html", {"title": title, "text": text, "practice_name": practice_name},
                  status=status)


def _case(case_id: int | None):
    return case_for_card_link(case_id) if case_id is not None else None


@require_GET
def card_update(request: HttpRequest, token: str) -> HttpResponse:
    case = _case(case_id_from_token(token))
    if case is None:
        return _page(request, title="This link has expired",
                     text="Please contact the practice for a new card-update link.", status=404)
    practice_name = case.practice.name
    if case.status != DunningCaseStatus.OPEN:
        return _page(request, title="Nothing to update", practice_name=practice_name,
                     text="Your membership payment is settled. Thank you!")
    if not case.member.processor_customer_id:
        return _page(request, title="Please contact us", practice_name=practice_name,
                     text="We could not open the card-update page; please call the practice.", status=409)
    try:
        url = get_dunning_processor().card_update_url(customer_id=case.member.processor_customer_id,
                                                      return_url=card_update_return_link(case.pk))
    except (ProcessorUnavailable, ProcessorRejected):
        logger.warning("card-update page for case %s could not be opened", case.pk)
        return _page(request, title="Please try again in a few minutes", practice_name=practice_name,
                     text="The card-update page is not available right now.", status=503)
    return HttpResponseRedirect(url)


@require_GET
def card_update_done(request: HttpRequest, token: str) -> HttpResponse:
    """Changes nothing (a reload, a shared link or a crawler must not charge anyone): the retry
    follows the processor's report of the new default card."""
    case = _case(case_id_from_return_token(token))
    if case is None:
        return _page(request, title="This link has expired",
                     text="Please contact the practice if your payment still needs attention.", status=404)
    if case.status == DunningCaseStatus.OPEN:
        return _page(request, title="Thank you", practice_name=case.practice.name,
                     text="Once our payment processor confirms your new card, we will charge it for the open "
                          "payment. If you did not save a new card, please use the link in our message again.")
    return _page(request, title="Thank you", practice_name=case.practice.name,
                 text="Your membership payment is settled.")
