"""The member's own page (`/me/`) and its sign-in by a single-use link. Thin: each view reads its
form, calls `links`, the selector `page.member_page` or a ledger service with the member as the
actor, and renders. Every page that shows member data writes its audit row."""

from __future__ import annotations

import logging
import uuid

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from integrations.processors import member_card
from memberships.client_ip import client_ip
from memberships.errors import LedgerError
from memberships.models import MemberRequestReason
from memberships.selectors import current_membership
from memberships.services.common import Actor, write_audit, write_view_audit
from memberships.services.member_requests import file_member_request

from . import links, session
from .forms import LinkForm, RequestForm
from .page import member_page

logger = logging.getLogger(__name__)

REFUSED = {
    links.USED: ("This link has already been used", "Each link opens your page once. Ask for a new one below."),
    links.EXPIRED: ("This link has expired", "Links work for {minutes} minutes. Ask for a new one below."),
}


def _plain(request, *, title: str, text: str, status: int):
    return render(request, "portal/me/plain.html", {"title": title, "text": text}, status=status)


@require_http_methods(["GET", "POST"])
def link(request):
    """"Send me a link": the same answer (page and status) whether or not the address is a member's."""
    form = LinkForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        outcome = links.ask_for_link(raw_address=form.cleaned_data["address"], ip=client_ip(request),
                                     now=timezone.now())
        if outcome == links.OK:
            return render(request, "portal/me/link_sent.html", {"minutes": links.link_minutes()})
        if outcome == links.RATE_LIMITED:
            return _plain(request, title="Please wait a little",
                          text="Too many links were asked for. Please try again in an hour, or call the clinic.",
                          status=429)
        form.add_error("address", "Enter an email address or a mobile number.")
    return render(request, "portal/me/link.html", {"form": form}, status=400 if form.errors else 200)


def link_expired(request):
    return render(request, "portal/me/link.html", {"form": LinkForm(), "expired": True})


@require_http_methods(["GET", "POST"])
def open_link(request, link_id: int, token: str):
    """GET shows a button (mail scanners that fetch links spend nothing); POST spends the link once
    and starts the member session."""
    now = timezone.now()
    found = links.find_link(link_id, token)
    if found is None:
        return _plain(request, title="This link is not valid", status=404,
                      text="Please ask for a new link from the member page.")
    why = links.refusal(found, now=now) if request.method == "GET" else \
        links.open_link(found, ip=client_ip(request), now=now)
    if why is not None:
        title, text = REFUSED[why]
        return _plain(request, title=title, text=text.format(minutes=links.link_minutes()), status=410)
    if request.method == "GET":
        # it names whose page the link opens (a household gets one link per member): audited
        write_view_audit(actor=Actor.member(found.member, ip_address=client_ip(request)), action="member_link_view",
                         members=[found.member], obj=found, now=now)
        return render(request, "portal/me/open.html", {"practice_name": found.member.practice.name,
                                                       "first_name": found.member.first_name})
    session.start(request, found.member, now=now)
    return redirect("portal:me:page")


@require_POST
def sign_out(request):
    session.end(request)
    return redirect("portal:me:link")


@session.member_page
def page(request, member, *, now):
    return _render_page(request, member, now=now)


def _render_page(request, member, *, now, form: RequestForm | None = None, status: int = 200):
    shown = member_page(member=member, now=now)
    write_view_audit(actor=Actor.member(member, ip_address=client_ip(request)), action="member_page_view",
                     members=[member], now=now)
    return render(request, "portal/me/page.html", {
        "page": shown, "practice": member.practice, "token": uuid.uuid4().hex, "form": form,
        "card_done": request.GET.get("card") == "done", "reasons": MemberRequestReason.choices,
    }, status=status)


@require_POST
@session.member_page
def request_change(request, member, *, now):
    """A pause or a cancellation, filed through the ledger's service (which applies it at once when
    the practice lets members do so)."""
    form = RequestForm(request.POST)
    membership = current_membership(member=member)
    if not form.is_valid() or membership is None:
        return _render_page(request, member, now=now, form=form, status=400)
    data = form.cleaned_data
    try:
        made = file_member_request(
            membership=membership, kind=data["kind"], reason=data["reason"], note=data["note"],
            pause_until=data["pause_until"], actor=Actor.member(member, ip_address=client_ip(request)),
            idempotency_key=f"member-page:{member.pk}:{data['token']}", now=now)
    except LedgerError as exc:
        form.add_error(None, exc.message)
        return _render_page(request, member, now=now, form=form, status=400)
    messages.success(request, "Done: your membership is updated." if made.status == "applied" else
                     "Thank you — the clinic will look at your request and you will see the answer here.")
    return redirect("portal:me:page")


@require_POST
@session.member_page
def update_card(request, member, *, now):
    """To the processor's hosted card page (card data never touches us); back to the member page."""
    return_url = request.build_absolute_uri(reverse("portal:me:page")) + "?card=done"
    try:
        url = member_card.member_card_update_url(member=member, return_url=return_url)
    except member_card.NoProcessorCustomer:
        return _plain(request, title="Please call the clinic", status=409,
                      text="There is no card on file with us to update yet.")
    except (member_card.ProcessorUnavailable, member_card.ProcessorRejected):
        logger.warning("card page for member %s could not be opened", member.pk)
        return _plain(request, title="Please try again in a few minutes", status=503,
                      text="The card page is not available right now.")
    write_audit(actor=Actor.member(member, ip_address=client_ip(request)), action="member_card_update",
                member=member, now=now)
    return HttpResponseRedirect(url)
